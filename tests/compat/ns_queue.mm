# Queueing: launches wait until a bare `vm launch`, with their own config.
ns queueing
ns queueing true
ns queueing
vm config memory 64
vm config tag role web
vm launch kvm web[1-2]
vm config memory 96
vm config tag role db
vm launch kvm db
vm launch kvm 2
.columns name,state vm info
ns queue

# names and UUIDs are unique across the VMs and the queue
vm launch kvm web2
vm config uuid 2e4a1bcb-1d1b-4b79-8d6c-5a2b7b3e7f10
vm launch kvm u[1-2]
vm launch kvm u1
vm launch kvm u2
clear vm config uuid

# a dry run places the queue; mv and dump edit and show it
ns schedule dump
ns schedule dry-run
ns schedule mv nothere node
ns schedule mv web1 nohost
ns schedule dump

# one bare launch launches all of it, each with its own config
vm launch
.columns name,state,memory,tags vm info
ns queue
vm launch
.columns state,launched,failures,total,hosts ns schedule status

# a queued VM named like a running one is refused
vm launch kvm db
ns flush
ns queue
ns queueing false
vm launch kvm now
.columns name,state vm info summary

# load measure, hosts, run
ns load
ns load memcommit
ns load
ns load cpu
ns load
ns hosts
ns add-hosts localhost
ns hosts
ns del-hosts all
ns hosts
vm launch kvm nohosts
ns add-hosts localhost
ns run echo from every host
ns run vm launch kvm x
ns run .columns name vm launch kvm x
ns run .columns name .filter name=db vm info
ns
ns bogus
