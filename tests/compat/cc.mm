# cc without agents: state, filters, prefixes, the command list, errors
cc
cc clients
cc filter
cc filter hostname=web1 ip=10.0.0.0/24 tag=role:web name=vm1
cc filter
cc filter nonsense
cc filter ip=300.1.1.1
cc prefix
cc prefix setup
cc prefix
.json true cc exec echo "hello world"
cc background sleep 100
clear cc filter
clear cc prefix
cc exec-once stdout=pipe1 cat /etc/hostname
cc recv /var/log/*.log
cc test-conn tcp 10.0.0.2 80 wait 10s
cc test-conn udp 10.0.0.2 53 wait 1m AQID
cc process kill all
cc log level debug
cc commands
cc responses 1
cc responses all
cc responses setup
cc responses nope
cc exitcode 1 nothere
cc send nothere.txt
cc send ../etc/passwd
cc test-conn tcp 10.0.0.2 http wait 10s
cc test-conn tcp 10.0.0.2 80 wait soon
cc process kill none
cc delete command setup
cc delete command 5
cc delete command 99
cc delete response nope
.columns id,command cc commands
clear cc commands
cc commands
.json true cc exec true
namespace ccgone cc filter hostname=x
namespace ccgone cc prefix p
namespace ccgone cc exec true
namespace ccgone cc filter
namespace ccgone .columns id,prefix,filter cc commands
clear namespace ccgone
namespace ccgone cc filter
namespace ccgone cc prefix
namespace ccgone cc commands
clear namespace ccgone
