/*
 * Reading runs (the `runs` and `results` commands): rows as structs read by column name.
 * A list is handed to a callback one run at a time; the row and its strings are borrowed for
 * the call, and a callback that returns -1 (with @err set) stops the reader, which returns -1.
 */
#ifndef ARL_STORE_RUNS_H
#define ARL_STORE_RUNS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct arl_store;

struct arl_run_view {
	int64_t id;
	char *name, *status;
	char *started_at, *finished_at; /* RFC 3339 UTC, or NULL */
	int64_t duration_ms;            /* arl_runs_each(): of a run still going, the time so far */
	bool duration_null;
	int64_t jobs_total, jobs_succeeded, jobs_failed, jobs_skipped, jobs_cancelled;
	/* Skipped jobs that stand for a failure or a cancel of an earlier run (count as one). */
	int64_t carried_failed, carried_cancelled;
	int64_t exit_code;
	bool exit_null;
	char *files; /* JSON array text */
	char *host;
	int64_t pid;
	bool pid_null;
	char *isolation, *notes;
	char *params; /* JSON object text, or NULL */
};
void arl_run_view_release(struct arl_run_view *r);

/* Run @run_id: 1 with *out filled (arl_run_view_release()), 0 when there is none, -1 on error. */
int arl_run_get(struct arl_store *s, int64_t run_id, struct arl_run_view *out, struct arl_err *err);

typedef int (*arl_run_fn)(void *arg, const struct arl_run_view *run, struct arl_err *err);
/* The newest @limit runs (0: all), newest first. */
int arl_runs_each(struct arl_store *s, int64_t limit, arl_run_fn fn, void *arg,
                  struct arl_err *err);

#endif
