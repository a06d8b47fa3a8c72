/*
 * The skeleton layer of a copy-on-write root: a host tree's directories only, owned by the uid
 * that is 0 inside the sandbox. As the top lower layer of the tree's overlay it makes every
 * merged directory the sandbox's own (create, delete and rename anywhere), while the host's
 * files keep their host owners and permissions (see DESIGN in skeleton.c).
 */
#ifndef ARL_LOCAL_SKELETON_H
#define ARL_LOCAL_SKELETON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "err.h"

/*
 * What a skeleton was made from: each host directory it copied (its absolute path, then its
 * device, inode, mode, owner, mtime and ctime), in the order they were read, parents first.
 * A directory's mtime and ctime change with any entry added, removed or renamed in it, and
 * its ctime with its mode or owner: while none of them changed, a build would make the same
 * skeleton again (arl_local_skeleton_current()).
 * With @own set, the skeleton's own directories are recorded too (path @own + the path below
 * the tree, once each is finished), so that a change made to a kept skeleton (its directories
 * are the sandbox uid's) is seen as well; they do not count for @newest.
 */
struct arl_skel_manifest {
	struct arl_buf buf;     /* the records: path, NUL, then struct skel_rec (skeleton.c) */
	struct timespec newest; /* the newest ctime of the host directories recorded */
	const char *own; /* where the skeleton is, relative to the dirfd it is checked at; NULL */
};

/*
 * Creates directory @dst (it must not exist) and under it every directory of host tree @src
 * with the same names and permission bits, owned by @uid/@gid (chowned only when that is not
 * already who we are). Symlinks are never followed; what vanishes or changes type while it
 * is read is skipped, and a directory we, or @uid/@gid (without supplementary groups) when
 * building for another uid, may not list is made empty. Appends what it copied to
 * @manifest (NULL: not recorded). Returns 0, or -1 with @dst partly built (the caller
 * deletes it).
 */
int arl_local_skeleton_build(const char *src, const char *dst, uid_t uid, gid_t gid,
                             struct arl_skel_manifest *manifest, struct arl_err *err);

/*
 * Whether every directory of manifest @m (@len bytes, as arl_skel_manifest.buf holds it) is
 * still as recorded; false on the first that is not, or a malformed manifest.
 */
bool arl_local_skeleton_current(const char *m, size_t len);
/* The same, with relative paths (a kept skeleton's own, see @own) taken at @dirfd. */
bool arl_local_skeleton_current_at(int dirfd, const char *m, size_t len);

void arl_skel_manifest_release(struct arl_skel_manifest *m);

#endif
