/*
 * Live progress of a run on stderr.
 *
 * Modes (`run --progress`): "bar" redraws one status line in place (done/total, succeeded,
 * failed by class, running, retrying, rate, elapsed, ETA and the longest-running jobs), fitted
 * to the terminal's width on every redraw; "plain" prints one line per finished job and a
 * status line every so often, with no escape codes (cron, CI, pipes); "none" prints only what
 * goes through arl_progress_printf(); "auto" is "bar" when the fd is a terminal and TERM is
 * not "dumb", else "plain".
 *
 * Thread-safety: every function may be called from any thread; the run calls them from the
 * main thread. A progress thread redraws the bar (every 200 ms) and prints plain mode's status
 * lines; one mutex serialises it with the callers, so a message printed through
 * arl_progress_printf() clears the bar, prints and redraws without interleaving. In bar mode
 * the display also takes the log's messages over (arl_log_set_sink, from arl_progress_new()
 * to arl_progress_free()), so arl_log_*() from any thread does the same.
 */
#ifndef ARL_PROGRESS_H
#define ARL_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "result.h"
#include "util.h"

enum arl_progress_mode {
	ARL_PROGRESS_AUTO,
	ARL_PROGRESS_BAR,
	ARL_PROGRESS_PLAIN,
	ARL_PROGRESS_NONE,
};

enum arl_color_mode {
	ARL_COLOR_AUTO, /* a terminal and NO_COLOR unset or empty */
	ARL_COLOR_ALWAYS,
	ARL_COLOR_NEVER,
};

/* "auto", "bar", "plain", "none"; -1 when unknown. */
int arl_progress_parse_mode(const char *s, enum arl_progress_mode *out);
/* "auto", "always", "never"; -1 when unknown. */
int arl_progress_parse_color(const char *s, enum arl_color_mode *out);
/* Whether output to @fd is coloured under @mode. */
int arl_progress_use_color(enum arl_color_mode mode, int fd);

struct arl_progress_opts {
	enum arl_progress_mode mode;
	enum arl_color_mode color;
	int fd;               /* where to write (stderr) */
	size_t total;         /* jobs of the run, skipped ones included */
	size_t skipped;       /* jobs already final when the run starts */
	size_t nslots;        /* scheduled jobs, numbered 0..nslots-1 by the caller */
	int concurrency;      /* jobs in flight at most, for the ETA */
	int64_t status_every; /* plain mode's status lines, ms; 0: $ARL_BATCH_STATUS_EVERY
	                       * (a duration) or 30 s; -1: never */
	/* The clock of status lines, elapsed times and the ETA; zeroed: arl_now_ms(). */
	struct arl_clock clock;
};

struct arl_progress;

/*
 * Creates the display and, for bar and plain, its thread. *out is owned by the caller
 * (arl_progress_free()). Fails only when the thread cannot be started.
 */
int arl_progress_new(struct arl_progress **out, const struct arl_progress_opts *o,
                     struct arl_err *err);
/*
 * Clears the bar and stops the thread; later output goes straight to the fd. NULL is a
 * no-op. Call it before printing the final summary.
 */
void arl_progress_free(struct arl_progress *p);

/* The effective mode (AUTO resolved). */
enum arl_progress_mode arl_progress_mode(const struct arl_progress *p);

/*
 * Events of job @slot (0..nslots-1). @key is borrowed until the job is done. A job starts
 * once; its attempts start and may be retried; it is done once (possibly without having
 * started: cancelled before it ran).
 */
void arl_progress_job_start(struct arl_progress *p, size_t slot, const char *key);
void arl_progress_attempt_start(struct arl_progress *p, size_t slot, int number);
void arl_progress_attempt_done(struct arl_progress *p, size_t slot);
void arl_progress_retry(struct arl_progress *p, size_t slot, int number, enum arl_class cls,
                        int64_t delay_ms);
/* @res is borrowed for the call. Plain mode prints the job's line. */
void arl_progress_job_done(struct arl_progress *p, size_t slot, const char *key,
                           const struct arl_job_result *res);

/*
 * Prints a message line (a newline is added when missing) above the bar. With @p NULL it
 * goes through the log (log.h).
 */
void arl_progress_printf(struct arl_progress *p, const char *fmt, ...) ARL_PRINTF(2, 3);

#endif
