# The plumber: pipes, pipelines, modes and vias, as minimega's own
# plumbing test has them (a binary tree of pipes fed from p0).

plumb p0 p1
plumb p0 p2
plumb p1 p3
plumb p1 p4
plumb p2 p5
plumb p2 p6
plumb
.columns name,mode,readers,writers,count pipe

# Mode all: every reader gets a copy, down the whole tree.
pipe p0 "Hello to you."
pipe

# Round-robin on the parents: each message to one child in turn.
pipe p0 mode round-robin
pipe p1 mode round-robin
pipe p2 mode round-robin
pipe p0 "This is round robin."
pipe p0 "This is round 2."
pipe p0 "This is round 3."
pipe p0 "This is round 4."
.columns name,mode,readers,writers,count pipe

# A pipe fed by a pipeline cannot be deleted; clearing the pipelines
# closes their readers and writers.
clear pipe p3
clear plumb p0 p1
plumb
clear plumb
plumb
clear pipe p3
.columns name,readers,writers pipe
clear pipe
pipe

# A via runs for every reader: here the pipeline reading vin (not `v w`: w is a program).
plumb vin vout
pipe vin via tr a-z A-Z
pipe vin "shout this"
.columns name,count,via,previous pipe
clear pipe vin via
pipe vin "quiet again"
.columns name,count,via,previous pipe
clear plumb vin vout

# Pipes are per namespace; <namespace>//<pipe> names another's.
namespace exp pipe x hello
namespace exp .columns name,count,previous pipe
pipe exp//x "from minimega"
namespace exp .columns name,count,previous pipe
.columns name pipe

# Settings, and what is refused.
pipe m mode random
pipe m log true
.columns name,mode pipe
clear pipe m mode
.columns name,mode pipe
clear pipe nosuch
clear plumb nosuch pipeline
plumb a b
plumb a b
plumb a 'unterminated
pipe //bad data
plumb mesh-message {}
clear plumb
clear pipe

# clear all ends the pipelines before it deletes the pipes.
plumb x "sed -u s/x/y/" y
pipe x xylophone
clear all
plumb
pipe
