# History is the daemon's, oldest first; `clear history` forgets it.
clear history
echo one
bogus command
echo two
history
clear history
history
