# VMs without disk or kernel: launched paused, then the lifecycle
vm config memory 64
vm config tag role web
vm launch kvm web[1-3]
.columns id,name,state,memory,vcpus,disks,snapshot,tags,namespace vm info
.columns id,name,state,type,cc_active,vlan vm info summary
.columns name,state vm info summary

# names: taken, integer, reserved, bad ranges, unknown targets
vm launch kvm web2
vm launch kvm web4,5
vm launch kvm all
vm launch kvm db[3-1]
vm launch kvm db[1-2
vm launch kvm 0
vm start nothere
vm stop 99

# start, stop, kill, flush by name, id, range and all
vm start web1
vm start 1
.columns name,state vm info
vm stop web[1-2]
.columns name,state vm info
vm stop web3
vm kill web2
.columns name,state vm info
.columns name .filter state=paused vm info
.columns name,pid,unit,memused,cputime .filter state=quit vm info
vm start web2
.columns name,state vm info
vm tag web1 owner alice
vm tag web[1-2] owner
vm tag web1
vm kill all
.columns name,state vm info
vm flush
vm info

# `vm start all` leaves QUIT VMs alone; a QUIT VM named starts again
vm launch kvm foo[0-2]
vm start foo0
vm kill foo1
vm start all
.columns name,state vm info
vm start foo1
.columns name,state vm info

# `vm flush TARGET` flushes only the QUIT and ERROR VMs it names
vm kill foo[0-1]
vm flush foo0,foo2
.columns name,state vm info
vm flush all
.columns name,state vm info
vm kill all
vm flush

# count launches are named after their ids
vm config uuid 9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc
vm launch kvm 2
vm launch kvm 1
vm launch kvm one-more
.columns id,name,uuid vm info
vm kill all
vm flush
