/*
 * Readers for the HTML report of a run (view/report.h): aggregates over the run's jobs and
 * capped lists, so a report of 100 000 jobs never holds the run whole.
 *
 * "Effective" counts follow `diff`: a Skipped job counts as the state and class of the result
 * it stands for (Succeeded when none); passed is Succeeded, failed is Failed with class
 * failed or timeout.
 *
 * Row readers hand each row to a callback, borrowed (strings included) for the call; a
 * callback returning -1 (with @err set) stops the reader, which then returns -1 too.
 */
#ifndef ARL_STORE_REPORT_H
#define ARL_STORE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "result.h"
#include "store/store.h"

/* How a run's jobs ended. */
struct arl_report_counts {
	uint64_t total;
	uint64_t state[ARL_STATE_CANCELLED + 1];    /* by stored state (unknown: Pending) */
	uint64_t cls[ARL_CLASS_CANCELLED + 1];      /* by error_class (none: ARL_CLASS_NONE) */
	uint64_t passed, counted_failed;            /* effective */
	uint64_t carried_failed, carried_cancelled; /* Skipped jobs standing for these */
};
int arl_store_report_counts(struct arl_store *s, int64_t run, struct arl_report_counts *out,
                            struct arl_err *err);

/* The run's row. */
struct arl_report_run {
	char *name, *status, *started_at, *host, *isolation, *notes, *files;
	char *params; /* JSON object text, or NULL */
	char *halted_by;
	int64_t duration_ms;
	int exit_code;
	bool duration_null, exit_null;
};
/* No such run: ARL_E_INVALID "no run N". Release *out with arl_report_run_release(). */
int arl_store_report_run(struct arl_store *s, int64_t run, struct arl_report_run *out,
                         struct arl_err *err);
void arl_report_run_release(struct arl_report_run *r);

/* Effective pass counts of a group of jobs (all, a pool, a label's value). */
struct arl_report_group {
	char *name; /* the pool or label value; NULL when it has none */
	uint64_t total, passed, failed;
};
typedef int (*arl_report_group_fn)(void *arg, const struct arl_report_group *row,
                                   struct arl_err *err);
/* All the run's jobs (name NULL). */
int arl_store_report_pass_all(struct arl_store *s, int64_t run, struct arl_report_group *out,
                              struct arl_err *err);
/* By pool, in pool order, at most @limit pools. */
int arl_store_report_pass_by_pool(struct arl_store *s, int64_t run, size_t limit,
                                  arl_report_group_fn fn, void *arg, struct arl_err *err);
/* By the values of label @key, in value order. */
int arl_store_report_pass_by_label(struct arl_store *s, int64_t run, const char *key,
                                   arl_report_group_fn fn, void *arg, struct arl_err *err);

/* The run's label keys, in order, with how many distinct values each has. */
struct arl_report_label_key {
	char *key;
	int64_t nvalues;
};
typedef int (*arl_report_label_key_fn)(void *arg, const struct arl_report_label_key *row,
                                       struct arl_err *err);
int arl_store_report_label_keys(struct arl_store *s, int64_t run, arl_report_label_key_fn fn,
                                void *arg, struct arl_err *err);

/* The duration of every job that ran and ended Succeeded, Failed or Cancelled. */
struct arl_report_duration {
	int64_t ms;
	enum arl_state state;
};
typedef int (*arl_report_duration_fn)(void *arg, const struct arl_report_duration *row,
                                      struct arl_err *err);
int arl_store_report_durations(struct arl_store *s, int64_t run, arl_report_duration_fn fn,
                               void *arg, struct arl_err *err);

/* Jobs that ran, by their number of attempts and end state (Succeeded, Failed, Cancelled). */
struct arl_report_attempts {
	int64_t attempts; /* as stored: a crafted database may hold any integer */
	enum arl_state state;
	uint64_t jobs;
};
typedef int (*arl_report_attempts_fn)(void *arg, const struct arl_report_attempts *row,
                                      struct arl_err *err);
int arl_store_report_attempts(struct arl_store *s, int64_t run, arl_report_attempts_fn fn,
                              void *arg, struct arl_err *err);

/* The run's attempts, and how many of them succeeded. */
int arl_store_report_attempt_totals(struct arl_store *s, int64_t run, uint64_t *attempts,
                                    uint64_t *succeeded, struct arl_err *err);

/* Attempts that were retried, by their class ("-": none), most first, and how the job ended. */
struct arl_report_retries {
	char *cls;
	uint64_t retries, succeeded, failed, cancelled;
};
typedef int (*arl_report_retries_fn)(void *arg, const struct arl_report_retries *row,
                                     struct arl_err *err);
