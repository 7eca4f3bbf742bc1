/*
 * linetime: stamp each line of stdin with the time it arrived.
 *
 *   producer | linetime > stamped
 *
 * Writes "MICROSECONDS LINE" per line, MICROSECONDS since the epoch
 * (CLOCK_REALTIME) read as soon as read(2) returned the line. It asks
 * for the scheduler's shortest time slices (Linux 6.12 and later), as
 * invgen does on a schedule, so that on a busy machine its own wake-up
 * adds as little as it can to what it measures: when the producer wrote
 * each line. Built by bench/invgen.sh against lib/libinv.a.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"		/* inv_sched_slice, from lib/libinv.a */

int
main(void)
{
	static char buf[1 << 16];
	size_t have = 0;
	struct timespec ts;
	long long us;
	ssize_t n;
	char *p, *nl;

	(void)inv_sched_slice(100000);
	for (;;) {
		n = read(STDIN_FILENO, buf + have, sizeof(buf) - have);
		clock_gettime(CLOCK_REALTIME, &ts);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
		have += (size_t)n;
		p = buf;
		while ((nl = memchr(p, '\n', have - (size_t)(p - buf))) != NULL) {
			printf("%lld %.*s\n", us, (int)(nl - p), p);
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == sizeof(buf))
			have = 0;	/* a line longer than the buffer: dropped */
	}
	return 0;
}
