/*
 * Redis: REDIS_URL, the key namespace, and blocking connections with a
 * timeout (hiredis 0.14). Programs on an event loop use hiredis's async
 * API with the address this parses.
 */
#ifndef INV_RDS_H
#define INV_RDS_H

#include <stddef.h>
#include <sys/time.h>

#include <hiredis.h>

struct inv_redis_url {
	char	host[256];	/* empty for a Unix socket */
	int	port;
	char	path[256];	/* Unix socket path, or empty */
	char	user[128];
	char	password[256];
	int	db;
};

const char	*inv_redis_url(const char *);
int		 inv_redis_url_parse(const char *, struct inv_redis_url *,
		    char *, size_t);
redisContext	*inv_redis_connect(const struct inv_redis_url *, int,
		    char *, size_t);
int		 inv_redis_auth(redisContext *, const struct inv_redis_url *,
		    char *, size_t);
const char	*inv_ns(void);
int		 inv_ns_check(const char *);
char		*inv_key(char *, size_t, const char *);

#endif
