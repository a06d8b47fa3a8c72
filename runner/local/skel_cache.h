/*
 * Skeletons kept between runs (see DESIGN in skel_cache.c): a run reuses the skeleton an
 * earlier one left in COW_SKEL_DIR while the host trees it mirrors are unchanged, instead of
 * building and deleting its own (~0.25 s of CPU for /usr and /etc).
 */
#ifndef ARL_LOCAL_SKEL_CACHE_H
#define ARL_LOCAL_SKEL_CACHE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"

/* What names a kept skeleton: COW_SKEL_PREFIX SKEL_CACHE_TAG "EUID-UID-GID-KEY-BUILDER". */
#define SKEL_CACHE_TAG "c-"

/* A run's hold on a skeleton. */
struct skel_cache {
	char *top;  /* its directory: TOP/skel is the skeleton, TOP/manifest what it mirrors */
	char *skel; /* TOP/skel */
	int lockfd; /* TOP, flock'ed shared while we use it; -1: none */
	bool kept;  /* left for later runs at close (else deleted) */
};

/*
 * Finds in @dir a kept skeleton of @trees (absolute top-level host trees) for @uid/@gid whose
 * trees are unchanged, or builds one in new directory @dir/@build_name (a name gc knows: it
 * is deleted if we die before it is renamed) and keeps it when the trees were not changing
 * while it was read. Either way holds it (a shared flock) until arl_skel_cache_close().
 * Without @keep, only builds, and deletes it at close (a run's own, as before). -1 with
 * nothing held or left on failure.
 */
int arl_skel_cache_open(struct skel_cache *c, const char *dir, const char *build_name,
                        const char *const *trees, size_t ntrees, uid_t uid, gid_t gid, bool keep,
                        struct arl_err *err);

/* Lets go of it: deleted unless kept. A no-op on one never opened. */
void arl_skel_cache_close(struct skel_cache *c);

/*
 * `gc`: deletes (when @remove) the kept skeletons in @dir of ours no run holds, saying so on
 * @out (NULL: silent). Returns how many it found.
 */
int arl_skel_cache_sweep(const char *dir, bool remove, FILE *out);

#endif
