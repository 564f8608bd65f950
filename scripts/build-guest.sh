#!/bin/sh
# Builds the tiny test guest from Debian's own packages: the newest Debian 12
# kernel (linux-image-6.1.0-*-amd64) and a busybox-static initramfs whose
# /init prints MINIMEGA-GUEST-UP on the serial console (ttyS0). The result
# goes to .cache/guest/{vmlinuz,initrd.img} and is reused on later runs
# (delete .cache/guest, or bump GUEST_VERSION below, to rebuild).
#
# Boot it with:
#   vm config kernel <root>/.cache/guest/vmlinuz
#   vm config initrd <root>/.cache/guest/initrd.img
#   vm config append console=ttyS0
#
# The initramfs carries the kernel modules an experiment guest needs (NICs:
# e1000, virtio-net, rtl8139, e1000e; virtio console, block and SCSI; ATA;
# ext4 and vfat; USB host controllers and storage, for hotplugged drives) and loads them all at boot. Words on the kernel command
# line (`vm config append`) steer it; each is optional:
#
#   mm.hostname=NAME        set the hostname
#   mm.ip=A.B.C.D/N         address eth0 (mm.ip1=... eth1, up to mm.ip3)
#   mm.mount=DEV            mount DEV (e.g. /dev/vda1) read-only on /mnt
#   mm.cat=FILE             print /mnt/FILE between MM-CAT-BEGIN and
#                           MM-CAT-END on the console (with mm.mount)
#   mm.poweroff             power off right after the marker
#   mm.vgashell             an interactive shell on the VGA console (tty1),
#                           for keys typed over VNC
#   mm.serialshell          an interactive shell on the first serial port
#                           (ttyS0), for `minimega -console`
#
# Extra files reach the guest without rebuilding it: Linux unpacks every
# cpio archive concatenated to the initrd, so `cat initrd.img extra.cpio.gz
# > mine.img` adds e.g. /bin/miniccc. When /bin/miniccc exists the guest
# starts it (on /dev/virtio-ports/cc, or `mm.cc=tcp:IP:PORT` over TCP) and
# restarts it if it exits; /etc/guest.d/*.sh run (in order) before that.
set -eu

GUEST_VERSION=5

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.cache/guest"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] &&
    [ "$(cat "$out/version" 2>/dev/null)" = "$GUEST_VERSION" ]; then
    echo "$out"
    exit 0
fi

for tool in cpio gzip dpkg apt-get depmod; do
    command -v "$tool" >/dev/null || { echo "build-guest: $tool is missing (scripts/deps.sh)" >&2; exit 1; }
done
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    echo "build-guest: a static busybox is needed (apt-get install busybox-static)" >&2
    exit 1
fi

work=$(mktemp -d /var/tmp/minimega-guest.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # apt-get download drops to the _apt user

newest() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1
}
pkg=$(newest)
if [ -z "$pkg" ]; then
    apt-get update -q >/dev/null
    pkg=$(newest)
fi
[ -n "$pkg" ] || { echo "build-guest: no linux-image-6.1.0-*-amd64 package found" >&2; exit 1; }

(cd "$work" && apt-get download -q "$pkg" >/dev/null)
dpkg -x "$work"/"$pkg"_*.deb "$work/kernel"
kernel=$(ls "$work"/kernel/boot/vmlinuz-* | head -1)
kver=$(ls "$work/kernel/lib/modules" | head -1)
depmod -b "$work/kernel" "$kver"
mods="$work/kernel/lib/modules/$kver"

ird="$work/initrd"
mkdir -p "$ird/bin" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/tmp" "$ird/mnt" \
    "$ird/etc/guest.d" "$ird/lib/modules" "$ird/run" "$ird/var/run" "$ird/root"
cp "$busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
echo "root:x:0:0:root:/root:/bin/sh" >"$ird/etc/passwd"
echo "root:x:0:" >"$ird/etc/group"

