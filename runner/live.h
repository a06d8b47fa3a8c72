/*
 * Live step output: while a step runs, what it prints also goes to per-step files under the
 * run's live directory, so `arl-batch logs -f` can show it before the job's results are
 * committed (the database has it then, and the job's live files are deleted).
 *
 * Layout: DB.live/RUN/JOB/ATTEMPT-IDX.out and .err (the step's stdout and stderr as written)
 * and ATTEMPT-IDX.step (its name), IDX the step's 0-based index in its attempt (main steps,
 * then callbacks). Directories 0700, files 0600, all made by the runner; a job's output is as
 * private as the database.
 *
 * Bound: a stream's file holds at most @cap/2 bytes. Past that it is rotated: a fresh file
 * (beginning with ARL_LIVE_ROTATED) is renamed over it, and a follower that has the old one
 * open reads it to its end before going on with the new one. On disk a stream takes at most
 * @cap (the file and, while a follower still reads it, the one it replaced); the stored
 * output keeps its own head and tail (capture.h).
 *
 * Secrets are masked as in the stored output: with a mask, a stream's end that is the start
 * of a masked text (which the next chunk may complete) waits in memory until more comes or
 * the step ends, and what is written has been through the mask.
 *
 * Writes never fail a step: a write error stops the live copy of that stream.
 */
#ifndef ARL_LIVE_H
#define ARL_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "result.h"

/* What starts a rotated live file: how many bytes of the stream went before it. */
#define ARL_LIVE_ROTATED "[... %llu earlier bytes of this stream left the live view ...]\n"

/* DB.live, beside the database @db_path (owned). */
char *arl_live_root(const char *db_path);

/*
 * Creates (or reuses) DB.live and DB.live/RUN, refusing a symlink or a directory not owned by
 * us, and returns an O_DIRECTORY fd of DB.live/RUN in *@dirfd.
 */
int arl_live_run_open(const char *db_path, int64_t run_id, int *dirfd, struct arl_err *err);
/* Deletes job @job_id's live files (its results are committed). Best effort. */
void arl_live_job_done(int run_dirfd, int64_t job_id);
/* Deletes what is left of run @run_id's live directory, and DB.live once empty; closes @dirfd. */
void arl_live_run_close(const char *db_path, int64_t run_id, int dirfd);

/*
 * Deletes the live directories in DB.live of runs other than @keep for which @gone says
 * their runner is gone (the leftovers of a runner killed with -9). Best effort.
 */
void arl_live_sweep(int run_dirfd, int64_t keep, bool (*gone)(void *arg, int64_t run_id),
                    void *arg);

struct arl_live;

/* What must never reach a live file (the run's secrets). */
struct arl_live_mask {
	void (*fn)(void *arg, struct arl_output *o); /* masks @o in place (it owns o->data) */
	void *arg;
	const char *const *texts; /* what it replaces */
	size_t ntexts;
};

/*
 * Starts the live files of step @idx (named @name) of attempt @attempt of job @job_id under
 * @run_dirfd, each stream bounded as above by @cap (0: 1 MiB), through @mask (NULL: none;
 * copied). NULL when they cannot be made (the step runs anyway, without a live copy).
 */
struct arl_live *arl_live_open(int run_dirfd, int64_t job_id, int attempt, size_t idx,
                               const char *name, size_t cap, const struct arl_live_mask *mask);
/* Appends @n bytes of stream @stream (0 stdout, 1 stderr). NULL @l: nothing. */
void arl_live_write(struct arl_live *l, int stream, const char *p, size_t n);
/* The same with the void * of spawn's on_output. */
void arl_live_on_output(void *l, int stream, const char *p, size_t n);
/* Whether anything was written (a backend that streams did). */
bool arl_live_wrote(const struct arl_live *l);
/* Writes what the mask held back, closes the files (they stay until arl_live_job_done()). */
void arl_live_close(struct arl_live *l);

#endif
