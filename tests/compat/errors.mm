# The original's words where its clients match them.
vm config memory 64
vm launch kvm all
vm launch kvm foo,[0]
vm start nothere
vm kill nothere
vm launch kvm foo
vm qmp foo "{\"execute\": \"query-status\"}"
vm kill foo
vm qmp foo "{\"execute\": \"query-status\"}"
vm screenshot foo
vm screenshot nothere file /dev/null
vm screenshot foo file /dev/null lots
namespace minimega
clear namespace
vm kill all
vm flush
clear vm config
