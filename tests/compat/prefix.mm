# Every keyword matches by unique prefix; an ambiguous one names the candidates.
vm con mem
vm con mem 128
vm config mem
n
ns q
ns queuei
ns queuei f
vm s foo
vm st foo
.col name .fil name=x vm inf
.headers f
.headers
.headers t

# an unknown or incomplete command names the command it is under
vm top
vm frobnicate now
vm
ns
vm info nonsense
clear vm config tags a b c
mesh
deploy frob

# column names too, ignoring case
vm config memory 64
vm launch kvm a
.columns NAME,st vm info
.col name vm i
.columns n vm info
.columns i vm info
.filter s=building .columns name vm info
.filter nam~a .columns name vm info
.filter bogus=1 vm info
vm kill all
vm flush
clear vm config
