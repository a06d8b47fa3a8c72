/*
 * The sandbox-backend interface. The scheduler drives every backend through this const ops
 * table and knows nothing of bwrap or Kubernetes: acquire a sandbox from a pool, run steps in
 * it one at a time, release it. Cancellation is an fd that becomes readable (the run's cancel
 * pipe): every blocking call watches it and returns promptly.
 *
 * Thread-safety: open/close run on the main thread; acquire, exec and release are called from
 * many worker threads at once, each on its own sandbox.
 */
#ifndef ARL_BACKEND_H
#define ARL_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "jobfile/job.h"
#include "result.h"
#include "util.h"

struct arl_sandbox; /* backend-private */

struct arl_backend_opts {
	const char *state_dir; /* where the backend may keep sandboxes (local workspaces) */
	int64_t run_id;
	const char *run_name;
	size_t capture_max; /* per stream of a step; 0: default */
	int cancel_fd;      /* readable once the run is cancelled; -1: never */
	/* kubernetes */
	const char *kubeconfig;   /* --kubeconfig; NULL: $KUBECONFIG, ~/.kube/config, in-cluster */
	const char *kube_context; /* --context; NULL: the current context */
	double kube_qps;          /* --kube-qps; 0: scaled to the pools' replicas */
	int kube_burst;           /* --kube-burst; 0: scaled likewise */
};

/* What the scheduler knows of the attempt a sandbox is for (names, labels, owner). */
struct arl_sandbox_req {
	const struct arl_job *job;
	int attempt;
	/*
	 * Getting the sandbox ready must end by then (arl_now_ms clock; 0: no bound), the job's
	 * prepareTimeout: past it, acquire fails with ARL_E_TIMEOUT. The job's own timeout starts
	 * once the sandbox is ready.
	 */
	int64_t deadline_ms;
};

struct arl_exec_ctx {
	int64_t deadline_ms; /* min(attempt deadline, step timeout) */
	bool step_limited;   /* the deadline is the step's own timeout */
};

struct arl_backend_ops {
	const char *name;
	/*
	 * Checks prerequisites and prepares the given pools (all of this backend); fails at run
	 * start with an error saying what to install or set. *state is the backend's handle.
	 */
	int (*open)(void **state, const struct arl_backend_opts *o,
	            const struct arl_pool *const *pools, size_t npools, struct arl_err *err);
	/*
	 * A fresh sandbox from @pool for one attempt. -1 is an infra failure (ARL_E_TIMEOUT: not
	 * ready by req->deadline_ms; ARL_E_CANCELLED: the run was cancelled meanwhile).
	 */
	int (*acquire)(void *state, const struct arl_pool *pool, const struct arl_sandbox_req *req,
	               struct arl_sandbox **out, struct arl_err *err);
	/*
	 * Runs one step: sets *cls (NONE on success, FAILED, TIMEOUT or CANCELLED) and fills
	 * @res's exit code and output, and its times only where the backend knows them better.
	 * Returns -1 only for a backend failure (infra). Called through arl_backend_exec(),
	 * which does the rest of @res.
	 */
	int (*exec)(void *state, struct arl_sandbox *sb, const struct arl_step *step,
	            const struct arl_exec_ctx *ctx, struct arl_step_result *res,
	            enum arl_class *cls, struct arl_err *err);
	/* The sandbox's name as recorded in attempts.sandbox (borrowed). */
	const char *(*sandbox_name)(const struct arl_sandbox *sb);
	/* Releases (deletes, unless @keep) the sandbox and frees @sb. Never fails the job. */
	void (*release)(void *state, struct arl_sandbox *sb, bool keep);
	/* Releases everything still held (warm sandboxes) and frees the state. NULL is a no-op. */
	void (*close)(void *state);
};

const struct arl_backend_ops *arl_backend_get(enum arl_backend_kind kind);
const char *arl_backend_kind_name(enum arl_backend_kind kind);

extern const struct arl_backend_ops arl_backend_local;
extern const struct arl_backend_ops arl_backend_kubernetes;

/*
 * Forwarders: the scheduler reaches a backend through these, not through its ops. They do
 * once what every backend would repeat: a step result's name, type and times, its outputs,
 * and its state, which follows from the class the backend reports (one outcome, not two).
 */
static inline int arl_backend_acquire(const struct arl_backend_ops *b, void *state,
                                      const struct arl_pool *pool,
                                      const struct arl_sandbox_req *req, struct arl_sandbox **out,
                                      struct arl_err *err)
{
	*out = NULL;
	return b->acquire(state, pool, req, out, err);
}

/*
 * Runs @step in @sb. *cls: NONE, FAILED, TIMEOUT, CANCELLED, or INFRA when the backend failed
 * (-1, with @err). @res->state is SUCCEEDED exactly when *cls is NONE.
 */
static inline int arl_backend_exec(const struct arl_backend_ops *b, void *state,
                                   struct arl_sandbox *sb, const struct arl_step *step,
                                   const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                                   enum arl_class *cls, struct arl_err *err)
{
	int rc;

	if (!res->name)
		res->name = arl_xstrdup(step->name ? step->name : "");
	res->type = step->type == ARL_STEP_FILEPATCH ? "FilePatch" : "Command";
	res->started_ms = arl_wall_ms();
	res->finished_ms = 0;
	*cls = ARL_CLASS_NONE;
	rc = b->exec(state, sb, step, ctx, res, cls, err);
	if (rc < 0)
		*cls = ARL_CLASS_INFRA; /* the error is the attempt's */
	res->state = *cls == ARL_CLASS_NONE ? ARL_STATE_SUCCEEDED : ARL_STATE_FAILED;
	/* It ran: no output is an empty one. */
	if (!res->out.data)
		res->out.data = arl_xstrdup("");
	if (!res->err.data)
		res->err.data = arl_xstrdup("");
	if (!res->finished_ms)
		res->finished_ms = arl_wall_ms();
	return rc;
}

static inline const char *arl_backend_sandbox_name(const struct arl_backend_ops *b,
                                                   const struct arl_sandbox *sb)
{
	return b->sandbox_name(sb);
}

static inline void arl_backend_release(const struct arl_backend_ops *b, void *state,
                                       struct arl_sandbox *sb, bool keep)
{
	b->release(state, sb, keep);
}

#endif
