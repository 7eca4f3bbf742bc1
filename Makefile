# inv: a real-time invoice stream as small cooperating Unix programs.
# Plain make. PREFIX, DESTDIR, CFLAGS, LDFLAGS are honoured.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
BINDIR    = $(PREFIX)/bin
DATADIR   = $(PREFIX)/share/inv
MANDIR    = $(PREFIX)/share/man
# Where each shell looks for completions of its own accord.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

PKGS      = libpq hiredis libbsd-overlay libevent jansson
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Wno-unused-parameter
ifdef WERROR
WARN     += -Werror
endif
ifdef SAN
CFLAGS   += -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Ilib $(PKG_CFLAGS) \
             -DINV_VERSION='"$(VERSION)"' -DINV_DATADIR='"$(DATADIR)"' -MMD -MP
LIBS       = $(PKG_LIBS) -lm
# invstats and invctl map libpq only when they talk to PostgreSQL: they
# link lib/pq.c's stand-ins instead of it. lib/pq.c is not in libinv.a,
# so the others link libpq itself.
LAZY_PQ   := invstats invctl
LIBS_LAZY := $(shell pkg-config --libs $(filter-out libpq,$(PKGS)) \
             2>/dev/null) -ldl -lpthread -lm
# lib/gnutls.c keeps libpq's GnuTLS (through libldap) from initialising
# itself at load: in every program, outside libinv.a, and exported so
# that a libpq mapped later by lib/pq.c finds it as well.
PROG_OBJ  := lib/gnutls.o
PROG_LDFLAGS = -Wl,--export-dynamic-symbol=_gnutls_global_init_skip

