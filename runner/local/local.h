/* The local backend's state, shared by the modules of runner/local/ (not a public header). */
#ifndef ARL_LOCAL_LOCAL_H
#define ARL_LOCAL_LOCAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/backend.h"
#include "local/cgroup.h"
#include "local/cow_root.h"
#include "local/skel_cache.h"
#include "local/local_pool.h"
#include "local/sandbox_dir.h"
#include "local/strvec.h"
#include "local/ws_lower.h"
#include "util.h"

#define WS_INSIDE "/workspace"
/* Where the sandbox agent is bound, read-only, in a container. */
#define AGENT_INSIDE "/.arl-batch-agent"
#define SANDBOX_PATH "/usr/local/bin:/usr/bin:/bin"
#define SANDBOX_LANG "C.UTF-8"

struct arl_agent;
struct arl_image_store;
struct local_image;

struct warm_pool {
	const struct arl_pool *pool; /* borrowed: the job file outlives the backend */
	struct sbdir *ready;         /* prepared, unused sandbox directories (isolation none) */
	size_t nready, cap;
	struct arl_sandbox **boxes; /* bwrap pools: containers started ahead, HELLO unread */
	size_t nboxes, capboxes;
	size_t preparing; /* being prepared by the preparer right now */
	bool failed;      /* the last preparation failed: retry only after the next acquire */
};

/* Preparer threads (sandbox_dir.c): each spawn waits for its bwrap child to exec. */
#define LOCAL_PREPARERS 2

/* How long a released container may take to end on its own before bwrap is killed. */
#define ARL_LOCAL_STOP_WAIT_MS 5000

struct local {
	char *state_dir; /* canonical, absolute */
	int state_fd;    /* every sandbox is created and deleted relative to this fd */
	int64_t run_id;
	char *owner;    /* "PID-START-BOOT-PIDNS" in sandbox names, for gc (owner_gone) */
	bool etc_ssh;   /* the host has /etc/ssh: bwrap hides it under a tmpfs */
	size_t backlog; /* most directories queued for the preparer, and most spare ones */
	size_t capture_max;
	int cancel_fd;
	char *bwrap;             /* absolute path; NULL when no pool uses bwrap */
	char *agent;             /* arl-batch-agent's absolute path; NULL alike */
	bool agent_dynamic;      /* it has a program interpreter (sanitizer builds) */
	struct strvec root_args; /* how /bin, /lib... look on the host */
	struct strvec net_args;  /* extra read-only binds for network pools */
	bool drop;               /* we are root: steps run as sb_uid/sb_gid (see DESIGN) */
	uid_t sb_uid;            /* bwrap steps (and the probe) */
	gid_t sb_gid;
	uid_t none_uid; /* isolation none steps: never sb_uid */
	gid_t none_gid;
	struct arl_cgroups *cgroups; /* where sandboxes' cgroups go; NULL: no pool limits */
	/*
	 * bwrap pools' copy-on-write root (cow_root.h); cow.skel NULL: none (isolation none
	 * only, or the overlay fallback: the workspace is copied and /usr, /etc are read-only).
	 */
	struct cow_root cow;
	struct skel_cache skel; /* holds cow.skel: kept between runs, or the run's own */
	char *cow_note;         /* the fallback taken, for runs.notes; NULL: none */

	/* Images sandboxes run from (image_root.h): resolved on first use, kept until close. */
	pthread_mutex_t img_mu; /* guards these three only; never held with mu */
	struct arl_image_store *image_store;
	struct local_image **images;
	size_t nimages, capimages;

	pthread_mutex_t mu; /* lock order: mu only, never nested; guards everything below */
	pthread_cond_t cv;  /* the preparer waits here for work or stopping */
	struct warm_pool *warm;
	size_t nwarm;
	struct sbdir *dirty; /* released, renamed, to be emptied (oldest first) or deleted */
	size_t ndirty, capdirty;
	struct arl_sandbox **released; /* agent's socket closed: the reaper's (reaper.h) */
	size_t nreleased, capreleased;
	struct sbdir *spare; /* emptied and checked: the next sandboxes of any pool */
	size_t nspare, capspare;
	unsigned long counter;
	struct ws_copy *wscopy; /* as root: the runs' copies of workspaces (ws_lower.h) */
	size_t nwscopy, capwscopy;
	bool stopping;
	bool preparer_running; /* npreparers > 0 */
	size_t npreparers;
	pthread_t preparer[LOCAL_PREPARERS];
	bool reaper_running;
	pthread_t reaper;
	int reap_fd; /* eventfd: release() or close() has news for the reaper */
};

struct arl_sandbox {
	const struct arl_pool *pool;
	struct sbdir dir;        /* dir.name is the sandbox's name */
	char *path;              /* absolute */
	char *job;               /* for messages; may be NULL */
	bool tainted;            /* a step may have left a process behind: delete, never recycle */
	bool renamed;            /* released: dir.name is already the retired name */
	struct arl_agent *agent; /* bwrap pools: the container's agent (local/container.h) */
	pid_t bwrap_pid;         /* > 0 while the container runs */
	int bwrap_pidfd;
	int64_t stop_by; /* released: bwrap is killed if still alive then (0: not released) */
	bool starting;   /* spawned, HELLO not read yet: start_fd and start_out held */
	int start_fd, start_out;         /* the agent's socket, bwrap's stderr (container.c) */
	struct arl_cgroup *cgroup;       /* the pool's resources (local/cgroup.h); NULL: none */
	const struct local_image *image; /* the root's image (the run's, shared); NULL: host's */
	bool keep_alive; /* its job keeps it (keepAlive): every upper on disk (cow_root.c) */
};

/*
 * A sandbox of @pool around directory @d (taken, even on failure), its image's uppers (the
 * job's in @req, else the pool's; @req may be NULL) and cgroup made; NULL with @err on
 * failure. Nothing runs in it yet (backend_local.c).
 */
struct arl_sandbox *arl_local_sandbox_new(struct local *L, const struct arl_pool *pool,
                                          const struct arl_sandbox_req *req, struct sbdir *d,
                                          struct arl_err *err);

/* Ends @sb's container (waiting for it) and cgroup, retires its directory, frees it. */
void arl_local_sandbox_end(struct local *L, struct arl_sandbox *sb);

/* Replaces @o with a copy of @s (NULL: empty). */
void arl_local_set_output(struct arl_output *o, const char *s);

/* A step that failed before (or instead of) running anything: a FAILED step, not infra. */
void arl_local_step_fail(struct arl_step_result *res, enum arl_class *cls, int code,
                         const char *msg);

#endif
