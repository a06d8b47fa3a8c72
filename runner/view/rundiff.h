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
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "store/store.h"

#define ARL_RUNDIFF_NFLIPS 7
/* "fixed", "broken", "still_failing", "still_passing", "added", "missing", "infra". */
extern const char *const arl_rundiff_flip_names[ARL_RUNDIFF_NFLIPS];

/*
 * Compares run @run_a (before) with @run_b (after). *out (owned by the caller) is
 *   {"runs": [{"id", "name", "passed", "failed", "passRate"} x2],
 *    "counts": {FLIP: n, ...}, "jobs": {FLIP: [key, ...], ...} (still_passing not listed),
 *    "mcnemarP": p, "metrics": [{"name", "meanA"?, "meanB"?, "delta"?}],
 *    "jobMetrics": [{"key", "name", "a", "b", "delta"}] (only with @per_job)}
 * Written only on success.
 */
int arl_rundiff_json(struct arl_store *s, int64_t run_a, int64_t run_b, bool per_job, cJSON **out,
                     struct arl_err *err);

/* The name of run @id, or "?" when it cannot be read; the caller frees it. */
char *arl_rundiff_run_name(struct arl_store *s, int64_t id);

#endif
