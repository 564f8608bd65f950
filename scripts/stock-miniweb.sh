#!/bin/sh
# minimega's own web UI, miniweb, for the test that runs it against this
# daemon (tests/miniweb.rs, which runs this script itself):
#
#   scripts/stock-miniweb.sh SRC OUT
#   MINIMEGA_STOCK_SRC=SRC cargo test --release --test miniweb -- --ignored
#
# miniweb needs a newer Go than Debian 12's: Go 1.23 from bookworm-backports
# (golang-1.23-go) unless GO names another. See scripts/stock-build.sh.
if [ -z "${GO:-}" ] && [ -x /usr/lib/go-1.23/bin/go ]; then
    GO=/usr/lib/go-1.23/bin/go
    export GO
fi
exec "$(dirname "$0")/stock-build.sh" miniweb "$@"
