/*
 * The reaper thread of the local backend: ends released containers as they die, off the
 * preparers' and workers' paths (see DESIGN in reaper.c).
 */
#ifndef ARL_LOCAL_REAPER_H
#define ARL_LOCAL_REAPER_H

#include <stdbool.h>

#include "err.h"

struct local;
struct arl_sandbox;

/* Starts the reaper; 0, or -1 with @err (release() then ends sandboxes itself). */
int arl_local_reaper_start(struct local *L, struct arl_err *err);

/*
 * Queues released @sb (its agent's socket closed) for the reaper: true when it took it,
 * false when it is stopping or full (the caller ends @sb itself).
 */
bool arl_local_reaper_queue(struct local *L, struct arl_sandbox *sb);

/* Stops the reaper (L->stopping is set); what is left in L->released is close()'s to end. */
void arl_local_reaper_stop(struct local *L);

#endif
