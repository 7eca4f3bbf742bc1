/*
 * Numbers from outside, clocks, and the project's own PRNG.
 */
#ifndef INV_UTIL_H
#define INV_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* sysexits(3) */
#define EX_OK		0
#define EX_USAGE	64
#define EX_DATAERR	65
#define EX_UNAVAILABLE	69
#define EX_SOFTWARE	70
#define EX_OSERR	71
#define EX_CANTCREAT	73
#define EX_IOERR	74
#define EX_TEMPFAIL	75
#define EX_NOPERM	77

int	 inv_parse_int(const char *, long long, long long, long long *,
	    const char **);
int	 inv_parse_rate(const char *, int64_t *);
int64_t	 inv_mono_ns(void);
int64_t	 inv_real_us(void);
char	*inv_time_format(int64_t, char *, size_t);
int	 inv_time_parse(const char *, int64_t *);
int	 inv_sched_slice(int64_t);
const char *inv_getenv(const char *);
void	 inv_heap_trim(size_t);

/* xoshiro256**, seeded through splitmix64: fast, and the same everywhere. */
struct inv_rng {
	uint64_t s[4];
};
void	 inv_rng_seed(struct inv_rng *, uint64_t);
uint64_t inv_rng_next(struct inv_rng *);
uint64_t inv_rng_below(struct inv_rng *, uint64_t);

#endif
