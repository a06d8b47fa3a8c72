/*
 * A local sandbox's container: one bwrap per attempt whose first process is the sandbox agent
 * (runner/agent/), started at acquire and ended at release (see DESIGN in backend_local.c).
 */
#ifndef ARL_LOCAL_CONTAINER_H
#define ARL_LOCAL_CONTAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct local;
struct arl_sandbox;

/*
 * Starts @sb's container and waits for its agent's HELLO until @deadline_ms (arl_now_ms()
 * time; 0: none) or until the run's cancel fd fires (ARL_E_TIMEOUT, ARL_E_CANCELLED). On
 * failure nothing of it is left running and the message says why (bwrap's own first line).
 */
int arl_local_container_start(struct local *L, struct arl_sandbox *sb, bool network,
                              int64_t deadline_ms, struct arl_err *err);

/*
 * The two halves of arl_local_container_start(), for the preparer's warm containers: spawn
 * starts bwrap and returns at once (sb->start_fd, sb->start_out pending); ready waits for the
 * HELLO. A ready that fails has stopped the container.
 */
int arl_local_container_spawn(struct local *L, struct arl_sandbox *sb, bool network,
                              struct arl_err *err);
int arl_local_container_ready(struct local *L, struct arl_sandbox *sb, int64_t deadline_ms,
                              struct arl_err *err);

/*
 * Closes the agent's socket without waiting: the agent exits, and with it, as PID 1, every
 * process of the sandbox. arl_local_container_stop() reaps bwrap after it.
 */
void arl_local_container_close(struct arl_sandbox *sb);

/*
 * Ends @sb's container, if any: the agent's socket closes (it exits, and with it, as PID 1,
 * every process of the sandbox), then bwrap is reaped, killed if it lingers. Idempotent.
 */
void arl_local_container_stop(struct arl_sandbox *sb);

#endif
