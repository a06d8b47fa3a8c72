/*
 * A pool mapping -> struct arl_pool: the keys every pool has (backend, replicas) and, through
 * its backend's key table (pool_kind.h), that backend's own config. Keys another registered
 * backend owns are checked too (a mistake there is a mistake whatever the backend) and draw a
 * warning that they have no effect.
 */
#ifndef ARL_POOL_PARSE_H
#define ARL_POOL_PARSE_H

#include "jobfile/fields.h"
#include "jobfile/job.h"

/*
 * Fills @p from the pool named @k whose value is @n; problems go through @r. @dir resolves
 * relative paths (the job file's directory). @p is released by arl_jobfile_free().
 */
void arl_pool_parse(struct arl_fields *r, const char *dir, const struct arl_node *k,
                    const struct arl_node *n, struct arl_pool *p);

/*
 * Puts every pool of the loaded @f on @kind's backend (`run --backend`), its config parsed
 * again from the pool's mapping by @kind's table. Every key was checked at load: what is left
 * to report in @diags is a key @kind requires that a pool lacks (then -1).
 */
int arl_jobfile_set_backend(struct arl_jobfile *f, const struct arl_pool_kind *kind,
                            struct arl_diags *diags);

#endif
