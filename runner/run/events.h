/*
 * The event stream of a run (`run --events FILE`): JSON Lines, one object per event, each
 * flushed as it is written so that `tail -f` and pipes see it at once. The format is
 * schemas/events.schema.json; every event has "event", "seq" (1, 2, ...), "time" (RFC 3339
 * UTC, when the thing happened) and "run_id".
 *
 * Steps run on worker threads, so their events (and the sandbox's) are written when their
 * attempt is reported to the main thread, carrying the times the worker recorded: "time" is
 * not monotonic across lines, "seq" is.
 *
 * Thread-safety: none; only the run's main thread writes events.
 */
#ifndef ARL_EVENTS_H
#define ARL_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "result.h"

struct arl_events;

/*
 * Opens @path for writing (created or truncated; "-" is stdout). *out is owned by the
 * caller (arl_events_close()).
 */
int arl_events_open(struct arl_events **out, const char *path, struct arl_err *err);
/*
 * Flushes and closes (stdout is only flushed). Returns -1 with @err set when any event
 * could not be written; NULL is a no-op returning 0.
 */
int arl_events_close(struct arl_events *e, struct arl_err *err);

/* Every function below is a no-op when @e is NULL. Strings are borrowed for the call. */

/* Also sets the run id that every later event carries. */
void arl_events_run_started(struct arl_events *e, int64_t run_id, const char *run_name,
                            const cJSON *params, size_t jobs_total, size_t jobs_skipped,
                            int concurrency);

struct arl_events_counts {
	size_t total, succeeded, failed, skipped, cancelled;
};
/* A no-op unless arl_events_run_started() was called. */
void arl_events_run_finished(struct arl_events *e, const char *status, int exit_code,
                             int64_t duration_ms, const struct arl_events_counts *c);

/* A budget halted the run: budget.reached. */
void arl_events_budget(struct arl_events *e, const char *metric, double max, double spent);

void arl_events_job_started(struct arl_events *e, const char *key, int64_t job_id,
                            const char *pool);
/* Also for a Skipped job (taken over from an earlier run), which has no start. */
void arl_events_job_finished(struct arl_events *e, const char *key, int64_t job_id,
                             const struct arl_job_result *r);
void arl_events_attempt_started(struct arl_events *e, const char *key, int64_t job_id, int number);
/*
 * sandbox.allocated, step.started/step.finished of each step, an artifact event per file
 * kept, sandbox.released, then attempt.finished, with the attempt's own times.
 */
void arl_events_attempt_finished(struct arl_events *e, const char *key, int64_t job_id,
                                 const struct arl_attempt_result *a);
void arl_events_retry(struct arl_events *e, const char *key, int64_t job_id,
                      const struct arl_attempt_result *failed, int64_t delay_ms);

#endif
