/*
 * The copy-on-write root of a local container: the host trees a sandbox sees (/usr, /etc...)
 * and the pool's workspace become overlays whose upper layers live in the sandbox's own
 * directory; the agent mounts them (agent/mounts.h) from the plan built here (see DESIGN in
 * cow_root.c).
 */
#ifndef ARL_LOCAL_COW_ROOT_H
#define ARL_LOCAL_COW_ROOT_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "local/strvec.h"

/*
 * Where runs build their skeletons: SKEL_DIR/SKEL_PREFIX + a sandbox-like name
 * ("sb-RUN-OWNER-N"), so gc finds those of a runner killed with -9 (local_gc.c); those kept
 * for later runs are renamed (skel_cache.h).
 */
#define COW_SKEL_DIR    "/dev/shm"
#define COW_SKEL_PREFIX "arl-batch-skel-"

/* Where a container sees the layers until the agent has mounted them (then detached). */
#define COW_STAGING "/.arl-layers"

/* A run's copy-on-write layers: the skeletons of its host trees, shared by every sandbox. */
struct cow_root {
	char *skel;          /* the run's skeleton directory; NULL: not built (or closed) */
	bool borrowed;       /* arl_cow_root_use()'d: not ours to delete */
	struct strvec trees; /* absolute top-level host trees ("/usr", "/etc", ...) */
	uid_t uid;           /* who owns skeletons and uppers: the uid bwrap runs as */
	gid_t gid;
};

/*
 * Builds, in new directory @skel_dir, the skeleton of each host tree of @trees (absolute,
 * top-level: "/usr"), owned by @uid/@gid. -1 with nothing left behind on failure. Put it on a
 * tmpfs the sandbox uid can reach: /usr and /etc here are 17,000 directories, made in
 * ~0.25 s on a tmpfs and ~2.5 s on ext4 (bench/cow_prepare.sh).
 */
int arl_cow_root_open(struct cow_root *c, const char *skel_dir, const char *const *trees,
                      size_t ntrees, uid_t uid, gid_t gid, struct arl_err *err);

/* The same over skeletons @skel_dir already holds (skel_cache.h): close leaves them. */
void arl_cow_root_use(struct cow_root *c, const char *skel_dir, const char *const *trees,
                      size_t ntrees, uid_t uid, gid_t gid);

/* Deletes the skeletons (unless borrowed); a no-op on a root never opened. */
void arl_cow_root_close(struct cow_root *c);

/*
 * Makes the upper and work directories of every tree (and of the workspace) in sandbox
 * directory @sbfd, owned by the root's uid. Returns 0 or -1.
 */
int arl_cow_root_make_uppers(const struct cow_root *c, int sbfd, struct arl_err *err);

/*
 * Appends to bwrap's options (@v): the capabilities the agent needs to mount (it drops them
 * all before the first step), each layer bound at COW_STAGING, and the trees' mount points.
 * @sb is the sandbox directory as bwrap reaches it, @ws_lower the pool's workspace (NULL:
 * an empty one).
 */
void arl_cow_root_bwrap_args(const struct cow_root *c, struct strvec *v, const char *sb,
                             const char *ws_lower);

/*
 * Appends the agent's mount plan to @plan: an overlay per tree and on /workspace (/etc's
 * upper in memory unless @all_on_disk, see DESIGN in cow_root.c), @masks
 * (files to hide, as bwrap's binds did) bound over with /dev/null, @tmpfs (NULL: none) as an
 * empty tmpfs, user namespaces forbidden (bwrap's --disable-userns must not be used: it nests
 * the sandbox in a second user namespace where the agent cannot mount), then the staging
 * place detached.
 */
void arl_cow_root_plan(const struct cow_root *c, struct strvec *plan, const char *const *masks,
                       size_t nmasks, const char *tmpfs, bool all_on_disk);

#endif
