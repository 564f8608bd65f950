# vm config: defaults, setting, printing, clearing
vm config
vm config memory
vm config memory 512
vm config mem
vm config vcpus 2
vm config snapshot false
vm config append console=ttyS0 quiet
vm config qemu-append -rtc base=utc
vm config kernel /nonexistent/vmlinuz
vm config disk /images/a.qcow2 /images/b.qcow2
vm config tag role web
vm config tag role
vm config uuid 9131E2A3-AD6B-4F38-B5BA-5FF2B19E32DC
vm config

# bad values change nothing
vm config memory lots
vm config memory 0
vm config vcpus -1
vm config vcpus 5000
vm config serial-ports 9
vm config snapshot maybe
vm config uuid not-a-uuid
vm config frobnicate 1
vm config c
vm config memory

# clearing one field, then all
clear vm config memory
vm config memory
clear vm config bogus
clear vm config
vm config
