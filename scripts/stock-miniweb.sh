#!/bin/sh
# Builds minimega's own web UI, miniweb, for the test that runs it against
# this daemon (tests/miniweb.rs):
#
#   scripts/stock-miniweb.sh SRC OUT
#
# SRC is a checkout of github.com/sandia-minimega/minimega 3.1.0 (never part
# of this repository; its vendor/ directory makes the build offline), OUT
# the binary to write. miniweb needs a newer Go than Debian 12's: Go 1.23
# from bookworm-backports (golang-1.23-go, /usr/lib/go-1.23/bin/go) builds it
# with the go directives lowered from 1.24 (set GO to use another go). Then:
#
#   MINIMEGA_STOCK_SRC=SRC cargo test --release --test miniweb -- --ignored
#
# (the test runs this script itself).
set -eu

[ $# -eq 2 ] || { echo "usage: $0 SRC OUT" >&2; exit 2; }
src=$1
out=$(realpath -m "$2")
[ -d "$src/cmd/miniweb" ] && [ -d "$src/vendor" ] || {
    echo "stock-miniweb: $src is not a minimega checkout with vendor/" >&2
    exit 1
}
if [ -z "${GO:-}" ]; then
    if [ -x /usr/lib/go-1.23/bin/go ]; then GO=/usr/lib/go-1.23/bin/go; else GO=go; fi
fi
work=$(mktemp -d /var/tmp/stock-miniweb.XXXXXX)
trap 'rm -rf "$work"' EXIT
for d in go.mod go.sum cmd/miniweb internal pkg vendor; do
    mkdir -p "$work/$(dirname "$d")"
    cp -r "$src/$d" "$work/$d"
done
go=$("$GO" env GOVERSION | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')
sed -i -e "s/^go [0-9.]*\$/go $go/" -e '/^toolchain /d' "$work/go.mod"
sed -i -e "s/^## explicit; go 1\.2[4-9][0-9.]*\$/## explicit; go $go/" "$work/vendor/modules.txt"
rev=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat > "$work/internal/version/version.go" <<GO
package version

var (
	Version  = "stock"
	Revision = "$rev"
	Date     = "$(date +%F)"
)
GO
cd "$work"
CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOCACHE="$work/.cache" "$GO" build -o "$out" ./cmd/miniweb
echo "$out"
