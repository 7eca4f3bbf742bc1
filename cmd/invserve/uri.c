/*
 * What invserve reads out of a request target itself, once evhttp has
 * split it: the file under the www directory that a path names, and an
 * integer query parameter. No I/O here, so a fuzzer can drive it alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "invserve.h"
#include "util.h"

/*
 * The file a request path names under www: the path decoded, refused
 * when it is not absolute, holds a NUL or has a ".." segment; a path
 * that ends in "/" names the directory's index.html. Returns 0, -1 for
 * a bad path (400), -2 when the result does not fit in size (404).
 * The caller still checks the real path (a symlink may lead out).
 */
int
uri_file_path(const char *www, const char *uripath, char *out, size_t size)
{
	const char *seg;
	char *dec;
	size_t n;
	int rv = 0;

	if ((dec = evhttp_uridecode(uripath, 0, &n)) == NULL)
		return -1;
	if (strlen(dec) != n || dec[0] != '/')
		rv = -1;
	for (seg = dec; rv == 0 && seg != NULL; seg = strchr(seg + 1, '/'))
		if (strncmp(seg, "/..", 3) == 0 && (seg[3] == '/' ||
		    seg[3] == '\0'))
			rv = -1;
	if (rv == 0 && (size_t)snprintf(out, size, "%s%s%s", www, dec,
	    dec[n - 1] == '/' ? "index.html" : "") >= size)
		rv = -2;
	free(dec);
	return rv;
}

/*
 * The query parameter name of query (NULL: none) as an integer in
 * [min, max]. Returns 0 when it is absent, 1 with *out set, -1 with a
 * message in err when the query is malformed or the value bad.
 */
int
uri_query_int(const char *query, const char *name, long long min,
    long long max, long long *out, char *err, size_t errsize)
{
	struct evkeyvalq q;
	const char *v, *errstr;
	int rv = 0;

	if (query == NULL)
		return 0;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(query, &q) < 0) {
		snprintf(err, errsize, "malformed query string");
		rv = -1;
	} else if ((v = evhttp_find_header(&q, name)) != NULL) {
		rv = 1;
		if (inv_parse_int(v, min, max, out, &errstr) < 0) {
			snprintf(err, errsize, "bad %s '%.40s': %s (expected "
			    "%lld to %lld)", name, v, errstr, min, max);
			rv = -1;
		}
	}
	evhttp_clear_headers(&q);
	return rv;
}
