/*
 * Plausible company names from the word lists in share/words/.
 */
#ifndef INV_NAMES_H
#define INV_NAMES_H

#include <stddef.h>

#include "util.h"

const char	*inv_datadir(void);
int		 inv_names_load(const char *, const char **);
void		 inv_name_make(struct inv_rng *, char *, size_t);

#endif
