# Build, install and package minimega.
#
#   make               build the binaries and the generated docs (release)
#   make install       lay the files out under $(DESTDIR) (both packages use it)
#   make package       dist/minimega_<v>_<arch>.deb and dist/minimega-<v>-1.<arch>.rpm
#   make lint          man pages, lintian and rpmlint on what `make package` made
#
# One build serves everything: cargo reuses target/release when it is up to
# date, and the package builds, which run in a staged copy of the source,
# point cargo back at this tree (MINIMEGA_SRC) and its target directory, so
# the packages ship the very binary the tests ran. (Cargo records absolute
# source paths: a build from the copy would leave later builds here blind to
# edits.)
#
# Rust comes from rustup (Debian 12's cargo is older than rust-version in
# Cargo.toml); cargo must be on PATH or in ~/.cargo/bin. Once the crates are
# in cargo's cache (`cargo fetch`), nothing here needs the network.

SHELL := /bin/sh
CARGO ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
CARGOFLAGS ?= --locked
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
REL := $(TARGET_DIR)/release
GEN := $(TARGET_DIR)/gen
PKGDIR := $(TARGET_DIR)/pkg
DIST ?= $(CURDIR)/dist
SRC := $(or $(MINIMEGA_SRC),$(CURDIR))
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# The date printed in the generated man page (reproducible when set).
SOURCE_DATE_EPOCH ?= $(shell dpkg-parsechangelog -STimestamp 2>/dev/null)
export SOURCE_DATE_EPOCH

# dpkg-buildpackage and rpmbuild export compiler settings, SOURCE_DATE_EPOCH
# and PKG_CONFIG_PATH; the C code that crates' build scripts compile
# (aws-lc-sys) depends on them, so cargo would rebuild it for the package,
# and again for the next plain `cargo build`. Cargo runs without them: one
# build, the one the tests ran, is what the packages ship.
CARGO_ENV := env -u CFLAGS -u CXXFLAGS -u CPPFLAGS -u LDFLAGS -u OBJCFLAGS \
	-u OBJCXXFLAGS -u FFLAGS -u FCFLAGS -u GCJFLAGS -u CC -u CXX -u AR \
	-u PKG_CONFIG_PATH -u LT_SYS_LIBRARY_PATH -u SOURCE_DATE_EPOCH \
	CARGO_TARGET_DIR=$(TARGET_DIR)

# Layout. The Debian and RPM builds override UNITDIR and ZSHCOMPDIR.
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
LIBDIR ?= $(PREFIX)/lib
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DBUSPOLICYDIR ?= $(DATADIR)/dbus-1/system.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d

# The cc agent and minirouter run inside guests and containers, which may
# have no C library at all, so they are linked statically (the gnu target's
# static-pie). `cargo rustc` puts the flag on each alone and reuses the
# release build of everything else; the results are kept apart, since a
# plain `cargo build` relinks them.
AGENT := $(GEN)/miniccc
ROUTER := $(GEN)/minirouter

MANPAGES := man/minimega.1 man/minimega.toml.5 man/minimega-dbus.7 man/minimega-web.8
GENPAGES := $(GEN)/man/minimega-commands.7

.PHONY: all build docs install package deb rpm lint lint-man clean

all: docs

build:
	$(CARGO_ENV) $(CARGO) build --release $(CARGOFLAGS) --manifest-path $(SRC)/Cargo.toml --bin minimega --bin minimega-web --bin gendoc
	$(CARGO_ENV) $(CARGO) rustc --release $(CARGOFLAGS) --manifest-path $(SRC)/Cargo.toml --bin miniccc -- -C target-feature=+crt-static
	mkdir -p $(GEN)
	cp $(REL)/miniccc $(AGENT).$$$$ && mv $(AGENT).$$$$ $(AGENT)
	$(CARGO_ENV) $(CARGO) rustc --release $(CARGOFLAGS) --manifest-path $(SRC)/Cargo.toml --bin minirouter -- -C target-feature=+crt-static
	cp $(REL)/minirouter $(ROUTER).$$$$ && mv $(ROUTER).$$$$ $(ROUTER)

# minimega-commands(7) and the completions, from this build's command table
# and flags; regenerated on every build, so they cannot drift.
docs: build
	$(REL)/gendoc $(GEN)

