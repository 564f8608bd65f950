#!/bin/sh
# Installs what building and testing minimega needs on Debian 12, from
# Debian's own packages. Idempotent: a second run installs nothing.
set -eu

need="qemu-system-x86 qemu-utils systemd-container openssh-server dbus cpio
busybox-static iproute2 iputils-ping procps rpm lintian mandoc groff-base
debhelper devscripts fakeroot dpkg-dev build-essential pkg-config tmux
rpmlint man-db passwd make util-linux sudo kmod file fdisk e2fsprogs
dosfstools openvswitch-switch golang-go tcpdump fuse3 netcat-openbsd mtools
chromium chromium-driver novnc node-xterm"

missing=""
for p in $need; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# qemu-utils must match qemu-system-x86 (a newer qemu-utils from elsewhere
# "Breaks" Debian 12's qemu-system-common).
sys=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
utils=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
if [ -z "$missing" ] && [ -n "$sys" ] && [ "$sys" = "$utils" ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
cand=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
pins=""
if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
    pins="qemu-utils=$cand qemu-block-extra=$cand"
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends --allow-downgrades $need $pins
