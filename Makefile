# tandem — one Makefile for the module, the libraries, the host tools and every test.
#   make            build/bs_tandem.so, build/tandemctl, build/tio
#   make check      set-up (scripts/setup.sh), build, every test (unit, func, conformance, linux VM)
#   make bench      the performance table (scripts/bench.sh)
#   make demo       the demo (scripts/demo.sh)
#   make install / uninstall
#   SAN=address,undefined  builds with those sanitizers into build-san/ (`make SAN=... unit` runs the
#                          unit suites there; the preloaded module is for plain builds)

B       := $(if $(SAN),build-san,build)
TGT_SRC ?= build/tgt-src/tgt/usr
CC      ?= cc
WARN    := -Wall -Wextra -Wshadow -Wvla -Wstrict-prototypes -Wmissing-prototypes -Werror
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -fPIC -D_GNU_SOURCE -MMD -MP -I. -pthread
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SAN)
endif
LIBS    := -lisal -lpthread
PREFIX  ?= /usr
BSDIR   ?= $(PREFIX)/lib/tgt/backing-store

RAID_SRC := $(wildcard raid/*.c)
REPL_SRC := $(wildcard replication/*.c)
CMD_SRC  := $(filter-out cmdvol/tandemctl%,$(wildcard cmdvol/*.c))
LIB_SRC  := $(RAID_SRC) $(REPL_SRC) $(CMD_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
TGT_SRCS := $(wildcard target/*.c)
TGT_OBJ  := $(TGT_SRCS:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%)

.PHONY: all setup check unit func conformance linux bench demo install uninstall clean
all: $(B)/bs_tandem.so $(B)/bs_tandem_fi.so $(B)/tandemctl $(B)/tio $(B)/parbench $(UNIT_BIN)

setup:
	@scripts/setup.sh

$(TGT_SRC)/tgtd.h:
	scripts/setup.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# target/ alone sees tgt's headers.
$(B)/target/%.o: target/%.c | $(TGT_SRC)/tgtd.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -Wno-strict-prototypes -Wno-shadow -Wno-sign-compare \
	    -Wno-unused-parameter -I$(TGT_SRC) -c -o $@ $<

$(B)/libtandem.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@; ar rcs $@ $^

$(B)/bs_tandem.so: $(TGT_OBJ) $(B)/libtandem.a
	$(CC) -shared $(LDFLAGS) -o $@ $(TGT_OBJ) $(B)/libtandem.a $(LIBS) -liscsi -lcrypto -ldl

# The fault-injection module for tests (docs/raid-resilience.md): the same sources compiled with
# -DTANDEM_FAULT_INJECTION into $(B)/fi/. Never installed.
FI_OBJ := $(TGT_OBJ:$(B)/%=$(B)/fi/%) $(LIB_OBJ:$(B)/%=$(B)/fi/%)
$(B)/fi/target/%.o: target/%.c | $(TGT_SRC)/tgtd.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTANDEM_FAULT_INJECTION -Wno-missing-prototypes -Wno-strict-prototypes \
	    -Wno-shadow -Wno-sign-compare -Wno-unused-parameter -I$(TGT_SRC) -c -o $@ $<
$(B)/fi/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTANDEM_FAULT_INJECTION -c -o $@ $<
$(B)/bs_tandem_fi.so: $(FI_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $(FI_OBJ) $(LIBS) -liscsi -lcrypto -ldl

$(B)/tandemctl: $(B)/cmdvol/tandemctl.o $(B)/cmdvol/tandemctl_offline.o $(B)/libtandem.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -liscsi -lcrypto

$(B)/parbench: $(B)/tests/tools/parbench.o $(B)/libtandem.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tio: $(B)/tests/tools/tio.o
	$(CC) $(LDFLAGS) -o $@ $^ -liscsi -lm -lpthread

$(B)/unit/%: $(B)/tests/unit/%.o $(B)/libtandem.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -liscsi -lcrypto $(shell pkg-config --libs check)

check: setup
	@$(MAKE) --no-print-directory all
	@BUILD_DIR=$(B) scripts/run-tests.sh

unit: all
	@BUILD_DIR=$(B) scripts/run-tests.sh unit
func: all
	@BUILD_DIR=$(B) scripts/run-tests.sh func
conformance: all
	@BUILD_DIR=$(B) scripts/run-tests.sh conformance
linux: all
	@BUILD_DIR=$(B) scripts/run-tests.sh linux

bench: setup
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh

# conformance-matrix: the conformance tests, then their matrix per LU type into docs/conformance.md
# (scripts/conformance-matrix.sh; --reuse there skips the run). perf-page: the figures of the last
# make bench (build/bench/) into docs/performance.md (scripts/perf-page.sh); it runs nothing.
.PHONY: conformance-matrix perf-page
conformance-matrix: all
	@scripts/conformance-matrix.sh
perf-page:
	@scripts/perf-page.sh

demo: setup
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

# install: the module into tgt's module directory, tandemctl, its man page, the systemd template
# unit tandem@.service and the targets.conf examples (docs/install.md). DESTDIR and PREFIX are
# honoured; the unit goes to /lib/systemd/system for PREFIX=/usr, else $(PREFIX)/lib/systemd/system.
# The man page is docs/tandemctl.md converted by pandoc when it is installed, else the hand-written
# scripts/packaging/tandemctl.8.
MANDIR   ?= $(PREFIX)/share/man
DOCDIR   ?= $(PREFIX)/share/doc/tandem
UNITDIR  ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
EXAMPLES := $(sort $(wildcard scripts/packaging/examples/*))
MANPAGE  := $(if $(shell command -v pandoc 2>/dev/null),$(B)/cmdvol/tandemctl.8,scripts/packaging/tandemctl.8)

$(B)/cmdvol/tandemctl.8: docs/tandemctl.md scripts/packaging/tandemctl.8
	@mkdir -p $(dir $@)
	pandoc -s -f markdown -t man --shift-heading-level-by=-1 -M title=tandemctl -M section=8 \
	    -o $@ docs/tandemctl.md || cp scripts/packaging/tandemctl.8 $@

install: $(B)/bs_tandem.so $(B)/tandemctl $(MANPAGE)
	install -d $(DESTDIR)$(BSDIR) $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 $(B)/bs_tandem.so $(DESTDIR)$(BSDIR)/bs_tandem.so
	install -m 0755 $(B)/tandemctl $(DESTDIR)$(PREFIX)/sbin/tandemctl
	install -m 0644 $(MANPAGE) $(DESTDIR)$(MANDIR)/man8/tandemctl.8
	install -m 0644 scripts/packaging/tandem@.service $(DESTDIR)$(UNITDIR)/tandem@.service
	install -m 0644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/

uninstall:
	rm -f $(DESTDIR)$(BSDIR)/bs_tandem.so $(DESTDIR)$(PREFIX)/sbin/tandemctl \
	    $(DESTDIR)$(MANDIR)/man8/tandemctl.8 $(DESTDIR)$(UNITDIR)/tandem@.service \
	    $(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(EXAMPLES)))
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || true

clean:
	rm -rf $(B)/fi $(B)/unit $(B)/target $(B)/raid $(B)/replication $(B)/cmdvol $(B)/tests $(B)/*.a $(B)/*.so $(B)/tandemctl $(B)/tio $(B)/parbench

-include $(shell find $(B) -name '*.d' 2>/dev/null)
