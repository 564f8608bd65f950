#!/bin/sh
# Builds the tiny test guest from Debian's own packages: the newest Debian 12
# kernel (linux-image-6.1.0-*-amd64) and a busybox-static initramfs whose
# /init prints MINIMEGA-GUEST-UP on the serial console (ttyS0). The result
# goes to .cache/guest/{vmlinuz,initrd.img} and is reused on later runs.
#
# Boot it with:
#   vm config kernel <root>/.cache/guest/vmlinuz
#   vm config initrd <root>/.cache/guest/initrd.img
#   vm config append console=ttyS0
# With `mm.poweroff` on the kernel command line the guest powers itself off
# right after the marker (to test a guest that quits on its own).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.cache/guest"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
    echo "$out"
    exit 0
fi

for tool in cpio gzip dpkg apt-get; do
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

ird="$work/initrd"
mkdir -p "$ird/bin" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/tmp"
cp "$busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
cat >"$ird/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo MINIMEGA-GUEST-UP >/dev/ttyS0
if grep -q mm.poweroff /proc/cmdline; then
    poweroff -f
fi
# Idle forever; a shell on the console would need an interactive serial.
while true; do sleep 3600; done
INIT
chmod 755 "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -9) >"$work/initrd.img"

mkdir -p "$out"
cp "$kernel" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
cp "$work/initrd.img" "$out/initrd.img.tmp" && mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$pkg" >"$out/kernel-package"
echo "$out"