int arl_store_report_retries(struct arl_store *s, int64_t run, arl_report_retries_fn fn, void *arg,
                             struct arl_err *err);

/* The @limit slowest jobs that ran, slowest first. */
struct arl_report_slow_job {
	char *key, *state, *error_class, *pool;
	int64_t duration_ms, attempts;
};
typedef int (*arl_report_slow_fn)(void *arg, const struct arl_report_slow_job *row,
                                  struct arl_err *err);
int arl_store_report_slowest(struct arl_store *s, int64_t run, size_t limit, arl_report_slow_fn fn,
                             void *arg, struct arl_err *err);

/*
 * The run's failed jobs and the Skipped jobs standing for a failure (f: that failure), by
 * class then key, at most @limit, with the last @tail_bytes characters of f's last attempt's
 * stderr (its failed step's first, else its last step's with output).
 */
struct arl_report_failed_job {
	char *key, *error_class, *error;
	char *stderr_tail; /* NULL when no step wrote to stderr */
	int exit_code;
	int64_t attempts, duration_ms;
	int64_t carried_from; /* the run f belongs to, when it is not this one */
	bool exit_null, duration_null, carried_null;
};
typedef int (*arl_report_failed_fn)(void *arg, const struct arl_report_failed_job *row,
                                    struct arl_err *err);
int arl_store_report_failed(struct arl_store *s, int64_t run, size_t limit, size_t tail_bytes,
                            arl_report_failed_fn fn, void *arg, struct arl_err *err);

/*
 * The artifacts of the run's jobs (a Skipped job's: those of the result it stands for), by
 * job then attempt then collection order, at most @limit; and how many there are in all.
 */
struct arl_report_artifact {
	char *key, *path, *sha256, *error; /* sha256 NULL: not kept, error says why */
	int64_t attempt, size;
};
typedef int (*arl_report_artifact_fn)(void *arg, const struct arl_report_artifact *row,
                                      struct arl_err *err);
int arl_store_report_artifacts(struct arl_store *s, int64_t run, size_t limit,
                               arl_report_artifact_fn fn, void *arg, struct arl_err *err);
struct arl_report_artifact_counts {
	int64_t rows, kept, kept_bytes;
};
int arl_store_report_artifact_counts(struct arl_store *s, int64_t run,
                                     struct arl_report_artifact_counts *out, struct arl_err *err);

/* The run's metrics by name; min, max and mean over the numeric values only. */
struct arl_report_metric {
	char *name;
	int64_t count, numeric;
	double min, max, mean;
};
typedef int (*arl_report_metric_fn)(void *arg, const struct arl_report_metric *row,
                                    struct arl_err *err);
int arl_store_report_metrics(struct arl_store *s, int64_t run, arl_report_metric_fn fn, void *arg,
                             struct arl_err *err);

/*
 * Adds to counts[0..nbins-1] how many numeric values of metric @name fall in each of @nbins
 * equal bins over [lo, hi] (all in bin 0 when hi <= lo).
 */
int arl_store_report_metric_bins(struct arl_store *s, int64_t run, const char *name, double lo,
                                 double hi, size_t nbins, uint64_t *counts, struct arl_err *err);

/* The numeric value of metric @name at position @nth in value order: 1 with *out, 0: none. */
int arl_store_report_metric_nth(struct arl_store *s, int64_t run, const char *name, int64_t nth,
                                double *out, struct arl_err *err);

/* The @limit most common values of metric @name (as text; NULL for a JSON null), then by value. */
struct arl_report_metric_value {
	char *value;
	uint64_t jobs;
};
typedef int (*arl_report_value_fn)(void *arg, const struct arl_report_metric_value *row,
                                   struct arl_err *err);
int arl_store_report_metric_values(struct arl_store *s, int64_t run, const char *name, size_t limit,
                                   arl_report_value_fn fn, void *arg, struct arl_err *err);

/* Steps of the jobs' last attempts whose `metrics: json` stored nothing or not all. */
struct arl_report_metric_error {
	char *key, *step, *error;
	int64_t total; /* all such steps of the run, however many are listed */
};
typedef int (*arl_report_metric_error_fn)(void *arg, const struct arl_report_metric_error *row,
                                          struct arl_err *err);
int arl_store_report_metric_errors(struct arl_store *s, int64_t run, size_t limit,
                                   arl_report_metric_error_fn fn, void *arg, struct arl_err *err);

#endif
