# inv: a real-time invoice stream as small cooperating Unix programs.
# Plain make. PREFIX, DESTDIR, CFLAGS, LDFLAGS are honoured.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
BINDIR    = $(PREFIX)/bin
DATADIR   = $(PREFIX)/share/inv
MANDIR    = $(PREFIX)/share/man

PKGS      = libpq hiredis libbsd-overlay libevent jansson
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Wno-unused-parameter
ifdef WERROR
WARN     += -Werror
endif
ifdef SAN
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Ilib $(PKG_CFLAGS) \
             -DINV_VERSION='"$(VERSION)"' -DINV_DATADIR='"$(DATADIR)"' -MMD -MP
LIBS       = $(PKG_LIBS) -lm

# Every directory under cmd/ is one program, built as cmd/NAME/NAME.
PROGS     := $(notdir $(wildcard cmd/*))
BINS      := $(foreach p,$(PROGS),cmd/$(p)/$(p))
LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(LIB_SRC:.c=.o)
UNIT_SRC  := $(wildcard tests/unit/*.c)
UNIT_BINS := $(UNIT_SRC:.c=)

all: $(BINS)

%.o: %.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

lib/libinv.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

define prog_rule
cmd/$(1)/$(1): $(patsubst %.c,%.o,$(wildcard cmd/$(1)/*.c)) lib/libinv.a
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LIBS)
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
check:
	@sh tests/deps --quiet
	@$(MAKE) -s all units WERROR=1
	@sh tests/run $(TESTS)

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

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/words $(DESTDIR)$(DATADIR)/sql \
	    $(DESTDIR)$(DATADIR)/www $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)
	install -m 644 share/words/*.txt $(DESTDIR)$(DATADIR)/words
	install -m 644 sql/*.sql $(DESTDIR)$(DATADIR)/sql
	install -m 755 sql/migrate $(DESTDIR)$(DATADIR)/sql
	cp -R share/www/. $(DESTDIR)$(DATADIR)/www/
	for f in share/man/man1/*.1; do [ -e "$$f" ] && install -m 644 $$f $(DESTDIR)$(MANDIR)/man1; done; true
	for f in share/man/man7/*.7; do [ -e "$$f" ] && install -m 644 $$f $(DESTDIR)$(MANDIR)/man7; done; true

uninstall:
	for p in $(PROGS); do rm -f $(DESTDIR)$(BINDIR)/$$p; done
	rm -rf $(DESTDIR)$(DATADIR)
	for f in share/man/man1/*.1 share/man/man7/*.7; do rm -f $(DESTDIR)$(MANDIR)/$${f#share/man/}; done

clean:
	rm -f $(BINS) $(UNIT_BINS) lib/libinv.a
	find cmd lib tests -name '*.[od]' -delete

.PHONY: all units deps check run migrate bench install uninstall clean $(PROGS)

-include $(wildcard cmd/*/*.d lib/*.d tests/unit/*.d)
