# History, as minimega's own history test checks it
clear history
.record false echo hello, nobody
.record true echo hello, world
.record false
.record
echo hello, off the record
.record true
echo hello again, world
# comments are recorded, lines that are no command are not
nonsense here
history
history
clear history
history
.record true echo a
read /nonexistent/script
history
clear history
