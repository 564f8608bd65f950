# The language's own commands: echo, quoting, comments.
echo hello world
echo "quoted   spaces" and 'single'
echo # a comment after a command

# Aliases
.alias
.alias greet=echo hello
.alias
greet there
.unalias greet
.alias a=echo a, with a comma
.alias b=echo b
.csv true .alias
.unalias a
.unalias b
.unalias greet
.alias broken

# Tables, columns, filters, headers, csv, json
.columns name host
.columns nam host
.columns bogus host
.headers false .columns name host
.csv true .columns name .filter name=node host
.filter name!=node .columns name host
.filter name~od .columns name host
.filter name!~od .columns name host
.filter nonsense host
.json true echo hi

# Session settings persist in the session
.headers
.headers false
.columns name host
.headers true
.annotate

# Errors name the problem
frobnicate
echo "unterminated
.columns name hots
help nosuchcommand

# Help
help echo
help .unalias
