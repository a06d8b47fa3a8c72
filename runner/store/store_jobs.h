/*
 * Reading jobs, their attempts, steps and metrics (the `results` and `show` commands).
 *
 * Rows come as structs read by column name. Lists are handed to a callback one row at a time,
 * so a run of 100 000 jobs is never held whole; the row and its strings are borrowed for the
 * call. A callback returns 0 to go on, or -1 (with @err set) to stop the reader, which then
 * returns -1 too.
 *
 * A struct arl_job_reader keeps its statements compiled between calls: the per-job readers
 * (steps, metrics) run once per job of a large run. One reader serves one thread. A callback
 * may call another of the reader's functions (the steps of each job listed), but not the one
 * it is called from: that fails with ARL_E_DB.
 */
#ifndef ARL_STORE_JOBS_H
#define ARL_STORE_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "result.h"

struct arl_store;
struct arl_job_reader;

/* *out reads from @s (borrowed: it must outlive the reader). Never fails. */
void arl_job_reader_new(struct arl_store *s, struct arl_job_reader **out);
/* NULL is a no-op. */
void arl_job_reader_free(struct arl_job_reader *r);

/*
 * A job row. A Skipped job stands for an earlier result (it counts as that result,
 * docs/database.md): the from_* fields describe that result and are NULL/0 (from_null) when
 * the job is not Skipped or its result was pruned.
 */
struct arl_job_view {
	int64_t id, run_id;
	char *key, *name, *file, *pool;
	enum arl_state state;
	int attempts;
	int64_t exit_code;
	bool exit_null;
	enum arl_class cls; /* error_class; ARL_CLASS_NONE when NULL */
	/*
	 * state and error_class as stored, for display: a crafted database may hold a name this
	 * build does not know (state reads Pending and cls none), and the views print it as is.
	 */
	char *state_name, *cls_name;
	char *error;
	char *started_at, *finished_at; /* RFC 3339 UTC, or NULL */
	int64_t duration_ms;
	bool duration_null;
	char *item, *labels, *spec_hash; /* item and labels: JSON text */
	int64_t skipped_from;            /* the id the row points at, even if it was pruned */
	bool skipped_from_null;

	int64_t from_id, from_run;
	bool from_null;
	enum arl_state from_state;
	enum arl_class from_cls;
	char *from_state_name, *from_cls_name; /* as stored, as state_name */
	char *from_error;
	int64_t from_exit;
	bool from_exit_null;
	int from_attempts;

	/* Only from arl_job_get(): the names of the job's run and of the carried result's, and
	 * the run's params (runs.params, a JSON object; NULL when the run had none). */
	char *run_name, *from_run_name, *run_params;
};
void arl_job_view_release(struct arl_job_view *j);

typedef int (*arl_job_fn)(void *arg, const struct arl_job_view *job, struct arl_err *err);

enum arl_jobs_order {
	ARL_JOBS_BY_ID, /* the order they were recorded */
	/*
	 * The jobs of a file together, files by their first job, then by id; the outcome only:
	 * run_id, pool, finished_at, item, labels, spec_hash and skipped_from stay NULL/0
	 * (the sort carries every column read).
	 */
	ARL_JOBS_BY_FILE,
};

/*
 * The jobs of run @run_id in @order; @states (bit 1 << enum arl_state) keeps only jobs in
 * those states, 0 keeps all.
 */
int arl_jobs_each(struct arl_job_reader *r, int64_t run_id, unsigned states,
                  enum arl_jobs_order order, arl_job_fn fn, void *arg, struct arl_err *err);

/* Job @job_id with run_name and from_run_name: 1 with *out filled (arl_job_view_release()),
 * 0 when there is no such job, -1 on error. */
int arl_job_get(struct arl_job_reader *r, int64_t job_id, struct arl_job_view *out,
                struct arl_err *err);

/* The run of the newest job whose key (or, with @by_name, whose name) is @job: 1 with
 * *run_id set, 0 when none, -1 on error. */
int arl_job_newest_run(struct arl_job_reader *r, const char *job, bool by_name, int64_t *run_id,
                       struct arl_err *err);

struct arl_job_ref {
	int64_t id;
	char *key, *name;
};
typedef int (*arl_job_ref_fn)(void *arg, const struct arl_job_ref *ref, struct arl_err *err);

/* The jobs of @run_id whose key or name is @job: a job with that key first, then by id. */
int arl_job_refs_matching(struct arl_job_reader *r, int64_t run_id, const char *job,
                          arl_job_ref_fn fn, void *arg, struct arl_err *err);
