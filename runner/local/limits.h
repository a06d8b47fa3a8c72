/*
 * A local pool's `resources:` (jobfile/resources.h) applied to its sandboxes: one cgroup per
 * sandbox (local/cgroup.h) that the container, or each step's process, joins before exec,
 * and a step killed by the memory limit recorded as Kubernetes does (exit 137, OOMKilled).
 */
#ifndef ARL_LOCAL_LIMITS_H
#define ARL_LOCAL_LIMITS_H

#include <stdint.h>

#include "backend/backend.h"
#include "local/cgroup.h"
#include "spawn.h"

struct local;
struct arl_sandbox;

/* At open: the cgroups, when a pool asks for limits; an error names that pool. */
int arl_local_limits_open(struct local *L, const struct arl_pool *const *pools, size_t npools,
                          struct arl_err *err);
/* At acquire: @sb's cgroup (sb->cgroup), when its pool has limits. */
int arl_local_limits_create(struct local *L, struct arl_sandbox *sb, struct arl_err *err);
/* At release: kills what is left in @sb's cgroup and removes it (a failure is logged). */
void arl_local_limits_release(struct arl_sandbox *sb);

/*
 * Before a spawn: makes the child of @id join @sb's cgroup before exec, through @fds (which
 * arl_local_limits_join_done() closes after the spawn). Returns 0 when the pool has none.
 */
int arl_local_limits_join(const struct arl_sandbox *sb, struct arl_spawn_ident *id,
                          int fds[ARL_CGROUP_MAX_FDS], struct arl_err *err);
void arl_local_limits_join_done(int fds[ARL_CGROUP_MAX_FDS], int n);

/* Around a step: a mark before it, then an OOM kill since makes it exit 137, OOMKilled. */
struct arl_oom_mark arl_local_oom_mark(const struct arl_sandbox *sb);
void arl_local_oom_check(const struct arl_sandbox *sb, struct arl_oom_mark mark,
                         struct arl_step_result *res, enum arl_class *cls);

/*
 * After a step whose container died under it (@cls infra): true when the memory limit killed
 * it since @mark (tmpfs pages, /tmp's or /etc's, count in the cgroup but in no process, so
 * the kill may take the agent): then the step is 137, OOMKilled, as a pod's container is.
 */
bool arl_local_oom_ended(const struct arl_sandbox *sb, struct arl_oom_mark mark,
                         struct arl_step_result *res, enum arl_class *cls);

#endif
