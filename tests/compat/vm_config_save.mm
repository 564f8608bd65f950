# Saved configurations, clone, virtio-ports, lists.
vm config restore
vm config uuid 9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc
vm config vcpus 4
vm config memory 128
vm config qemu-append -k en-us
vm config save test
vm config restore test nonsense
clear vm config
vm config memory
vm config restore
vm config restore nothere
vm config restore test
vm config memory
vm config qemu-append
vm config uuid
vm config save other
vm config restore
clear vm config

# clone copies a VM's configuration without its UUID
vm config memory 96
vm config tag who src
vm config uuid 3f9b2a64-7c1e-4f0a-9e5d-1b2c3d4e5f60
vm launch kvm src
clear vm config
vm config clone src
vm config memory
vm config tags
vm config uuid
vm config clone nothere
clear vm config

# lists print as [a b c]; empty arguments print nothing
vm config append
vm config append a b c
vm config append
vm config disk
vm config disk /x/a /x/b
vm config disk
vm config virtio-ports
vm config virtio-ports 3
vm config virtio-ports
vm config virtio-ports foo,bar
vm config virtio-ports
vm config virtio-ports "a b"
clear vm config virtio-ports
vm config virtio-ports
vm config qemu-override only-one
vm config colocate web
vm config schedule node
clear vm config colocate
vm config schedule node
vm config colocate web
vm kill all
vm flush
clear vm config
