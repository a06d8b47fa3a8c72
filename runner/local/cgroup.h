/*
 * One cgroup per local sandbox, created under the runner's own cgroup, holding the pool's
 * `resources:` limits: cgroup v2 where the runner's subtree is delegated and has the memory,
 * pids and cpu controllers, else v1 (one hierarchy per controller), else an error at run
 * start. Named like the sandbox ("sb-RUN-OWNER-N"), so `arl-batch gc` applies the same
 * ownership rules to what a runner killed with -9 left behind.
 *
 * The API is "put this process in" and "was anything OOM-killed since mark X", so that a
 * process per step and one container per attempt both use it.
 */
#ifndef ARL_LOCAL_CGROUP_H
#define ARL_LOCAL_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"
#include "jobfile/resources.h"

/* Where the cgroup filesystems are, and who we are in them. */
struct arl_cgroup_env {
	const char *root; /* NULL: /sys/fs/cgroup */
	const char *self; /* our /proc/self/cgroup; NULL: that file */
	/*
	 * Tests: @root is a plain directory tree standing in for cgroupfs, so files are created
	 * when written and removed before a cgroup's rmdir (the kernel does both on cgroupfs).
	 */
	bool fake;
};

#define ARL_CGROUP_MAX_FDS 3 /* v1: memory, pids, cpu */

struct arl_cgroups; /* the runner's: where its sandboxes' cgroups go */
struct arl_cgroup;  /* one sandbox's */

/*
 * Finds where cgroups with @want's limits can be made (v2 first) and checks we may write
 * there. An error says what was tried and why it failed, e.g. for a non-root runner without
 * a delegated v2 subtree.
 */
int arl_cgroups_open(const struct arl_cgroup_env *env, const struct arl_limits *want,
                     struct arl_cgroups **out, struct arl_err *err);
void arl_cgroups_close(struct arl_cgroups *cgs);
int arl_cgroups_version(const struct arl_cgroups *cgs); /* 1 or 2 */

/* A new cgroup @name with limits @l (0: that one unlimited). */
int arl_cgroup_create(struct arl_cgroups *cgs, const char *name, const struct arl_limits *l,
                      struct arl_cgroup **out, struct arl_err *err);
/* Kills what is left in it, removes it and frees @cg, on every path. NULL is a no-op. */
int arl_cgroup_destroy(struct arl_cgroup *cg, struct arl_err *err);

/* Moves process @pid (0: the caller) into @cg. */
int arl_cgroup_attach(const struct arl_cgroup *cg, pid_t pid, struct arl_err *err);
/*
 * For a child that joins @cg itself before exec: opens its cgroup.procs files (O_CLOEXEC),
 * into which the child writes "0". Returns how many (at most ARL_CGROUP_MAX_FDS), or -1.
 */
int arl_cgroup_procs_fds(const struct arl_cgroup *cg, int *fds, struct arl_err *err);

/*
 * What @cg's memory counters say so far, a mark for arl_cgroup_oom_since(): the OOM kills of
 * its processes and (v2) the times its own limit was reached, memory.events "oom"; v1 has no
 * such count, so its peak usage starts again from here (memory.max_usage_in_bytes reset). A
 * kill alone may be the host's OOM or an ancestor's limit.
 */
struct arl_oom_mark {
	uint64_t kills, hits;
};
struct arl_oom_mark arl_cgroup_oom_mark(const struct arl_cgroup *cg);
/* Whether @cg's own limit was reached and one of its processes OOM-killed since @mark. */
bool arl_cgroup_oom_since(const struct arl_cgroup *cg, struct arl_oom_mark mark);

/*
 * `arl-batch gc`: removes (or only lists, without @remove) the "sb-*" cgroups under ours
 * for which @gone(name) says why their runner is gone (NULL: alive, kept). Lines go to @out
 * (may be NULL). Returns how many were found.
 */
int arl_cgroups_sweep(const struct arl_cgroup_env *env, bool remove,
                      const char *(*gone)(const char *name, void *arg), void *arg, FILE *out);

#endif
