# SPDX-License-Identifier: BSD-3-Clause
GO      ?= go
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc/shifter
SYSTEMDUNITDIR ?= /etc/systemd/system
BINS    := shifter shifterimg shifter-gateway shifter-mount shifterd
MODULE  := github.com/shifter-go/shifter
LDFLAGS ?= -X $(MODULE)/udiroot.DefaultPath=$(SYSCONFDIR)/udiRoot.conf \
           -X $(MODULE)/launcher.DefaultMountHelper=$(PREFIX)/bin/shifter-mount
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build deps test test-short bench demo install lint clean spank test-slurm

all: build

# shifter-mount is linked statically: no dynamic loader and no libc.so to
# page in at start, which is on the path of every mount (about 15% of a
# cold mount here). It uses libc only for its early fork (early_linux.go).
# internal/testutil's buildFlags repeats these flags: keep them in step.
# shifter-mount-cache is shifter-mount with the node cache (-tags
# shiftercache); shifter-mount execs it for --cache-dir, so the cache's
# packages cost nothing to a plain mount.
STATIC_LDFLAGS := -linkmode=external -extldflags=-static

# Binaries ship without DWARF and the ELF symbol table (panics still name
# functions and lines): a cold start reads the whole file (the kernel's
# readahead takes it in one go), and for shifter-mount that is 4.9 MB
# instead of 6.8. perf needs the symbol table: build with STRIP_LDFLAGS=
# to profile.
STRIP_LDFLAGS ?= -s -w

build:
	@mkdir -p bin
	$(GO) build -ldflags "$(STRIP_LDFLAGS) $(LDFLAGS)" -o bin/ $(addprefix ./cmd/,$(filter-out shifter-mount,$(BINS)))
	$(GO) build -tags osusergo,netgo -ldflags "$(STRIP_LDFLAGS) $(STATIC_LDFLAGS)" -o bin/ ./cmd/shifter-mount
	$(GO) build -tags osusergo,netgo,shiftercache -ldflags "$(STRIP_LDFLAGS) $(STATIC_LDFLAGS)" -o bin/shifter-mount-cache ./cmd/shifter-mount
	@if [ -e $(SPANK_H) ]; then $(MAKE) --no-print-directory spank; else echo "build: no $(SPANK_H) (libslurm-dev): not building the Slurm plugin"; fi

# The Slurm SPANK plugin (contrib/slurm), built when Slurm's headers are
# installed. It runs $(PREFIX)/bin/shifterimg and shifterd unless
# plugstack.conf names other paths.
SPANK_H ?= /usr/include/slurm/spank.h
SLURM_PLUGINDIR ?= $(PREFIX)/lib/shifter
SPANK_CFLAGS ?= -O2 -g -Wall -Wextra -Werror -std=gnu11 -fPIC -fstack-protector-strong -D_FORTIFY_SOURCE=2

spank: bin/shifter_spank.so

bin/shifter_spank.so: contrib/slurm/shifter_spank.c Makefile
	@mkdir -p bin
	$(CC) $(SPANK_CFLAGS) -DSHIFTER_PREFIX='"$(PREFIX)"' -shared -Wl,-z,relro,-z,now -o $@ $<

# The Slurm end-to-end test alone: Debian's slurmctld, slurmd and munged
# started by the test, the plugin loaded (needs root; see docs/batch.md).
test-slurm: deps build
	$(GO) test -count=1 -v -timeout 15m ./tests/slurm/

deps:
	@scripts/deps.sh

# The whole suite, including the tests that mount, chroot and drop
# privileges (they need root, /dev/fuse and loop devices; under CI=true a
# missing one fails the test instead of skipping it).
# The last line tests the zstd decoder without its amd64 assembly (the Go
# sequence loops other architectures run).
test: deps build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
	$(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)
	$(GO) test -tags purego -count=1 ./squashreader/internal/zstd/

RACE_PKGS ?= ./squashreader/... ./fusefs/... ./gateway/... ./imagestore/... ./nodecache/... ./shifterd/...

# Unit tests only: no root, no mounts.
test-short:
	$(GO) test -short ./...

bench: build
	@scripts/deps.sh charliecloud-runtime
	bench/run.sh

demo: deps build
	scripts/demo.sh

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	staticcheck ./...

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)/var/lib/shifter/images
	install -m 0755 bin/shifterimg bin/shifter-gateway bin/shifter-mount bin/shifter-mount-cache bin/shifterd $(DESTDIR)$(PREFIX)/bin/
	install -m 4755 -o root bin/shifter $(DESTDIR)$(PREFIX)/bin/shifter
	[ -e $(DESTDIR)$(SYSCONFDIR)/udiRoot.conf ] || install -m 0644 -o root etc/udiRoot.conf.example $(DESTDIR)$(SYSCONFDIR)/udiRoot.conf
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(PREFIX)/share/doc/shifter
	sed 's|/usr/local|$(PREFIX)|g; s|/etc/shifter|$(SYSCONFDIR)|g' etc/shifterd.service > $(DESTDIR)$(SYSTEMDUNITDIR)/shifterd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/shifterd.service
	install -m 0644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/shifter/
	if [ -e bin/shifter_spank.so ]; then install -d $(DESTDIR)$(SLURM_PLUGINDIR) && install -m 0755 bin/shifter_spank.so $(DESTDIR)$(SLURM_PLUGINDIR)/; fi
	install -d $(DESTDIR)$(PREFIX)/share/shifter/slurm
	install -m 0755 contrib/slurm/prolog.sh contrib/slurm/epilog.sh $(DESTDIR)$(PREFIX)/share/shifter/slurm/
	install -m 0644 contrib/slurm/plugstack.conf.example $(DESTDIR)$(PREFIX)/share/shifter/slurm/
	install -d $(DESTDIR)$(PREFIX)/share/shifter/lsf
	install -m 0755 contrib/lsf/job-starter.sh $(DESTDIR)$(PREFIX)/share/shifter/lsf/

clean:
	rm -rf bin
