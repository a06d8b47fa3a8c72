/*
 * The scheduler: fans jobs out over a pthreads worker pool within the limits (jobs in flight,
 * sandboxes per pool, jobs per file), retries failed attempts after their backoff without
 * holding a worker or a sandbox, and stops early on failures, the deadline or a signal.
 *
 * Thread-safety: arl_sched_run() is called from the main thread, which is also the only thread
 * that calls the hooks (so they may write SQLite and print). Workers only run attempts.
 */
#ifndef ARL_SCHEDULER_H
#define ARL_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "run/attempt.h"
#include "err.h"
#include "jobfile/job.h"
#include "result.h"
#include "util.h"

struct arl_sched_job {
	const struct arl_job *job;
	struct arl_attempt_env env; /* backend, pool and run names for its attempts */
	size_t pool_slot;           /* index into arl_sched_opts.pool_limits */
	size_t file_slot;           /* index into arl_sched_opts.file_limits */
	/* Scheduler-private from here. */
	int attempts;
	int64_t not_before; /* backoff: earliest next attempt (the opts' clock) */
	int64_t next_backoff;
	struct arl_job_result result;
};

enum arl_sched_stop {
	ARL_STOP_NONE,
	ARL_STOP_FAILURES, /* --fail-fast / --max-failures */
	ARL_STOP_DEADLINE,
	ARL_STOP_DRAIN,  /* SIGHUP: in-flight jobs finished, nothing new started */
	ARL_STOP_SIGNAL, /* SIGINT / SIGTERM: in-flight jobs cancelled */
	ARL_STOP_ABORT,  /* a hook set *abort: in-flight jobs cancelled */
	ARL_STOP_BUDGET, /* a budget was reached: in-flight jobs finish, nothing new starts */
};

/*
 * A budget: once the sum of @metric (positive finite numbers only) over the run's final jobs
 * reaches @max,
 * no new job starts. The scheduler keeps @spent (main thread only).
 */
struct arl_sched_budget {
	const char *metric;
	double max;
	double spent;
};

struct arl_sched_opts {
	int concurrency;        /* workers and jobs in flight */
	const int *pool_limits; /* sandboxes in use at once, per pool slot */
	size_t npool_slots;
	const int *file_limits; /* 0: none */
	size_t nfile_slots;
	int max_failures; /* 0: none */
	struct arl_sched_budget *budgets;
	size_t nbudgets;
	int64_t deadline_ms; /* absolute (on @clock); 0: none */
	int cancel_wfd;      /* written once to cancel in-flight work (the backends watch it) */
	int signal_fd;       /* self-pipe: one byte per signal received; -1: none */
	/* The clock of the deadline and of backoff; zeroed: arl_now_ms(). */
	struct arl_clock clock;
	/* Set by a hook when the run cannot go on (results can no longer be recorded): in-flight
	 * jobs are cancelled and nothing new starts, as on SIGINT. NULL: never. */
	const bool *abort;
	/* Main-thread hooks. */
	void (*on_start)(void *ctx, struct arl_sched_job *j);
	/* The job is final: @j->result is complete; the hook may release it (the scheduler is done
	 * with it) but must not keep pointers into it. */
	void (*on_done)(void *ctx, struct arl_sched_job *j);
	/*
	 * Optional, for progress displays and event streams (NULL: not called). An attempt
	 * starts when it is handed to a worker; on_attempt_done gets the attempt just appended
	 * to @j->result.attempts (borrowed for the call) before the job's fate is decided;
	 * on_retry follows it when the job will run again after @delay_ms of backoff.
	 */
	void (*on_attempt_start)(void *ctx, struct arl_sched_job *j, int number);
	void (*on_attempt_done)(void *ctx, struct arl_sched_job *j,
	                        const struct arl_attempt_result *a);
	void (*on_retry)(void *ctx, struct arl_sched_job *j, int64_t delay_ms);
	/* Optional: a budget stopped the run (after on_done of the job that reached it). */
	void (*on_budget)(void *ctx, const struct arl_sched_budget *b);
	void *ctx;
};

struct arl_sched_outcome {
	enum arl_sched_stop stop;
	int signal;     /* the first INT/TERM received, or 0 */
	bool abandoned; /* a second INT/TERM: returned without waiting for the workers */
	/* ARL_STOP_BUDGET: the budget reached, and its text ("budget cost_usd 25 reached
	 * (25.4)"), which the jobs never started give as their error */
	size_t budget;
	char budget_msg[160];
};

/*
 * Runs every job to a final state (Succeeded, Failed or Cancelled); each is reported once
 * through on_done. Returns -1 only when the workers could not be started. When
 * out->abandoned is set, workers may still be running: the caller must record what it can
 * and exit the process.
 */
int arl_sched_run(struct arl_sched_job *jobs, size_t n, const struct arl_sched_opts *o,
                  struct arl_sched_outcome *out, struct arl_err *err);

#endif
