/* Copying and deleting directory trees without ever following a symlink. */
#ifndef ARL_LOCAL_TREE_H
#define ARL_LOCAL_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* What bounds a copy for an attempt: the job's prepareTimeout and the run's cancel. */
struct copy_bound {
	int64_t deadline; /* arl_now_ms clock */
	int cancel_fd;    /* -1: none */
	uid_t uid;        /* with chown: who gets the copy */
	gid_t gid;
	bool chown; /* as root: hand every entry to uid/gid (the step's uid must change them) */
};

/*
 * Opens directory @name in @parent for deletion, never through a symlink, giving ourselves
 * u+rwx back on one a step locked. Returns the fd or -1 (errno set).
 */
int arl_local_open_dir_owned(int parent, const char *name);

/*
 * Empties directory @fd (consumed); @topfd < 0 means @fd is the top, where subtrees too deep
 * to descend are moved to be finished. *@seq numbers those moves. Failures are recorded in
 * @err. Returns 0 when the directory ended up empty, -1 when not.
 */
int arl_local_rm_contents(int fd, int topfd, unsigned depth, unsigned *seq, struct arl_err *err);

/* Deletes @name in @parent and everything below it, without ever following a symlink. */
int arl_local_rm_tree(int parent, const char *name, struct arl_err *err);

/*
 * Copies the entries of directory @sfd into @dfd: directories, regular files and symlinks
 * (as symlinks), with permission bits and times; sockets, FIFOs and devices are skipped.
 * @rel is the path so far, for messages; @b (NULL: unbounded) may stop it with
 * ARL_E_TIMEOUT or ARL_E_CANCELLED.
 */
int arl_local_copy_tree(int sfd, int dfd, struct arl_buf *rel, unsigned depth,
                        const struct copy_bound *b, struct arl_err *err);

/* True when directory @fd holds nothing but "." and ".." (reads it from where it is). */
bool arl_local_dir_empty(int fd);

#endif
