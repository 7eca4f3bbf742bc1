/*
 * err(3)-style messages with the program name in front. One write(2) per
 * message so lines from several programs sharing a terminal or a
 * supervisor's pipe never interleave mid-line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int inv_quiet;
int inv_verbose;

static const char *progname = "inv";

void
inv_setprogname(const char *name)
{
	const char *slash = strrchr(name, '/');

	progname = slash != NULL ? slash + 1 : name;
}

const char *
inv_progname(void)
{
	return progname;
}

static void
vmessage(const char *fmt, va_list ap, const char *reason)
{
	char buf[2048];
	int n, m;

	n = snprintf(buf, sizeof(buf), "%s: ", progname);
	m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	if (reason != NULL)
		n += snprintf(buf + n, sizeof(buf) - n, ": %s", reason);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(STDERR_FILENO, buf, n);
}

void
inv_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
inv_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap, NULL);
	va_end(ap);
}

void
inv_info(const char *fmt, ...)
{
	va_list ap;

	if (inv_quiet)
		return;
	va_start(ap, fmt);
	vmessage(fmt, ap, NULL);
	va_end(ap);
}

void
inv_err(int code, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap, strerror(saved));
	va_end(ap);
	exit(code);
}

void
inv_errx(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap, NULL);
	va_end(ap);
	exit(code);
}
