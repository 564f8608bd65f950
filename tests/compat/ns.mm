# Namespaces on a node alone.
namespace
namespace exp
namespace
ns hosts
ns add-hosts bogus
namespace other echo one command there
namespace

# `namespace NAME` is the daemon's active namespace; again is an error
namespace exp
clear namespace
namespace
clear namespace

# `namespace NAME CMD` runs there only
vm config memory 64
vm launch kvm foo
namespace ns1 vm config memory 64
namespace ns1 vm launch kvm foo
namespace ns2 vm config memory 64
namespace ns2 vm launch kvm foo
namespace ns1 vm start all
.columns name,state,namespace vm info
namespace ns1 .columns name,state,namespace vm info
namespace ns2 vm kill all
namespace ns2 .columns name,state vm info
namespace ns2 vm flush
namespace ns2 .columns name,state vm info
namespace ns1 namespace

# destroying a namespace kills and forgets its VMs
clear namespace ns1
namespace ns1 .columns name,state vm info
namespace
clear namespace ns1
clear namespace nosuch
.columns name,state,namespace vm info
namespace ns3 vm launch kvm bar
clear namespace all
.columns name,state,namespace vm info
namespace

# bad names
namespace "bad name"
namespace a,b
