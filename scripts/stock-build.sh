#!/bin/sh
# Builds one program of minimega's own source for the tests that run the
# original's agent or web UI against this daemon:
#
#   [GO=/usr/lib/go-1.23/bin/go] scripts/stock-build.sh PROGRAM SRC OUT
#
# PROGRAM is a directory under SRC/cmd (miniccc, miniweb), SRC a checkout of
# github.com/sandia-minimega/minimega (never part of this repository; its
# vendor/ directory makes the build offline), OUT the static binary to
# write, GO the toolchain (default: `go` on the PATH; scripts/deps.sh
# installs Debian's 1.19 there and 1.23 under /usr/lib/go-1.23). The build
# happens in a copy of the parts the program needs, with the version file
# minimega's build.bash would write. minimega 3.1.0 asks for Go 1.24, in
# go.mod and in vendor/modules.txt's `## explicit; go` lines; every such
# line newer than the toolchain is lowered to it, so Debian's toolchains
# build it without fetching another.
set -eu

[ $# -eq 3 ] || { echo "usage: $0 PROGRAM SRC OUT" >&2; exit 2; }
prog=$1
src=$2
out=$(realpath -m "$3")
[ -d "$src/cmd/$prog" ] && [ -d "$src/vendor" ] || {
    echo "stock-build: $src is not a minimega checkout with vendor/ and cmd/$prog" >&2
    exit 1
}
work=$(mktemp -d "/var/tmp/stock-$prog.XXXXXX")
trap 'rm -rf "$work"' EXIT
for d in go.mod go.sum "cmd/$prog" internal pkg vendor; do
    mkdir -p "$work/$(dirname "$d")"
    cp -r "$src/$d" "$work/$d"
done
go=${GO:-go}
ver=$(GOTOOLCHAIN=local "$go" env GOVERSION | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')
[ -n "$ver" ] || { echo "stock-build: cannot tell $go's version" >&2; exit 1; }
# Rewrites the file with each `go V` newer than the toolchain lowered to it
# ($1: the words before the version: "go" in go.mod, "## explicit; go" in
# vendor/modules.txt).
lower() {
    awk -v pre="$1" -v ver="$ver" '
        function newer(v,   a, b) {
            split(v, a, "."); split(ver, b, ".")
            return a[1] + 0 > b[1] + 0 || (a[1] + 0 == b[1] + 0 && a[2] + 0 > b[2] + 0)
        }
        index($0, pre " ") == 1 && newer(substr($0, length(pre) + 2)) { $0 = pre " " ver }
        /^toolchain / { next }
        { print }' "$2" > "$2.new" && mv "$2.new" "$2"
}
lower "go" "$work/go.mod"
lower "## explicit; go" "$work/vendor/modules.txt"
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
CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off \
    GOCACHE="$work/.cache" GOPATH="$work/.path" "$go" build -o "$out" "./cmd/$prog"
echo "$out"