# Every directory under cmd/ is one program, built as cmd/NAME/NAME.
PROGS     := $(notdir $(wildcard cmd/*))
BINS      := $(foreach p,$(PROGS),cmd/$(p)/$(p))
LIB_SRC   := $(filter-out lib/pq.c $(PROG_OBJ:.o=.c),$(wildcard lib/*.c))
LIB_OBJ   := $(LIB_SRC:.c=.o)
UNIT_SRC  := $(wildcard tests/unit/*.c)
UNIT_BINS := $(UNIT_SRC:.c=)
MAN1      := $(wildcard share/man/man1/*.1)
MAN7      := $(wildcard share/man/man7/*.7)

all: $(BINS)

%.o: %.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

lib/libinv.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

define prog_rule
cmd/$(1)/$(1): $(patsubst %.c,%.o,$(wildcard cmd/$(1)/*.c)) \
    $(if $(filter $(1),$(LAZY_PQ)),lib/pq.o) $(PROG_OBJ) lib/libinv.a
	$$(CC) $$(LDFLAGS) $$(PROG_LDFLAGS) -o $$@ $$^ $$(if $$(filter $(1),$$(LAZY_PQ)),$$(LIBS_LAZY),$$(LIBS))
$(1): cmd/$(1)/$(1)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rule,$(p))))

tests/unit/%: tests/unit/%.o lib/libinv.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

units: $(UNIT_BINS)

# Install the Debian packages that are missing (as root, or through sudo).
deps:
	@sh tests/deps

# Every test: C unit tests and bats, against a throwaway PostgreSQL and
# Redis that tests/run starts in a temporary directory and always stops.
# Among them tests/valgrind.bats: a short cycle through the whole stack
# with every program under valgrind memcheck (--error-exitcode=99
# --leak-check=full --errors-for-leak-kinds=definite).
check:
	@sh tests/deps --quiet
	@$(MAKE) -s all units WERROR=1
	@sh tests/run $(TESTS)

# The C unit tests and the bats files that drive the programs hardest
# (SAN_TESTS, default in tests/san) against programs built by clang
# (SAN_CC) with AddressSanitizer, LeakSanitizer and UndefinedBehavior-
# Sanitizer, in a copy of the tree under build/san, so a sanitized object
# never mixes with a normal one. halt_on_error, abort_on_error and
# detect_leaks are on; each report goes to build/san/reports/ and fails
# the run. (make check SAN=1 builds in place, with gcc by default.)
SAN_TESTS ?=
check-san:
	@sh tests/deps --quiet
	@sh tests/san $(SAN_TESTS)

# Fuzz targets (libFuzzer, clang): tests/fuzz/NAME.c with the code it
# drives, built under build/fuzz with AddressSanitizer and UBSan. make fuzz
# runs each for FUZZ_SECONDS from its seeds in tests/fuzz/corpus/NAME/
# (what it finds is kept in build/fuzz/corpus/NAME/); a crash leaves the
# input in build/fuzz/ and fails.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES   := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/*.c))
FUZZ_SRC      = $(LIB_SRC) cmd/invserve/frame.c cmd/invserve/uri.c
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE $(WARN) -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -Ilib -Icmd/invserve $(PKG_CFLAGS) -DINV_VERSION='"$(VERSION)"' \
                -DINV_DATADIR='"$(DATADIR)"'

build/fuzz/%: tests/fuzz/%.c $(FUZZ_SRC) $(wildcard lib/*.h) cmd/invserve/invserve.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRC) $(LIBS)

fuzz-build: $(addprefix build/fuzz/,$(FUZZ_NAMES))

fuzz:
	@sh tests/deps --quiet
	@$(MAKE) -s fuzz-build
	@sh tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_NAMES)

# The dashboard on a private PostgreSQL and Redis under ./var/.
run:
	@sh tests/deps --quiet
	@$(MAKE) -s all
	@sh tests/stack run

# Apply the migrations in sql/ to DATABASE_URL (or the private database).
migrate: all
	@sh sql/migrate

bench: all
	@sh bench/run

# One whole real-time cycle with 1,000 SSE clients (bench/soak; about
# 12.5 minutes, SOAK_* in the environment make it shorter).
soak: all
	@sh bench/soak

# Programs, man pages, completions, and under DATADIR the word lists, the
# page, and the migrations with sql/migrate. An installed program finds
# DATADIR beside its bin/ (lib/names.c), so DESTDIR trees work as they are.
# One completion file serves every program: bash and fish load it under
# each program's name through a symlink.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/words $(DESTDIR)$(DATADIR)/sql \
	    $(DESTDIR)$(DATADIR)/www $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)
	install -m 644 share/words/*.txt $(DESTDIR)$(DATADIR)/words
	install -m 644 sql/*.sql $(DESTDIR)$(DATADIR)/sql
	install -m 755 sql/migrate $(DESTDIR)$(DATADIR)/sql
	cp -R share/www/. $(DESTDIR)$(DATADIR)/www/
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	install -m 644 completions/inv.bash $(DESTDIR)$(BASHCOMPDIR)/inv
	install -m 644 completions/_inv $(DESTDIR)$(ZSHCOMPDIR)/_inv
	install -m 644 completions/inv.fish $(DESTDIR)$(FISHCOMPDIR)/inv.fish
	for p in $(PROGS); do \
	    ln -sf inv $(DESTDIR)$(BASHCOMPDIR)/$$p; \
	    ln -sf inv.fish $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
	done

uninstall:
	for p in $(PROGS); do \
	    rm -f $(DESTDIR)$(BINDIR)/$$p $(DESTDIR)$(BASHCOMPDIR)/$$p \
	        $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
	done
	rm -f $(DESTDIR)$(BASHCOMPDIR)/inv $(DESTDIR)$(ZSHCOMPDIR)/_inv \
	    $(DESTDIR)$(FISHCOMPDIR)/inv.fish
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(MAN7)))
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -f $(BINS) $(UNIT_BINS) lib/libinv.a
	rm -rf build
	find cmd lib tests -name '*.[od]' -delete

.PHONY: all units deps check check-san fuzz fuzz-build run migrate bench soak install uninstall clean $(PROGS)

-include $(wildcard cmd/*/*.d lib/*.d tests/unit/*.d)
