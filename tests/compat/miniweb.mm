# miniweb's command lines (minimega's cmd/miniweb), wrapped as miniweb
# wraps them.
.record false vm config restore
.record false namespace "web" vm launch "kvm" "vm1" ""
.record false namespace "web" .columns "host","type","vnc_port","console_port" .filter name="vm1" vm info
.record false namespace "web" .filter state!=error .filter state!=quit .columns name,state,type,vcpus,memory,vlan,ip,tap,tags,cc_active vm info
.record false namespace "web" vm screenshot vm1 file /dev/null 
.record false namespace "web" vm kill "vm1"
.record false namespace "web" vm screenshot vm1 file /dev/null 215
.record false namespace "web" .filter state!=error .filter state!=quit vm info
.record false .columns name,vlans,active namespace
.record false namespace "web" vlans
.record false namespace "web" .columns vms,vmlimit host
.record false file stream nosuch
.record false namespace "web" vm flush
.record false clear namespace web
