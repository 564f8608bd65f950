#!/bin/sh
# Builds minimega's own Go agent, for the test that runs it against this
# daemon (tests/cc.rs, the_stock_go_agent_works_with_this_daemon):
#
#   scripts/stock-miniccc.sh SRC OUT
#
# SRC is a checkout of github.com/sandia-minimega/minimega (never part of
# this repository; its vendor/ directory makes the build offline), OUT the
# static binary to write. The build happens in a copy of the parts the
# agent needs, with the version file minimega's build.bash would write, and
# the go directive lowered to the Debian toolchain's (1.19 builds it; the
# agent uses nothing newer). Then:
#
#   MINIMEGA_STOCK_MINICCC=OUT cargo test --test cc the_stock -- --ignored
set -eu

[ $# -eq 2 ] || { echo "usage: $0 SRC OUT" >&2; exit 2; }
src=$1
out=$(realpath -m "$2")
[ -d "$src/cmd/miniccc" ] && [ -d "$src/vendor" ] || {
    echo "stock-miniccc: $src is not a minimega checkout with vendor/" >&2
    exit 1
}
work=$(mktemp -d /var/tmp/stock-miniccc.XXXXXX)
trap 'rm -rf "$work"' EXIT
for d in go.mod go.sum cmd/miniccc internal pkg vendor; do
    mkdir -p "$work/$(dirname "$d")"
    cp -r "$src/$d" "$work/$d"
done
go=$(go env GOVERSION | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')
sed -i -e "s/^go [0-9.]*\$/go $go/" -e '/^toolchain /d' "$work/go.mod"
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
CGO_ENABLED=0 GOFLAGS=-mod=vendor GOCACHE="$work/.cache" go build -o "$out" ./cmd/miniccc
echo "$out"
