/*
 * Strict number parsing (strtonum from libbsd underneath), clocks, time
 * formatting, a small PRNG whose output depends on nothing but its
 * seed, so --seed reproduces a run byte for byte on any machine, and
 * the heap given back after a burst.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__		/* defined by the headers above */
#include <malloc.h>
#endif

#include "util.h"

/*
 * A whole number in [min, max], nothing else: strtonum(3) also takes
 * leading white space and a '+', which a strict parser refuses, so
 * " 1" is not 1 in a flag or a query parameter.
 */
int
inv_parse_int(const char *s, long long min, long long max, long long *out,
    const char **errstr)
{
	const char *d = *s == '-' ? s + 1 : s;

	if (*d < '0' || *d > '9') {
		*out = 0;
		*errstr = "invalid";
		return -1;
	}
	*out = strtonum(s, min, max, errstr);
	return *errstr != NULL ? -1 : 0;
}

/*
 * A rate in lines per second, with up to three decimals, into
 * thousandths (so "2" is 2000 and "0.5" is 500). 0 means unthrottled.
 */
int
inv_parse_rate(const char *s, int64_t *milli)
{
	int64_t v = 0;
	int intdigits = 0, dec = -1;

	for (; *s >= '0' && *s <= '9'; s++) {
		if (++intdigits > 7)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (intdigits == 0)
		return -1;
	if (*s == '.') {
		for (dec = 0, s++; *s >= '0' && *s <= '9'; s++) {
			if (++dec > 3)
				return -1;
			v = v * 10 + (*s - '0');
		}
		if (dec == 0)
			return -1;
	}
	if (*s != '\0')
		return -1;
	for (dec = dec < 0 ? 0 : dec; dec < 3; dec++)
		v *= 10;
	*milli = v;
	return 0;
}

int64_t
inv_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
inv_real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Ask the scheduler for time slices of ns (0: its default). Since Linux
 * 6.12 a task with a short slice is run sooner when it wakes, ahead of
 * busy ones: what a program on a schedule that works for microseconds
 * per wake-up wants on a loaded machine. It needs no privilege, and the
 * policy and nice value stay as they were; only the normal policies
 * (SCHED_OTHER, SCHED_BATCH) are touched. -1 where the kernel does not
 * know it, and nothing changes.
 */
int
inv_sched_slice(int64_t ns)
{
#if defined(SYS_sched_getattr) && defined(SYS_sched_setattr)
	struct {
		uint32_t size, policy;
		uint64_t flags;
		int32_t nice;
		uint32_t priority;
		uint64_t runtime, deadline, period;
	} attr;

	memset(&attr, 0, sizeof(attr));
	if (syscall(SYS_sched_getattr, 0, &attr, sizeof(attr), 0) < 0 ||
	    (attr.policy != 0 && attr.policy != 3))
		return -1;
	attr.size = sizeof(attr);
	attr.flags = 0;
	attr.runtime = (uint64_t)ns;
	return (int)syscall(SYS_sched_setattr, 0, &attr, 0);
#else
	return -1;
#endif
}

/* RFC 3339 in UTC with microseconds: 2026-12-03T15:32:10.123456Z */
char *
inv_time_format(int64_t us, char *buf, size_t size)
{
	/* The date and time to the second change rarely: keep the last. */
	static __thread time_t last = -1;
	static __thread char head[32];
	static __thread size_t headlen;
	time_t secs = us / 1000000;
	int64_t frac = us % 1000000;
	struct tm tm;
	int i;

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	if (secs != last) {
		gmtime_r(&secs, &tm);
		headlen = strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
		last = secs;
	}
	if (size < headlen + 9) {
		snprintf(buf, size, "%s", head);
		return buf;
	}
	memcpy(buf, head, headlen);
	buf[headlen] = '.';
	for (i = 6; i >= 1; i--) {
		buf[headlen + i] = '0' + frac % 10;
		frac /= 10;
	}
	buf[headlen + 7] = 'Z';
	buf[headlen + 8] = '\0';
	return buf;
}

/*
 * An RFC 3339 time (fraction and offset optional, "Z" or +HH:MM) or
 * "@SECONDS" since the epoch, into microseconds since the epoch.
 */
int
inv_time_parse(const char *s, int64_t *us)
{
	struct tm tm;
	const char *p;
	int64_t frac = 0, scale = 100000, off = 0;
	long long secs;
	const char *errstr;

	if (s[0] == '@') {
		if (inv_parse_int(s + 1, 0, 253402300799LL, &secs, &errstr) < 0)
			return -1;
		*us = secs * 1000000;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return -1;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' && p[1] == '\0')
		off = 0;
	else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
	    p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
	    p[4] >= '0' && p[4] <= '5' && p[5] >= '0' && p[5] <= '9') {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
		    ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
	} else
		return -1;
	*us = ((int64_t)timegm(&tm) - off) * 1000000 + frac;
	return 0;
}

/* An environment variable, or NULL when it is unset or empty. */
const char *
inv_getenv(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/*
 * Give the heap's free pages back to the system after a burst. glibc's
 * free() returns memory only from the top of the heap, and small chunks
 * wait in their bins unmerged, so a server whose heap once held a burst
 * (a thousand clients leaving at once, each with a read buffer for its
 * end of file; queues that grew while a client was slow) would keep that
 * high-water mark resident for good. malloc_trim(0) merges the free
 * chunks and gives back every whole free page. It walks them all, so it
 * runs only when the free memory has grown by min bytes since it last
 * ran; meant for a timer. Elsewhere than glibc it does nothing.
 */
void
inv_heap_trim(size_t min)
{
#ifdef __GLIBC__
	static size_t after;	/* free bytes in the heap when it last ran */
	struct mallinfo2 mi = mallinfo2();

	if (mi.fordblks < after + min) {
		if (mi.fordblks < after)
			after = mi.fordblks;	/* reused meanwhile */
		return;
	}
	malloc_trim(0);
	after = mallinfo2().fordblks;
#else
	(void)min;
#endif
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
inv_rng_seed(struct inv_rng *r, uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
inv_rng_next(struct inv_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n) without modulo bias (Lemire's method). */
uint64_t
inv_rng_below(struct inv_rng *r, uint64_t n)
{
	unsigned __int128 m;
	uint64_t lo, t;

	if (n == 0)
		return 0;
	m = (unsigned __int128)inv_rng_next(r) * n;
	lo = (uint64_t)m;
	if (lo < n) {
		t = -n % n;
		while (lo < t) {
			m = (unsigned __int128)inv_rng_next(r) * n;
			lo = (uint64_t)m;
		}
	}
	return m >> 64;
}
