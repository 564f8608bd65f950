# The preprocessor: $VARS and files by name.
echo $MM_COMPAT_SURELY_UNSET_VARIABLE empty
echo ${MM_COMPAT_SURELY_UNSET_VARIABLE}empty
echo a$ b
echo file:no/such/file
echo http://localhost/
.preprocess false
.preprocess
echo http://localhost/
echo $MM_COMPAT_SURELY_UNSET_VARIABLE kept
.preprocess true
.preprocess false echo http://localhost/
.preprocess
echo file:/absolute/is/left/alone