install:
	@test -x $(REL)/minimega -a -x $(REL)/minimega-web -a -x $(AGENT) -a -x $(ROUTER) -a -f $(GENPAGES) || { echo "make install: run make first" >&2; exit 1; }
	install -D -m 0755 $(REL)/minimega $(DESTDIR)$(BINDIR)/minimega
	install -D -m 0755 $(AGENT) $(DESTDIR)$(LIBDIR)/minimega/miniccc
	install -D -m 0755 $(ROUTER) $(DESTDIR)$(LIBDIR)/minimega/minirouter
	install -D -m 0755 $(REL)/minimega-web $(DESTDIR)$(BINDIR)/minimega-web
	install -D -m 0644 systemd/minimega.service $(DESTDIR)$(UNITDIR)/minimega.service
	install -D -m 0644 systemd/minimega-web.service $(DESTDIR)$(UNITDIR)/minimega-web.service
	install -D -m 0644 systemd/minimega-web.socket $(DESTDIR)$(UNITDIR)/minimega-web.socket
	install -D -m 0644 systemd/org.minimega.Minimega1.conf $(DESTDIR)$(DBUSPOLICYDIR)/org.minimega.Minimega1.conf
	install -D -m 0644 systemd/minimega.sysusers $(DESTDIR)$(SYSUSERSDIR)/minimega.conf
	install -D -m 0644 conf/minimega.toml $(DESTDIR)$(SYSCONFDIR)/minimega/minimega.toml
	install -D -m 0644 man/minimega.1 $(DESTDIR)$(MANDIR)/man1/minimega.1
	install -D -m 0644 man/minimega.toml.5 $(DESTDIR)$(MANDIR)/man5/minimega.toml.5
	install -D -m 0644 man/minimega-dbus.7 $(DESTDIR)$(MANDIR)/man7/minimega-dbus.7
	install -D -m 0644 man/minimega-web.8 $(DESTDIR)$(MANDIR)/man8/minimega-web.8
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/minimega/web-certs.d
	install -D -m 0644 $(GEN)/man/minimega-commands.7 $(DESTDIR)$(MANDIR)/man7/minimega-commands.7
	install -D -m 0644 $(GEN)/completions/minimega.bash $(DESTDIR)$(BASHCOMPDIR)/minimega
	install -D -m 0644 $(GEN)/completions/_minimega $(DESTDIR)$(ZSHCOMPDIR)/_minimega
	install -D -m 0644 $(GEN)/completions/minimega.fish $(DESTDIR)$(FISHCOMPDIR)/minimega.fish

# One package build at a time per target directory (tests run in parallel).
LOCKED = mkdir -p $(PKGDIR) && flock $(PKGDIR)/lock $(MAKE) --no-print-directory

package: all
	$(LOCKED) deb-unlocked rpm-unlocked

deb: all
	$(LOCKED) deb-unlocked

rpm: all
	$(LOCKED) rpm-unlocked

# A copy of the source (mtimes kept, so cargo sees it up to date) in which
# dpkg-buildpackage may write its results to `..`.
STAGE_EXCLUDES := --exclude=./.git --exclude=./target --exclude=./dist \
	--exclude=./.cache --exclude=./debian/minimega --exclude=./debian/.debhelper \
	--exclude=./debian/tmp --exclude=./debian/files \
	--exclude='./debian/*.substvars' --exclude=./debian/debhelper-build-stamp
define stage
	rm -rf $(1) && mkdir -p $(1)/minimega-$(VERSION)
	tar -C $(CURDIR) $(STAGE_EXCLUDES) -cf - . | tar -C $(1)/minimega-$(VERSION) -xpf -
endef

# DEB_VERSION=x builds the same tree as Debian version x (a changelog entry
# added in the copy only), e.g. to test an upgrade in place.
.PHONY: deb-unlocked rpm-unlocked
deb-unlocked:
	$(call stage,$(PKGDIR)/deb)
	$(if $(DEB_VERSION),cd $(PKGDIR)/deb/minimega-$(VERSION) && \
		{ printf 'minimega (%s) unstable; urgency=medium\n\n  * Rebuild.\n\n -- %s  %s\n\n' \
			'$(DEB_VERSION)' "$$(dpkg-parsechangelog -SMaintainer)" "$$(date -R)"; \
		  cat debian/changelog; } >debian/changelog.new && mv debian/changelog.new debian/changelog)
	cd $(PKGDIR)/deb/minimega-$(VERSION) && \
		MINIMEGA_SRC=$(CURDIR) CARGO_TARGET_DIR=$(TARGET_DIR) dpkg-buildpackage -us -uc -b
	mkdir -p $(DIST)
	rm -f $(DIST)/minimega_*.deb
	cp $(PKGDIR)/deb/minimega_*.deb $(DIST)/

# rpmbuild from a tarball of the same copy. --nodeps: on Debian the RPM
# database is empty, so BuildRequires cannot be checked.
rpm-unlocked:
	$(call stage,$(PKGDIR)/rpm/SOURCES)
	tar -C $(PKGDIR)/rpm/SOURCES -czf $(PKGDIR)/rpm/SOURCES/minimega-$(VERSION).tar.gz minimega-$(VERSION)
	MINIMEGA_SRC=$(CURDIR) CARGO_TARGET_DIR=$(TARGET_DIR) rpmbuild -bb --nodeps \
		--define "_topdir $(PKGDIR)/rpm" rpm/minimega.spec
	mkdir -p $(DIST)
	rm -f $(DIST)/minimega-*.rpm
	cp $(PKGDIR)/rpm/RPMS/*/minimega-$(VERSION)-*.rpm $(DIST)/

lint-man: docs
	mandoc -T lint $(MANPAGES) $(GENPAGES)
	for p in $(MANPAGES) $(GENPAGES); do groff -ww -z -man $$p || exit 1; done

lint: lint-man
	lintian --fail-on error $(DIST)/minimega_*.deb
	rpmlint -r rpm/minimega.rpmlintrc $(DIST)/minimega-*.rpm

clean:
	rm -rf $(DIST) $(PKGDIR) $(GEN)
