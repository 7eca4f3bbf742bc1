/*
 * GnuTLS left to initialise itself when it is used, not when it is
 * loaded. No program here uses GnuTLS: libpq brings it in through
 * libldap (for LDAP service lookups), and libldap calls
 * gnutls_global_init() itself before its first TLS connection. Without
 * this, GnuTLS's constructor initialises it in every program that maps
 * libpq (its priorities, its crypto back ends, p11-kit), about 0.8 MB
 * of each one's RSS for nothing.
 *
 * This is GnuTLS's own switch (GNUTLS_SKIP_GLOBAL_INIT in
 * <gnutls/gnutls.h>, written out here so the build needs no GnuTLS
 * headers): the library calls _gnutls_global_init_skip(), a weak symbol,
 * and a program's definition takes its place. The Makefile links this
 * file into every program, outside libinv.a so it is always there, and
 * exports the symbol, so a libpq that lib/pq.c maps later sees it too.
 */
int	_gnutls_global_init_skip(void);

int
_gnutls_global_init_skip(void)
{
	return 1;
}
