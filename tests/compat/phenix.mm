# phenix's own command lines (sceptre-phenix src/go/util/mm), wrapped as
# phenix wraps them: .record false, namespace "NS", .columns "a","b",
# .filter X (the last given outermost). No NIC: this daemon has no switch;
# no kernel, so no append (QEMU refuses -append without -kernel).
.record false clear namespace exp
.record false namespace "exp" .columns "uuid","host","name","state","uptime","vlan","tap","ip","memory","vcpus","disks","snapshot","cdrom","tags" vm info
.record false namespace "exp" .columns "host","vnc_port" .filter name=vm1 .filter type=kvm vm info
.record false namespace "exp" .columns "state" .filter name=vm1 vm info summary
.record false namespace "exp" ns queueing true
.record false namespace "exp" vm config memory 128
.record false namespace "exp" vm config uuid 9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc
.record false namespace "exp" vm config tags "role" "web server"
.record false namespace "exp" vm config snapshot true
.record false namespace "exp" vm launch kvm vm1
.record false namespace "exp" .columns "state" vm info
.record false namespace "exp" vm launch
.record false namespace "exp" .columns "uuid","host","name","state","vlan","tap","ip","memory","vcpus","disks","snapshot","cdrom","tags" vm info
.record false namespace "exp" .columns "host","name","id","state","disks","snapshot" .filter name=vm1 vm info
.record false namespace "exp" .columns "state" .filter name=vm1 vm info summary
.record false namespace "exp" .columns "host" .filter name=vm1 vm info
.record false namespace "exp" .columns "host","vnc_port" .filter name=nosuch .filter type=kvm vm info
.record false namespace "exp" .columns "interface","path" capture
.record false namespace "exp" .columns "id","responses" .filter id=1 cc commands
.record false namespace "exp" .columns "host" capture
.record false namespace "exp" .filter host=nosuch vm info
.record false namespace "exp" .columns name,append .filter host=node vm info
.record false namespace "exp" vlans
.record false namespace "exp" vm start nosuch
.record false namespace "exp" clear vm tag vm1 
.record false namespace "exp" vm tag vm1 "k" "v"
.record false namespace "exp" .columns name,tags vm info
.record false .columns "vmlimit" namespace "minimega" host
.record false namespace "minimega" host vmlimit
.record false clear namespace __phenix__
.record false namespace "exp" vm kill vm1
.record false namespace "exp" vm flush
.record false clear namespace exp
