#!/bin/sh
# Adds a cc agent to the test guest without rebuilding it:
#
#   scripts/guest-agent.sh AGENT OUT [INITRD]
#
# writes OUT, the guest's initrd (INITRD, default .cache/guest/initrd.img)
# followed by a cpio archive holding AGENT as /bin/miniccc; Linux unpacks
# every archive concatenated to an initrd, and the guest's /init runs
# /bin/miniccc when it is there (see scripts/build-guest.sh). An agent that
# is linked dynamically (a plain `cargo build`) takes its shared libraries
# and loader along; the packaged one (`make`) is static and goes alone.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 AGENT OUT [INITRD]" >&2; exit 2; }
agent=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
initrd=${3:-$root/.cache/guest/initrd.img}
[ -f "$agent" ] || { echo "guest-agent: no agent at $agent" >&2; exit 1; }
[ -f "$initrd" ] || { echo "guest-agent: no initrd at $initrd (run scripts/build-guest.sh)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/guest-agent.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/bin"
cp "$agent" "$work/tree/bin/miniccc"
strip --strip-debug "$work/tree/bin/miniccc" 2>/dev/null || true
chmod 755 "$work/tree/bin/miniccc"
# `ldd` lists "name => /path (addr)" and the loader as "/path (addr)".
ldd "$agent" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' |
    sort -u | while read -r lib; do
        mkdir -p "$work/tree$(dirname "$lib")"
        cp -L "$lib" "$work/tree$lib"
    done
(cd "$work/tree" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/agent.cpio.gz"
cat "$initrd" "$work/agent.cpio.gz" >"$out.tmp"
mv "$out.tmp" "$out"
