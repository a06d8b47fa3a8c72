/*
 * The skeleton layer of a copy-on-write root: a host tree's directories only, owned by the uid
 * that is 0 inside the sandbox. As the top lower layer of the tree's overlay it makes every
 * merged directory the sandbox's own (create, delete and rename anywhere), while the host's
 * files keep their host owners and permissions (see DESIGN in skeleton.c).
 */
#ifndef ARL_LOCAL_SKELETON_H
#define ARL_LOCAL_SKELETON_H

#include <sys/types.h>

#include "err.h"

/*
 * Creates directory @dst (it must not exist) and under it every directory of host tree @src
 * with the same names and permission bits, owned by @uid/@gid (chowned only when that is not
 * already who we are). Symlinks are never followed; what vanishes or changes type while it
 * is read is skipped, and a directory we, or @uid/@gid (without supplementary groups) when
 * building for another uid, may not list is made empty. Returns 0, or -1 with
 * @dst partly built (the caller deletes it).
 */
int arl_local_skeleton_build(const char *src, const char *dst, uid_t uid, gid_t gid,
                             struct arl_err *err);

#endif
