# Tags of the configuration go to VMs launched later; VM tags are their own.
vm config memory 64
vm config tag color red
vm config tag
vm launch kvm vm0
vm config tag shape square
vm config tags
vm config tag shape
vm launch kvm vm[1,2]
.column name,tags vm info
clear vm config tag color
vm config tags
vm launch kvm vm3
.column name,tags vm info
vm tag vm1 color blue
.column name,tags vm info
vm tag vm[0-1] color
vm tag vm1
vm tag vm1 all
vm tag vm1 all x
clear vm tag vm1 color
vm tag vm1
clear vm tag all shape
.column name,tags vm info
clear vm tag vm0
clear vm tag
.column name,tags vm info
clear vm config tag
vm config tag
vm tag nothere
vm kill all
vm flush
