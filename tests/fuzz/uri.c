/*
 * Fuzz the request-target handling of invserve (cmd/invserve/uri.c)
 * behind libevent's parser: a path it accepts names a file under the
 * www directory, with no ".." segment and no NUL; a query parameter it
 * accepts is an integer in range; anything else is refused, with a
 * message.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "invserve.h"

#define WWW	"/srv/inv/www"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
path(const char *p)
{
	char out[PATH_MAX];
	const char *seg;
	int rv = uri_file_path(WWW, p, out, sizeof(out));

	if (rv < -2 || rv > 0)
		abort();
	if (rv < 0)
		return;
	if (strncmp(out, WWW "/", sizeof(WWW)) != 0 || strlen(out) >= sizeof(out))
		abort();
	for (seg = out; seg != NULL; seg = strchr(seg + 1, '/'))
		if (strncmp(seg, "/..", 3) == 0 && (seg[3] == '/' ||
		    seg[3] == '\0'))
			abort();
}

static void
param(const char *query, const char *name, long long min, long long max)
{
	char err[160] = "";
	long long v = min - 1;
	int rv = uri_query_int(query, name, min, max, &v, err, sizeof(err));

	if ((rv == 1 && (v < min || v > max)) || (rv == -1 && err[0] == '\0') ||
	    rv < -1 || rv > 1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evhttp_uri *uri;
	char *s;

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	/* the path as evhttp hands it over, and the raw bytes too */
	if (s[0] == '/')
		path(s);
	if ((uri = evhttp_uri_parse_with_flags(s, EVHTTP_URI_NONCONFORMANT))
	    != NULL) {
		const char *p = evhttp_uri_get_path(uri);
		const char *q = evhttp_uri_get_query(uri);

		if (p != NULL && p[0] == '/')
			path(p);
		param(q, "before", 1, INT64_MAX / 2);
		param(q, "limit", 1, 1000000);
		param(q, "last_event_id", 0, INT64_MAX / 2);
		evhttp_uri_free(uri);
	}
	free(s);
	return 0;
}
