# deploy settings: shown, set, checked, cleared.
deploy user
deploy user ops
deploy user
deploy sudo
deploy sudo true
deploy sudo
deploy flags
deploy flags -degree 3 -level debug
deploy flags
clear deploy flags
deploy flags
deploy hostkeys
deploy hostkeys accept-new
deploy hostkeys
deploy hostkeys trusting
deploy stdout
deploy stdout relative/file
deploy stdout /var/log/minimega.out
deploy stdout
deploy stderr
deploy packages /nonexistent/dir
deploy identity /nonexistent/key
clear deploy
deploy user
deploy sudo
deploy hostkeys

# Bad targets, refused before any connection.
deploy launch node
deploy launch node[3-1]
deploy remove bad[
deploy launch localhost
