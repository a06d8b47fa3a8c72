/*
 * One attempt of one job, on a worker thread: acquire a fresh sandbox from the job's pool, run
 * the steps in order until one fails, run the callbacks, collect metrics, release the sandbox.
 */
#ifndef ARL_ATTEMPT_H
#define ARL_ATTEMPT_H

#include "backend/backend.h"
#include "jobfile/job.h"
#include "result.h"

struct arl_secrets;

struct arl_attempt_env {
	const struct arl_backend_ops *ops;
	void *backend;
	const struct arl_pool *pool;
	const struct arl_jobfile
	    *file; /* to materialize lazy (foreach) jobs; may be NULL otherwise */
	const char *run_id, *run_name;     /* for {{ run.id }} and {{ run.name }} */
	const char *artifacts_dir;         /* where kept files are stored (store_artifacts.h) */
	const struct arl_secrets *secrets; /* the run's: given to steps, masked in results */
	int live_dirfd;                    /* > 2: the run's live directory (live.h); else none */
	int64_t job_id;                    /* jobs.id, naming the job's live files */
	size_t live_cap;                   /* a live stream's bound (live.h); 0: default */
};

/* The most an attempt waits for its artifacts to be collected. */
#define ARL_ARTIFACTS_COLLECT_MS 300000

/*
 * Runs attempt @number (1-based) of @job. Always fills @out (an infra failure is a result,
 * not an error) and, for a successful Command step with `metrics: json`, appends to
 * the metrics array (*metrics, *nmetrics; owned by the caller).
 */
void arl_attempt_run(const struct arl_attempt_env *env, const struct arl_job *job, int number,
                     struct arl_attempt_result *out, struct arl_metric **metrics, size_t *nmetrics);

#endif
