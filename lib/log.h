/*
 * Messages on stderr in err(3) style: "prog: what failed: why".
 * inv_err and inv_errx exit; they are for main() and its helpers only,
 * never for code in lib/, which returns errors instead.
 */
#ifndef INV_LOG_H
#define INV_LOG_H

#include <stdarg.h>

extern int inv_quiet;	/* -q: only errors */
extern int inv_verbose;	/* -v: more detail */

void		 inv_setprogname(const char *);
const char	*inv_progname(void);
void		 inv_warn(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 inv_warnx(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 inv_info(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
_Noreturn void	 inv_err(int, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
_Noreturn void	 inv_errx(int, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

#endif
