/*
 * The sandbox-backend interface. The scheduler drives every backend through this const ops
 * table and knows nothing of bwrap or Kubernetes: acquire a sandbox from a pool, run steps in
 * it one at a time, release it. Cancellation is an fd that becomes readable (the run's cancel
 * pipe): every blocking call watches it and returns promptly.
 *
 * Thread-safety: open/close run on the main thread; acquire, exec and release are called from
 * many worker threads at once, each on its own sandbox.
 *
 * Adding a backend: a folder with its ops table, whose pool kind (jobfile/pool_kind.h) names
 * it and lists the pool keys it owns, and whose options list the `run` options it reads from
 * arl_backend_opts.settings; optionally a gc op with its own gc options. One line in
 * cmd/builtin_backends.c registers it. The loader, the runner and the command lines of `run`
 * and `gc` find it by name (tests/unit/fake_backend.c is one).
 */
#ifndef ARL_BACKEND_H
#define ARL_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "jobfile/job.h"
#include "jobfile/pool_kind.h"
#include "result.h"
#include "util.h"

struct arl_sandbox; /* backend-private */

/* A command-line option a backend owns (`run --kubeconfig PATH`), as given. */
struct arl_backend_setting {
	const char *name; /* the long option without dashes: "kubeconfig" */
	const char *value;
};

/* An option a backend accepts: ops->options, ending with {NULL}. */
struct arl_backend_option {
	const char *name; /* the long option without dashes */
	/* 0 when @value will do; else -1 with what is expected in @err. NULL: any value. */
	int (*check)(const char *value, struct arl_err *err);
	const char *argh, *help; /* `--help`: the value's name and what the option does */
	char short_name;         /* 0: none */
};

/* A lease the database records, as `gc` hands it to its backend. */
struct arl_backend_lease {
	int64_t id, run_id;
	char *location, *name, *job_key;
	int attempt;
	/* Why it is left over (its run ended, its runner is gone), or NULL: it may be in use. */
	const char *gone;
	bool other_host; /* its runner is on another host: not judged from here */
};
void arl_backend_leases_free(struct arl_backend_lease *l, size_t n);

/*
 * Where a backend records what it makes outside this host (a gateway session) the moment it
 * exists, so that `gc` can delete it after its runner was killed: the results database's
 * leases (docs/database.md). Thread-safe: called from the workers.
 */
struct arl_backend_ledger {
	void *arg;
	/* 0 with *id, or -1 with @err: the thing must then not be kept (delete it). */
	int (*add)(void *arg, const char *backend, const char *location, const char *name,
	           const char *job_key, int attempt, int64_t *id, struct arl_err *err);
	/* Released (deleted, or gone already): the record goes. Failures are logged. */
	void (*drop)(void *arg, int64_t id);
	/*
	 * The database's leases of @backend, judged (struct arl_backend_lease), for a sweep of
	 * what dead runners left; *out malloc'd (arl_backend_leases_free). -1 with @err.
	 */
	int (*leases)(void *arg, const char *backend, struct arl_backend_lease **out, size_t *n,
	              struct arl_err *err);
};

/* What `arl-batch gc` hands each backend it sweeps. */
struct arl_backend_gc_opts {
	bool yes;              /* delete what is found (else only list it) */
	const char *state_dir; /* as `run` has it: where local sandboxes live */
	/* The gc options given (every backend's gc_options; each reads its own). */
	const struct arl_backend_setting *settings;
	size_t nsettings;
	const char *db_path; /* the results database whose leases are read */
	/*
	 * The leases of @backend in that database (*out malloc'd, free with
	 * arl_backend_leases_free); 0 with none when there is no database. -1 with @err.
	 */
	int (*leases)(void *arg, const char *backend, struct arl_backend_lease **out, size_t *n,
	              struct arl_err *err);
	void (*lease_drop)(void *arg, int64_t id); /* deleted: the record goes */
	void *leases_arg;
};

