#!/bin/sh
# minimega's own Go agent, for the test that runs it against this daemon
# (tests/cc.rs, the_stock_go_agent_works_with_this_daemon):
#
#   [GO=/usr/lib/go-1.23/bin/go] scripts/stock-miniccc.sh SRC OUT
#   MINIMEGA_STOCK_MINICCC=OUT cargo test --release --test cc the_stock -- --ignored
#
# See scripts/stock-build.sh.
exec "$(dirname "$0")/stock-build.sh" miniccc "$@"
