/* Loading job files from disk for the commands: read, parse, print diagnostics. */
#ifndef ARL_JOBLOAD_H
#define ARL_JOBLOAD_H

#include <stdio.h>

#include "jobfile/job.h"

/*
 * Loads and validates @path; diagnostics (errors and warnings) are printed to @diag_out with
 * source snippets. Returns 0 and sets *out when valid, -1 otherwise.
 */
int arl_jobfile_load(const char *path, struct arl_jobfile **out, FILE *diag_out);

/*
 * The same, with every pool put on @backend's kind (`run --backend`; NULL: as the file says):
 * a key that kind requires and the pool lacks is an error here.
 */
int arl_jobfile_load_on(const char *path, const struct arl_pool_kind *backend,
                        struct arl_jobfile **out, FILE *diag_out);

/* The same with the file's 'params:' overridden by @sets (--set, --set-file). */
int arl_jobfile_load_with(const char *path, const struct arl_pool_kind *backend,
                          const struct arl_param_set *sets, size_t nsets, struct arl_jobfile **out,
                          FILE *diag_out);

#endif
