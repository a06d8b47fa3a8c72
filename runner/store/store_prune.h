/* Deleting old runs with everything under them (the `prune` command). */
#ifndef ARL_STORE_PRUNE_H
#define ARL_STORE_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct arl_store;

/* Which runs go: beyond the newest @keep of their name, or started before @before. */
struct arl_prune_opts {
	int64_t keep;       /* -1: not by count */
	const char *before; /* RFC 3339 UTC cutoff, or NULL: not by age */
	const char *name;   /* only runs of this name, or NULL */
	bool dry_run;       /* decide and report, delete nothing */
};

/* A run that is deleted (or, for a dry run, would be). Borrowed for the callback. */
struct arl_pruned_run {
	int64_t id, jobs_total;
	char *name, *started_at;
	bool leased; /* kept, not deleted: its sessions are still recorded (leases) */
};
typedef void (*arl_prune_fn)(void *arg, const struct arl_pruned_run *run);

/*
 * Deletes the runs @o selects with their jobs, attempts, steps and metrics, in one
 * transaction, then reclaims the space (VACUUM, WAL truncated) when any went. Never a run
 * still in progress, nor one whose results a run that stays stands on (its Skipped jobs point
 * at them, and --resume would redo them); runs are decided newest first, so one prune
 * reaches the fixed point. Nor a run with leases (sessions gc has yet to delete): @fn is
 * called for it with leased set. @fn is called for each run just before it is deleted (a dry run
 * deletes too, then rolls back, so that it lists the same runs). *runs and *jobs: how many
 * went (or would).
 */
int arl_store_prune(struct arl_store *s, const struct arl_prune_opts *o, arl_prune_fn fn, void *arg,
                    int64_t *runs, int64_t *jobs, struct arl_err *err);

#endif
