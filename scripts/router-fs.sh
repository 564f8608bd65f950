#!/bin/sh
# router-fs.sh DIR [MINIROUTER [MINICCC]]: a file system for a router
# container (`vm config filesystem DIR`, then `router VM ...` as for a
# router VM). scripts/container-fs.sh's busybox and cc agent, plus what
# our minirouter drives: Debian's dnsmasq, bird2 (bird, birdc), nftables
# (nft) and iproute2's ip, copied from this host with the libraries ldd
# names (scripts/deps.sh installs the packages; no image from elsewhere),
# and our minirouter as /usr/bin/minirouter, where the cc commands of
# `router VM commit` find it (`minirouter -u FILE` on the PATH).
#
# MINIROUTER and MINICCC default to the release build's binaries
# (${CARGO_TARGET_DIR:-target}/release). /init starts the agent and the
# resident minirouter (byte counters as tags), then sleeps; minirouter -u
# starts dnsmasq and bird itself.
#
# The container's /proc/sys is read-only: give the router IP forwarding
# with a preinit (`vm config preinit`), which runs in the container's
# network namespace before it starts, e.g.
#     #!/bin/sh
#     echo 1 > /proc/sys/net/ipv4/ip_forward
# Idempotent: a second run over DIR rewrites the same files.
set -eu
dir=${1:?usage: router-fs.sh DIR [MINIROUTER [MINICCC]]}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
minirouter=${2:-$target/release/minirouter}
miniccc=${3:-$target/release/miniccc}
for f in "$minirouter" "$miniccc"; do
    [ -x "$f" ] || {
        echo "router-fs.sh: $f: no such executable (cargo build --release)" >&2
        exit 1
    }
done

# The tools, from Debian's packages on this host.
missing=""
for t in dnsmasq:dnsmasq-base bird:bird2 birdc:bird2 nft:nftables ip:iproute2; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"
done
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

sh "$root/scripts/container-fs.sh" "$dir" "$miniccc"
cd "$dir"

# A binary at its place in the file system, with its libraries and the
# loader at theirs (the same paths as on this Debian host).
copy() {
    src=$(command -v "$1")
    dst=.$2
    mkdir -p "$(dirname "$dst")"
    rm -f "$dst"
    cp -L "$src" "$dst"
    ldd "$src" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p ".$(dirname "$lib")"
        [ -e ".$lib" ] || cp -L "$lib" ".$lib"
    done
}
copy dnsmasq /usr/sbin/dnsmasq
copy bird /usr/sbin/bird
copy birdc /usr/sbin/birdc
copy nft /usr/sbin/nft
# minirouter runs `ip` as iproute2 takes it; busybox's goes in /sbin,
# later on the PATH than /usr/sbin.
copy ip /usr/sbin/ip
rm -f usr/bin/minirouter
cp "$minirouter" usr/bin/minirouter
if ldd "$minirouter" >/dev/null 2>&1; then
    ldd "$minirouter" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p ".$(dirname "$lib")"
        [ -e ".$lib" ] || cp -L "$lib" ".$lib"
    done
fi

# What the daemons look for: nft reads protocol and service names, dnsmasq
# /etc/hosts, bird its folders (minirouter gives it its own files under
# /tmp/minirouter).
mkdir -p run var/lib/misc var/run etc/bird run/bird etc/iproute2 tmp/minirouter
chmod 1777 tmp
for f in /etc/protocols /etc/services; do
    [ -e "$f" ] && cp "$f" ".$f"
done
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > etc/hosts
: > etc/resolv.conf
grep -q '^dnsmasq:' etc/passwd ||
    echo 'dnsmasq:x:100:65534:dnsmasq:/var/lib/misc:/bin/false' >> etc/passwd
grep -q '^nogroup:' etc/group || echo 'nogroup:x:65534:' >> etc/group

cat > init <<'INIT'
#!/bin/sh
# A router container: the cc agent (it runs the cc commands of `router
# VM commit`, minirouter among them), then nothing but waiting.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ip link set lo up
/usr/bin/miniccc -family unix -parent /cc >/dev/null 2>&1 &
# minirouter without -u: each interface's byte counters as the VM's tags
# (minirouter_eth0_rx_bytes, ...), every second, through the agent.
/usr/bin/minirouter >/dev/null 2>&1 &
echo "router $(hostname) up"
while true; do sleep 3600; done
INIT
chmod 755 init
