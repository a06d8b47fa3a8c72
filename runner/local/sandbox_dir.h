/*
 * Sandbox directories of the local backend: made, filled with the pool's workspace, kept
 * warm, recycled when released and deleted (see DESIGN in backend_local.c).
 */
#ifndef ARL_LOCAL_SANDBOX_DIR_H
#define ARL_LOCAL_SANDBOX_DIR_H

#include <stdbool.h>
#include <sys/types.h>

#include <linux/fs.h>

#include "err.h"
#include "local/tree.h"

struct local;
struct arl_pool;
struct arl_sandbox;

/* What a step could change on a sandbox directory itself, beside its entries and mode. */
struct dirattr {
	dev_t dev;
	ino_t ino;
	uid_t uid;
	gid_t gid;
	mode_t mode;        /* not compared: recycling sets 0700 again */
	off_t size;         /* ext4 directories never shrink: a grown one is not recycled */
	ssize_t xattrs;     /* flistxattr()'s length of the names; -1: not supported here */
	int fsx_errno;      /* 0, or why FS_IOC_FSGETXATTR failed */
	struct fsxattr fsx; /* inode flags (chattr), project id */
};

/* A sandbox directory and what it was like when made, to tell whether it can be recycled. */
struct sbdir {
	char *name; /* base name under state_dir; owned */
	struct dirattr made;
	bool recyclable; /* made is known and nothing in it rules reuse out */
	bool uppers;     /* a spare that kept its empty upper/ and work/ trees (sandbox_dir.c) */
};

/* "PID-START-BOOT-PIDNS" of this runner for its sandbox names (gc judges owners by it). */
char *arl_local_owner_tag(void);

/*
 * Makes a new, empty sandbox directory, mode 0700 whatever the umask, owned by @uid and @gid
 * as root. Returns an fd of it (the caller closes it), or -1.
 */
int arl_local_create_dir(struct local *L, uid_t uid, gid_t gid, struct sbdir *d,
                         struct arl_err *err);

/* Deletes what is left of a sandbox directory on an error path and frees its name. */
void arl_local_drop_dir(struct local *L, struct sbdir *d);

/* Deletes @d's directory and frees its name; never fails the run, only says so. */
void arl_local_discard(struct local *L, struct sbdir *d);

/*
 * A sandbox directory for @pool: a spare one or a new one, with the pool's workspace in it.
 * @b bounds the copy (NULL: unbounded).
 */
int arl_local_make_sandbox(struct local *L, const struct arl_pool *pool, const struct copy_bound *b,
                           struct sbdir *out, struct arl_err *err);

/*
 * Renames a released sandbox's directory to the next fresh name (sb->renamed), so its own
 * name is gone at once; false when it cannot be. arl_local_retire() does it when not done.
 */
bool arl_local_retire_rename(struct local *L, struct arl_sandbox *sb);

/* Takes a released sandbox's directory out of sight: a spare, queued, or deleted. */
void arl_local_retire(struct local *L, struct arl_sandbox *sb);

/* The warm pool of @pool, or NULL; called with L->mu held. */
struct warm_pool *arl_local_find_warm(struct local *L, const struct arl_pool *pool);

/* Whether @w has fewer sandboxes at hand than its replicas; called with L->mu held. */
bool arl_local_pool_short(const struct local *L, const struct warm_pool *w);

/* The preparer thread (@arg: struct local): empties released directories, fills warm pools. */
void *arl_local_preparer_main(void *arg);

#endif