/* Every job of @run_id, by id. */
int arl_job_refs_each(struct arl_job_reader *r, int64_t run_id, arl_job_ref_fn fn, void *arg,
                      struct arl_err *err);

struct arl_attempt_view {
	int64_t id;
	int number;
	char *sandbox;
	enum arl_state state;
	int64_t exit_code;
	bool exit_null;
	enum arl_class cls;
	char *state_name, *cls_name; /* as stored, as in struct arl_job_view */
	char *error, *started_at;
	int64_t duration_ms, prepare_ms;
	bool duration_null, prepare_null; /* prepare_null: no sandbox was asked for */
};
typedef int (*arl_attempt_fn)(void *arg, const struct arl_attempt_view *a, struct arl_err *err);

/* The attempts of job @job_id by number. */
int arl_job_attempts(struct arl_job_reader *r, int64_t job_id, arl_attempt_fn fn, void *arg,
                     struct arl_err *err);

struct arl_step_view {
	int idx; /* 0-based: the main steps, then the callbacks that ran */
	char *name, *type;
	int callback; /* phase: callback (else main) */
	enum arl_state state;
	char *state_name; /* as stored, as in struct arl_job_view */
	int64_t exit_code;
	bool exit_null;
	int64_t duration_ms;
	bool duration_null;
	char *out, *err; /* stdout and stderr (UTF-8, no NULs), or NULL */
	int out_truncated, err_truncated;
	char *metrics_error;
};
typedef int (*arl_step_fn)(void *arg, const struct arl_step_view *st, struct arl_err *err);

/* The steps of attempt @attempt_id, in the order they ran. */
int arl_attempt_steps(struct arl_job_reader *r, int64_t attempt_id, arl_step_fn fn, void *arg,
                      struct arl_err *err);
/* The steps of the last attempt of job @job_id, in the order they ran. */
int arl_job_last_steps(struct arl_job_reader *r, int64_t job_id, arl_step_fn fn, void *arg,
                       struct arl_err *err);

/* A file an attempt kept (sha256 set), or could not keep (error set). */
struct arl_artifact_view {
	char *path;
	int64_t size;
	char *sha256, *error;
};
typedef int (*arl_artifact_fn)(void *arg, const struct arl_artifact_view *a, struct arl_err *err);

/* The artifacts of attempt @attempt_id, in the order they were collected. */
int arl_attempt_artifacts(struct arl_job_reader *r, int64_t attempt_id, arl_artifact_fn fn,
                          void *arg, struct arl_err *err);

/* A metric: a number or a text (@text is SQLite's rendering of either, NULL for NULL). */
struct arl_metric_view {
	char *name, *text;
	double number;
	int is_number;
};
typedef int (*arl_metric_fn)(void *arg, const struct arl_metric_view *m, struct arl_err *err);

/* The metrics of job @job_id, by name (strcmp order). */
int arl_job_metrics(struct arl_job_reader *r, int64_t job_id, arl_metric_fn fn, void *arg,
                    struct arl_err *err);

typedef int (*arl_name_fn)(void *arg, const char *name, struct arl_err *err);
/* The metric names of run @run_id's jobs (a Skipped job's are its result's), by name, once. */
int arl_run_metric_names(struct arl_job_reader *r, int64_t run_id, arl_name_fn fn, void *arg,
                         struct arl_err *err);

/* How much of a failing step's stderr arl_job_failing_step() reads: its end. */
#define ARL_FAILING_TAIL 4096

/* The first main step that failed in a job's last attempt (the one that ended it). */
struct arl_failing_step {
	char *name;
	char *err_tail; /* the last ARL_FAILING_TAIL characters of its stderr, or NULL */
};
/* 1 with *@out filled (arl_failing_step_release()), 0 when no main step failed, -1 on error. */
int arl_job_failing_step(struct arl_job_reader *r, int64_t job_id, struct arl_failing_step *out,
                         struct arl_err *err);
void arl_failing_step_release(struct arl_failing_step *f);

/*
 * One read transaction over the reads that follow, so that several passes see the same
 * snapshot even of a run in progress. Best effort: when it cannot begin, the reads go on
 * without it. Returns whether one began; pass that to arl_job_reader_snapshot_end().
 */
bool arl_job_reader_snapshot(struct arl_job_reader *r);
void arl_job_reader_snapshot_end(struct arl_job_reader *r, bool began);

#endif
