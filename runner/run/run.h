/*
 * One `run` end to end: open the store, record the run and its jobs, start the backends, hand
 * the jobs to the scheduler, record results as they finish, summarise, and return the exit code.
 */
#ifndef ARL_RUN_H
#define ARL_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "jobfile/job.h"

struct arl_backend_setting;

struct arl_run_opts {
	const char *db_path;     /* the results database (cmd/ resolves the default) */
	const char *run_name;    /* NULL: the files' batch names joined with '+' */
	const char *state_dir;   /* where local sandboxes live (cmd/ resolves the default) */
	int concurrency;         /* 0: sum of the pools' replicas */
	int max_failures;        /* 0: no limit */
	int64_t deadline_ms;     /* 0: none */
	size_t capture_max;      /* 0: default */
	int quiet;               /* no progress lines */
	int progress;            /* enum arl_progress_mode (progress.h): --progress */
	int color;               /* enum arl_color_mode: --color */
	const char *events_path; /* --events: JSON Lines file, "-" for stdout; NULL: none */
	/* Options the backends own (--kubeconfig ...), checked by them when given. */
	const struct arl_backend_setting *backend_settings;
	size_t nbackend_settings;
	int resume;     /* skip jobs whose unchanged success stands in the latest run */
	unsigned rerun; /* ARL_RETRY_BIT()s: run only the latest run's jobs ended so */
	int overlap;    /* enum arl_overlap (runlock.h) */
	/* --budget METRIC=MAX: with the files' budget: blocks, each a limit of its own */
	const char *budget_metric; /* NULL: none */
	double budget_max;
};
#define ARL_RUN_OPTS_INIT                                                                          \
	{                                                                                          \
		0                                                                                  \
	}

/*
 * For --dry-run with --resume or --rerun: whether each job of @files (in file order) would be
 * skipped, and why (skip[k], why[k] owned by the caller), read from o->db_path without
 * writing it. A database that does not exist yet: every job runs ("no earlier result").
 */
int arl_run_decide(struct arl_jobfile *const *files, size_t nfiles, const struct arl_run_opts *o,
                   bool *skip, char **why, struct arl_err *err);

/* Runs every job of @files (borrowed); returns the exit code (docs/cli.md). */
int arl_run_execute(struct arl_jobfile *const *files, size_t nfiles, const struct arl_run_opts *o);

#endif
