/*
 * Job-file validation: the node tree of yaml_load.c -> struct arl_jobfile, with defaults merged
 * under jobs, foreach expanded (each job by expand.c) and load-time templates rendered. Every
 * problem is collected in the caller's diagnostics (the whole file is checked, not just up to
 * the first error).
 */
#ifndef ARL_SCHEMA_H
#define ARL_SCHEMA_H

#include <stddef.h>

#include "err.h"
#include "jobfile/job.h"

/*
 * Parses the job file @path whose text is @buf/@len. Relative paths in it (datasets, pool
 * workspaces) are resolved against @path's directory. Returns 0 and sets *out when the file
 * is valid; -1 (with diagnostics) otherwise, leaving *out untouched.
 */
int arl_jobfile_parse(const char *path, const char *buf, size_t len, struct arl_jobfile **out,
                      struct arl_diags *diags);
/* The same with the file's 'params:' overridden by @sets (names it does not declare unused). */
int arl_jobfile_parse_with(const char *path, const char *buf, size_t len,
                           const struct arl_param_set *sets, size_t nsets, struct arl_jobfile **out,
                           struct arl_diags *diags);

#endif
