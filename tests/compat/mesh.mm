# A node alone: its mesh is itself. (The port is the harness's, so it is
# left out of the columns.)
.columns mesh,degree,peers,context mesh status
mesh list
mesh list peers
mesh degree
mesh degree 3
mesh degree
mesh degree -1
mesh degree many
mesh timeout
mesh timeout 5
mesh timeout
mesh timeout 0
mesh timeout soon

# Sending: `all` is every other node (none here); localhost is this node.
mesh send all version
mesh send localhost echo hi
mesh send n[3-1] version
mesh send localhost mesh send all version
mesh hangup nobody
