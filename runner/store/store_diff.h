/*
 * Readers for comparing two runs job by job (view/rundiff.h builds `diff` and
 * `report --compare` on them). Rows are handed to a callback one at a time, so a run of
 * 100 000 jobs is never held whole.
 *
 * Callbacks get @row, and the strings in it, borrowed for the call; a callback that returns -1
 * (with @err set) stops the reader, which then returns -1 too.
 */
#ifndef ARL_STORE_DIFF_H
#define ARL_STORE_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "result.h"
#include "store/store.h"

/*
 * A job key and how it ended in each of the two runs it is looked up in. A Skipped job stands
 * for the state and class of the result it points at, or for Succeeded when it points at none.
 */
struct arl_diff_job {
	char *key;
	bool in_a, in_b;
	enum arl_state state_a, state_b;
	enum arl_class cls_a, cls_b;
};
typedef int (*arl_diff_job_fn)(void *arg, const struct arl_diff_job *row, struct arl_err *err);

/* Every key of run @run_a or @run_b, once, in key order. */
int arl_store_diff_jobs(struct arl_store *s, int64_t run_a, int64_t run_b, arl_diff_job_fn fn,
                        void *arg, struct arl_err *err);

/* A numeric metric's mean over a run's jobs (a Skipped job's are those of its result). */
struct arl_diff_metric_mean {
	char *name;
	double mean;
	int64_t count;
};
typedef int (*arl_diff_mean_fn)(void *arg, const struct arl_diff_metric_mean *row,
                                struct arl_err *err);
int arl_store_diff_metric_means(struct arl_store *s, int64_t run, arl_diff_mean_fn fn, void *arg,
                                struct arl_err *err);

/* A numeric metric of one key whose value differs between run A and run B. */
struct arl_diff_job_metric {
	char *key, *name;
	double a, b;
};
typedef int (*arl_diff_job_metric_fn)(void *arg, const struct arl_diff_job_metric *row,
                                      struct arl_err *err);
/*
 * With @largest 0: every changed metric, by key then metric name. Otherwise the @largest
 * changes by |b - a|, largest first (ties by key).
 */
int arl_store_diff_job_metrics(struct arl_store *s, int64_t run_a, int64_t run_b, size_t largest,
                               arl_diff_job_metric_fn fn, void *arg, struct arl_err *err);

/* The name of run @id in *name (the caller frees it): 1, or 0 when there is no such run. */
int arl_store_diff_run_name(struct arl_store *s, int64_t id, char **name, struct arl_err *err);

/* The latest run named @name with an id below @below: 1 with *id, or 0 when there is none. */
int arl_store_diff_run_before(struct arl_store *s, const char *name, int64_t below, int64_t *id,
                              struct arl_err *err);

#endif
