# vm hotplug, top, migrate, save and config state: listings, settings and
# refusals (the guests themselves are in tests/vm_ops.rs).
vm hotplug
vm top 0
vm migrate
vm save

# vm config state, also spelled migrate
vm config state
vm config state /images/web.state
vm config state
vm config migrate
clear vm config state
vm config state

# refusals
vm hotplug add nosuch /nonexistent.img
vm hotplug remove nosuch 0
vm migrate nosuch /images/x.state
vm save nosuch
vm top soon
vm top 9999
vm config state /nonexistent/web.state
vm launch kvm x
clear vm config

# A paused VM has QEMU and QMP: hotplug and top see it.
vm config memory 64
vm launch kvm vm0
vm hotplug add vm0 /nonexistent.img
vm hotplug add vm0 /etc/passwd 9.0
vm hotplug remove vm0 0
vm hotplug remove vm0 all
vm hotplug remove all all
vm hotplug remove vm0 zero
vm hotplug show vm0
.columns name,procs,rx,tx vm top 0
vm kill all
vm hotplug add vm0 /etc/passwd
vm top 0
vm flush