# The modules wanted, then their dependencies from modules.dep, listed so
# that each module comes after what it needs (insmod has no resolver).
wanted="e1000 e1000e 8139cp 8139too virtio_pci virtio_net virtio_console
virtio_blk virtio_scsi ata_piix ahci sd_mod ext4 crc32c_generic vfat
nls_cp437 nls_iso8859-1 nls_utf8 nls_ascii uhci-hcd xhci-pci usb-storage"
order="$work/order"
: >"$order"
add() {
    local path dep
    path=$(grep -E "(^|/)$1\.ko(\.[a-z]+)?:" "$mods/modules.dep" | head -1 | cut -d: -f1)
    [ -n "$path" ] || { echo "build-guest: no module $1 in $pkg" >&2; exit 1; }
    grep -qxF "$path" "$order" && return 0
    # shellcheck disable=SC2046
    for dep in $(grep -E "^$path:" "$mods/modules.dep" | cut -d: -f2); do
        add "$(basename "$dep" | sed 's/\.ko.*//')"
    done
    grep -qxF "$path" "$order" || echo "$path" >>"$order"
}
for m in $wanted; do add "$m"; done
while read -r path; do
    cp "$mods/$path" "$ird/lib/modules/"
    basename "$path" >>"$ird/lib/modules/order"
done <"$order"

cat >"$ird/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
ip link set lo up
while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null
done </lib/modules/order
arg() {
    for w in $(cat /proc/cmdline); do
        case "$w" in "$1"=*) echo "${w#*=}"; return 0 ;; esac
    done
    return 1
}
name=$(arg mm.hostname) && hostname "$name"
# NICs appear once their drivers bound; give them a moment.
for i in 0 1 2 3; do
    key=mm.ip; [ "$i" = 0 ] || key=mm.ip$i
    addr=$(arg "$key") || continue
    n=0
    while [ ! -e "/sys/class/net/eth$i" ] && [ "$n" -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    ip addr add "$addr" dev "eth$i"
    ip link set "eth$i" up
done
if dev=$(arg mm.mount); then
    n=0
    while [ ! -e "$dev" ] && [ "$n" -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    mount -o ro "$dev" /mnt || echo "MM-MOUNT-FAILED $dev" >/dev/ttyS0
    if f=$(arg mm.cat); then
        echo MM-CAT-BEGIN >/dev/ttyS0
        cat "/mnt/$f" >/dev/ttyS0 2>&1
        echo MM-CAT-END >/dev/ttyS0
    fi
fi
for s in /etc/guest.d/*.sh; do
    [ -f "$s" ] && sh "$s"
done
echo MINIMEGA-GUEST-UP >/dev/ttyS0
if grep -q mm.poweroff /proc/cmdline; then
    poweroff -f
fi
if [ -x /bin/miniccc ]; then
    (
        while true; do
            if cc=$(arg mm.cc); then
                hostport=${cc#tcp:}
                /bin/miniccc -parent "${hostport%:*}" -port "${hostport##*:}"
            else
                n=0
                while [ ! -e /dev/virtio-ports/cc ] && [ "$n" -lt 100 ]; do
                    # No udev here: name the virtio ports as its rules do.
                    for p in /sys/class/virtio-ports/*; do
                        [ -r "$p/name" ] || continue
                        mkdir -p /dev/virtio-ports
                        ln -sf "../${p##*/}" "/dev/virtio-ports/$(cat "$p/name")"
                    done
                    [ -e /dev/virtio-ports/cc ] || sleep 0.1
                    n=$((n + 1))
                done
                /bin/miniccc -serial /dev/virtio-ports/cc
            fi
            sleep 1
        done
    ) >/dev/null 2>&1 &
fi
# Shells a person (or a test) types into: each the session leader of its
# terminal, so line editing and Ctrl-C work; started again when it exits.
shell_on() {
    (
        while true; do
            setsid -c /bin/sh -i <"$1" >"$1" 2>&1
            sleep 1
        done
    ) &
}
grep -q mm.vgashell /proc/cmdline && shell_on /dev/tty1
grep -q mm.serialshell /proc/cmdline && shell_on /dev/ttyS0
while true; do sleep 3600; done
INIT
chmod 755 "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -9) >"$work/initrd.img"

mkdir -p "$out"
cp "$kernel" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
cp "$work/initrd.img" "$out/initrd.img.tmp" && mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$pkg" >"$out/kernel-package"
echo "$GUEST_VERSION" >"$out/version"
echo "$out"
