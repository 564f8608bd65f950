#!/bin/sh
# container-fs.sh DIR [MINICCC]: a busybox file system for `vm launch
# container`, from Debian's busybox-static (no image from elsewhere).
# With MINICCC, that cc agent goes in as /usr/bin/miniccc (with its
# libraries if it is not static). /init is a shell script: it mounts
# nothing (the monitor did), starts the agent if there is one, and runs
# a shell on the console.
set -eu
dir=${1:?usage: container-fs.sh DIR [MINICCC]}
miniccc=${2:-}

# Debian's busybox-static is at /bin/busybox; ldd fails on a static binary.
bb=/bin/busybox
if [ ! -x "$bb" ] || ldd "$bb" >/dev/null 2>&1; then
    apt-get install -y busybox-static >/dev/null
fi

mkdir -p "$dir"
cd "$dir"
mkdir -p bin sbin usr/bin usr/sbin proc sys dev tmp etc root var/run
chmod 1777 tmp
cp "$bb" bin/busybox
for app in $(./bin/busybox --list-full); do
    [ -e "$app" ] || ln -s /bin/busybox "$app"
done
echo 'root:x:0:0:root:/root:/bin/sh' > etc/passwd
echo 'root:x:0:' > etc/group
echo 'minimega' > etc/hostname

# busybox's udhcpc runs this script on each lease event and ships none:
# the address, the default route and the name server of the lease.
# Debian's busybox looks for it in /etc/udhcpc, upstream's in
# /usr/share/udhcpc.
mkdir -p etc/udhcpc usr/share/udhcpc
cat > etc/udhcpc/default.script <<'DHCP'
#!/bin/sh
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do
        ip route replace default via "$r" dev "$interface"
        break
    done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
DHCP
chmod 755 etc/udhcpc/default.script
ln -sf /etc/udhcpc/default.script usr/share/udhcpc/default.script

if [ -n "$miniccc" ]; then
    cp "$miniccc" usr/bin/miniccc
    if ldd "$miniccc" >/dev/null 2>&1; then
        # Dynamic: its libraries at their paths, and the loader.
        ldd "$miniccc" | grep -o '/[^ ]*' | while read -r lib; do
            mkdir -p ".$(dirname "$lib")"
            cp -L "$lib" ".$lib"
        done
    fi
fi

cat > init <<'INIT'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -x /usr/bin/miniccc ] && [ -S /cc ]; then
    /usr/bin/miniccc -family unix -parent /cc >/dev/null 2>&1 &
fi
echo "container $(hostname) up"
while true; do
    /bin/sh </dev/console >/dev/console 2>&1
done
INIT
chmod 755 init
