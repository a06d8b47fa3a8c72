/*
 * Expanding one job of a job file: its mapping, the file's defaults under it and a foreach item
 * bound -> struct arl_job. The loader (schema.c) expands every job to validate it; a worker
 * expands a lazy (foreach) job again just before it runs (arl_job_materialize), through the
 * same code, so the job that runs is the job that was checked. Expansion only reads the file:
 * what validation alone checks (names unique across the file, where a FilePatch may write) is
 * the loader's, through hooks.
 */
#ifndef ARL_EXPAND_H
#define ARL_EXPAND_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "jobfile/job.h"

/*
 * The loader's checks, called while a job expands. Each reports its own diagnostics and
 * returns false to reject the job.
 */
struct arl_expand_checks {
	/* The job's name, rendered and well-formed. */
	bool (*name)(void *arg, const struct arl_node *at, const char *name);
	/* A job whose name @name passed was rejected for another reason. */
	void (*rejected)(void *arg, const char *name, struct arl_loc at);
	/* A FilePatch path for @pool (NULL: the job names no valid pool); @deferred: it holds
	 * run-time templates. */
	bool (*filepatch_path)(void *arg, const struct arl_node *at, const struct arl_pool *pool,
	                       const char *path, bool deferred);
	void *arg;
};

/*
 * Expands the job mapping @jn of @f (its pools, stem and defaults are read) with @item bound
 * (NULL: no foreach). Problems go to @d, template errors naming @origin ("" if none). True
 * and *out set when the job is valid; false (and *out untouched) otherwise. @checks may be
 * NULL. Thread-safe for a NULL @checks: @f is only read.
 */
bool arl_expand_job(const struct arl_jobfile *f, const struct arl_node *jn, const cJSON *item,
                    const char *origin, const struct arl_expand_checks *checks, struct arl_diags *d,
                    struct arl_job *out);

/*
 * The full job for a lazy one (steps and callbacks expanded again with its item, its spec hash
 * the one computed at load); -1 with @err for a job that is not lazy or whose dataset record
 * changed. Thread-safe: @f is only read. *out is released with arl_job_release().
 */
int arl_job_materialize(const struct arl_jobfile *f, const struct arl_job *j, struct arl_job *out,
                        struct arl_err *err);

#endif
