/*
 * Company names: "<first> <trade> <suffix>", each part drawn from a word
 * list under DATADIR/words. The lists are read once at start-up.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "names.h"

struct list {
	char	**w;
	size_t	  n;
};

static struct list first, trade, suffix;

/*
 * The data directory: $INV_DATADIR, else share/ of the source tree when
 * the program runs from cmd/NAME/ in it, else share/inv beside the bin/
 * the program runs from (an installed tree, wherever it was put: DESTDIR,
 * a moved prefix), else the DATADIR the program was built for.
 */
const char *
inv_datadir(void)
{
	static char dir[PATH_MAX];
	char exe[PATH_MAX], probe[PATH_MAX + 32], *slash;
	const char *env;
	ssize_t n;

	if (dir[0] != '\0')
		return dir;
	if ((env = inv_getenv("INV_DATADIR")) != NULL) {
		snprintf(dir, sizeof(dir), "%s", env);
		return dir;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL)
			*slash = '\0';
		snprintf(probe, sizeof(probe), "%s/../../share/words", exe);
		if (access(probe, R_OK) == 0 &&
		    strstr(exe, "/cmd/") != NULL) {
			snprintf(probe, sizeof(probe), "%s/../../share", exe);
			if (realpath(probe, dir) != NULL)
				return dir;
		}
		snprintf(probe, sizeof(probe), "%s/../share/inv", exe);
		if (access(probe, R_OK | X_OK) == 0 && realpath(probe, dir) != NULL)
			return dir;
	}
	snprintf(dir, sizeof(dir), "%s", INV_DATADIR);
	return dir;
}

static int
load(struct list *l, const char *dir, const char *name, const char **why)
{
	char path[PATH_MAX + 32], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "r")) == NULL) {
		static char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
		*why = msg;
		return -1;
	}
	while ((len = getline(&line, &cap, fp)) != -1) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		l->w = reallocarray(l->w, l->n + 1, sizeof(*l->w));
		if (l->w == NULL || (l->w[l->n] = strdup(line)) == NULL) {
			*why = "out of memory";
			fclose(fp);
			free(line);
			return -1;
		}
		l->n++;
	}
	free(line);
	fclose(fp);
	if (l->n == 0) {
		static char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "%s: no words", path);
		*why = msg;
		return -1;
	}
	return 0;
}

/* Load the word lists from dir (NULL: DATADIR/words). */
int
inv_names_load(const char *dir, const char **why)
{
	char buf[PATH_MAX + 16];

	if (first.n > 0)
		return 0;
	if (dir == NULL) {
		snprintf(buf, sizeof(buf), "%s/words", inv_datadir());
		dir = buf;
	}
	if (load(&first, dir, "first.txt", why) < 0 ||
	    load(&trade, dir, "trade.txt", why) < 0 ||
	    load(&suffix, dir, "suffix.txt", why) < 0)
		return -1;
	return 0;
}

void
inv_name_make(struct inv_rng *r, char *buf, size_t size)
{
	const char *part[3];
	size_t n = 0, len;
	int i;

	/* One draw per statement: the order is the seed's contract. */
	part[0] = first.w[inv_rng_below(r, first.n)];
	part[1] = trade.w[inv_rng_below(r, trade.n)];
	part[2] = suffix.w[inv_rng_below(r, suffix.n)];

	for (i = 0; i < 3 && size > 0; i++) {
		len = strlen(part[i]);
		if (i > 0 && n + 1 < size)
			buf[n++] = ' ';
		if (n + len >= size)
			len = size - 1 - n;
		memcpy(buf + n, part[i], len);
		n += len;
	}
	if (size > 0)
		buf[n] = '\0';
}