struct arl_backend_opts {
	const char *state_dir; /* where the backend may keep sandboxes (local workspaces) */
	int64_t run_id;
	const char *run_name;
	size_t capture_max; /* per stream of a step; 0: default */
	int cancel_fd;      /* readable once the run is cancelled; -1: never */
	/* Every backend's settings, checked by their owners: each reads its own (the last wins). */
	const struct arl_backend_setting *settings;
	size_t nsettings;
	const struct arl_backend_ledger *ledger; /* NULL: nothing can be recorded */
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

struct arl_live; /* live.h */

struct arl_exec_ctx {
	int64_t deadline_ms; /* min(attempt deadline, step timeout) */
	bool step_limited;   /* the deadline is the step's own timeout */
	/*
	 * The step's live output files, or NULL: a backend that sees output as it comes passes
	 * every chunk to arl_live_write(); one that gets it at the end need not (the runner
	 * then writes the whole output there when the step ends).
	 */
	struct arl_live *live;
};

/*
 * Where a backend's collect op sends the files an attempt keeps (run/attempt.c enforces the
 * caps; a backend's own bounds only save it work). For each file found: begin() with the
 * index of the pattern that matched and its path as the steps see it; when it returns 0,
 * data() with its bytes, then end() with NULL when all of them were sent or why not. A -1
 * from data() means the file is refused (over a cap): stop reading it, still call end().
 * A file that cannot be read at all (not a regular file, a symlink) is begin() then end()
 * with the reason.
 */
struct arl_artifact_sink {
	void *arg;
	/* @size: the file's size when found, as the row's size if it is not read; -1: unknown */
	int (*begin)(void *arg, size_t spec, const char *path, int64_t size);
	int (*data)(void *arg, const void *p, size_t n);
	void (*end)(void *arg, const char *error);
	int64_t max_size; /* the most bytes a file may have: more is refused */
};

struct arl_backend_ops {
	const struct arl_pool_kind *pool;         /* its name and its pools' own keys */
	const struct arl_backend_option *options; /* NULL: none */
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
	/*
	 * Optional: `arl-batch gc` here, which lists (with g->yes deletes) the sandboxes whose
	 * runner is gone, on stdout. Returns an exit code: ARL_EXIT_OK, or ARL_EXIT_INCOMPLETE
	 * when the sweep could not be done (said on stderr).
	 */
	int (*gc)(const struct arl_backend_gc_opts *g);
	/* gc's options this backend owns ({NULL}-ended; NULL: none): one given selects it. */
	const struct arl_backend_option *gc_options;
	/*
	 * Optional: what the run records in runs.notes about this backend once open() is done
	 * (a fallback it took), or NULL. Borrowed until close().
	 */
	const char *(*note)(void *state);
	/*
	 * Optional: sends the files matching the glob patterns @specs in @sb, as its steps see
	 * them, to @sink; called after the steps and callbacks, before release. Only regular
	 * files, never through a symlink. Stops by @deadline_ms (arl_now_ms clock). -1 with
	 * @err: the rest could not be collected (what was sent stays sent). NULL: the backend
	 * keeps no files (validate says so for its pools).
	 */
	int (*collect)(void *state, struct arl_sandbox *sb, const struct arl_artifact_spec *specs,
	               size_t nspecs, const struct arl_artifact_sink *sink, int64_t deadline_ms,
	               struct arl_err *err);
};

/*
 * The registry (redis's connTypeRegister): backends are registered once at startup, before any
 * job file is loaded (their pool kinds with them), and looked up by name. The first registered
 * is the backend of a pool that names none.
 */
/*
 * Registering the same ops again does nothing. -1 with @err: another backend has its name or
 * one of its options, or it lists an option twice (`run` would parse only one of them).
 */
int arl_backend_register(const struct arl_backend_ops *ops, struct arl_err *err);
/* NULL: no backend of that name. */
const struct arl_backend_ops *arl_backend_find(const char *name);
/* The @i-th registered backend; NULL past the last. */
const struct arl_backend_ops *arl_backend_at(size_t i);
/* The option @name some registered backend owns, or NULL. */
const struct arl_backend_option *arl_backend_option_find(const char *name);
/* 0 when a registered backend owns option @name and accepts @value; else -1 with @err. */
int arl_backend_option_check(const char *name, const char *value, struct arl_err *err);
/* The value of setting @name in @o (the last given), or NULL. */
const char *arl_backend_setting(const struct arl_backend_opts *o, const char *name);

static inline const char *arl_backend_name(const struct arl_backend_ops *ops)
{
	return ops->pool->name;
}

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
