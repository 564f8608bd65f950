# clear all resets everything `clear` can: VMs in every namespace, configs,
# queues, saved configs, the active namespace, deploy settings, history.
vm config memory 64
vm config tag role web
vm config save base
vm launch kvm a
namespace exp
vm config memory 64
vm launch kvm b
ns queueing true
vm launch kvm queued
deploy flags -degree 3
clear all
namespace
.columns name,state,namespace vm info
vm config memory
vm config tags
vm config restore
namespace exp ns queue
namespace exp ns queueing
namespace exp vm config restore
deploy flags
history
vm launch kvm 1
.columns id,name vm info
clear all
