#!/bin/sh
# Installs what building and testing minimega needs on Debian 12, from
# Debian's own packages. Idempotent: a second run installs nothing.
set -eu

need="qemu-system-x86 qemu-utils systemd-container openssh-server dbus cpio
busybox-static iproute2 iputils-ping procps rpm lintian mandoc groff-base
debhelper devscripts fakeroot dpkg-dev build-essential pkg-config tmux
rpmlint man-db passwd make util-linux sudo kmod file fdisk e2fsprogs
dosfstools openvswitch-switch golang-go tcpdump fuse3 netcat-openbsd mtools
chromium chromium-driver novnc node-xterm golang-1.23-go dnsmasq-base
nftables bird2 curl"

# Go 1.23 (/usr/lib/go-1.23/bin/go) is only in bookworm-backports: the gob
# tests check the cc codec against it as well as Debian's Go 1.19 (their
# encoding/gob number types differently), and it builds minimega 3.x's
# stock agent. The suite is added beside the machine's own Debian source,
# from the same mirror, unless some source already names it.
add_backports() {
    if grep -qrs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return 0
    fi
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
        /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
        /etc/apt/sources.list 2>/dev/null)
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    printf '%s\n' 'Types: deb' "URIs: $uri" 'Suites: bookworm-backports' \
        'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
        > /etc/apt/sources.list.d/bookworm-backports.sources
}

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
add_backports
apt-get update -q
cand=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
pins=""
if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
    pins="qemu-utils=$cand qemu-block-extra=$cand"
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends --allow-downgrades $need $pins
