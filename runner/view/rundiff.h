/*
 * The comparison of two runs job by job (by key), shared by `diff` and `report --compare`.
 *
 * A job passes when it Succeeded (a Skipped job stands for the result it points at, or for a
 * success when it points at none) and fails when it Failed with class failed or timeout;
 * anything else (infra, cancelled) says nothing about the work under test and is kept out of
 * the counts, the pass rates and McNemar's test.
 */
#ifndef ARL_RUNDIFF_H
#define ARL_RUNDIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "store/store.h"

enum arl_rundiff_flip {
	ARL_FLIP_FIXED,
	ARL_FLIP_BROKEN,
	ARL_FLIP_STILL_FAILING,
	ARL_FLIP_STILL_PASSING,
	ARL_FLIP_ADDED,
	ARL_FLIP_MISSING,
	ARL_FLIP_INFRA,
	ARL_RUNDIFF_NFLIPS
};
/* "fixed", "broken", "still_failing", "still_passing", "added", "missing", "infra". */
extern const char *const arl_rundiff_flip_names[ARL_RUNDIFF_NFLIPS];

struct arl_rundiff_run {
	int64_t id;
	char *name; /* "?" when it cannot be read */
	size_t passed, failed;
	double pass_rate; /* passed / (passed + failed); 0 when nothing counts */
};

/* The keys of one flip, in key order. */
struct arl_rundiff_keys {
	char **v;
	size_t n, cap;
};

/* A numeric metric's means; delta (mean B - mean A) only when it has both. */
struct arl_rundiff_metric {
	char *name;
	bool has_a, has_b;
	double mean_a, mean_b, delta;
	int64_t count_a, count_b; /* jobs each mean is over (those with the metric) */
};

struct arl_rundiff_job_metric {
	char *key, *name;
	double a, b, delta;
};

struct arl_rundiff {
	struct arl_rundiff_run runs[2]; /* [0]: run A (before), [1]: run B (after) */
	size_t counts[ARL_RUNDIFF_NFLIPS];
	/* Every flip's keys but still_passing's (the bulk of a good run: counted, not listed). */
	struct arl_rundiff_keys keys[ARL_RUNDIFF_NFLIPS];
	double mcnemar_p; /* McNemar's exact test of broken against fixed */
	/* Metrics of run A in the store's order, then those only run B has. */
	struct arl_rundiff_metric *metrics;
	size_t nmetrics, metrics_cap;
	bool per_job;                               /* job_metrics was asked for */
	struct arl_rundiff_job_metric *job_metrics; /* by key, then metric name */
	size_t njob_metrics, job_metrics_cap;
};

/*
 * Compares run @run_a (before) with @run_b (after) into *out (released with
 * arl_rundiff_release() on success; left empty on failure). @per_job: also list every
 * numeric metric of a key whose value changed.
 */
int arl_rundiff(struct arl_store *s, int64_t run_a, int64_t run_b, bool per_job,
                struct arl_rundiff *out, struct arl_err *err);
void arl_rundiff_release(struct arl_rundiff *d);

/*
 * The comparison as the JSON of `diff --format json` (the caller deletes it):
 *   {"runs": [{"id", "name", "passed", "failed", "passRate"} x2],
 *    "counts": {FLIP: n, ...}, "jobs": {FLIP: [key, ...], ...} (still_passing not listed),
 *    "mcnemarP": p, "metrics": [{"name", "meanA"?, "countA"?, "meanB"?, "countB"?, "delta"?}],
 *    "jobMetrics": [{"key", "name", "a", "b", "delta"}] (only with per_job)}
 */
cJSON *arl_rundiff_json(const struct arl_rundiff *d);

/* The name of run @id, or "?" when it cannot be read; the caller frees it. */
char *arl_rundiff_run_name(struct arl_store *s, int64_t id);

#endif
