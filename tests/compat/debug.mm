# minimega's debug script, with reports this daemon writes instead of pprof
debug memory /tmp/mm-compat-debug-mem.txt
shell grep -c ^VmRSS /tmp/mm-compat-debug-mem.txt

# a second start fails, as a second stop does
debug cpu start /tmp/mm-compat-debug-cpu.txt
debug cpu start /tmp/mm-compat-debug-cpu.txt
debug cpu stop
debug cpu stop
shell grep -c "^# minimega CPU profile" /tmp/mm-compat-debug-cpu.txt

debug goroutine /tmp/mm-compat-debug-threads.txt
shell grep -c "^# async runtime" /tmp/mm-compat-debug-threads.txt
debug nosuch

shell rm /tmp/mm-compat-debug-mem.txt /tmp/mm-compat-debug-cpu.txt /tmp/mm-compat-debug-threads.txt
