#!/bin/sh
arg() {
    for w in $(cat /proc/cmdline); do
        case "$w" in "$1"=*) echo "${w#*=}"; return 0 ;; esac
    done
    return 1
}
a6=$(arg mm.ip6) && ip -6 addr add "$a6" dev eth0
peers=$(arg mm.ping | tr , ' ')
peers6=$(arg mm.ping6 | tr , ' ')
[ -n "$peers$peers6" ] || exit 0
(
    while true; do
        for p in $peers; do
            if ping -c 1 -W 1 "$p" >/dev/null 2>&1; then r=ok; else r=fail; fi
            echo "MM-PING $p $r" >/dev/ttyS0
        done
        for p in $peers6; do
            if ping6 -c 1 -W 1 "$p" >/dev/null 2>&1; then r=ok; else r=fail; fi
            echo "MM-PING6 $p $r" >/dev/ttyS0
        done
        sleep 1
    done
) &
