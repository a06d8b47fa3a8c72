/*
 * The copy-on-write root (cow_root.h).
 *
 * DESIGN
 * - Each host tree T is an overlay on T with lowers [skeleton of T, host T] and an upper in
 *   the sandbox's directory (upper/T, work/T: one bind, as overlayfs wants them on one
 *   mount). The skeleton (skeleton.h) gives every directory the uid that is 0 inside, so
 *   the sandbox may create and rename anywhere; host files keep their owners (root shows as
 *   nobody) and their permissions: readable as the host allows, replaced only by a rename.
 * - The workspace is an overlay too, lower the pool's workspace as it is on the host: a
 *   sandbox costs two mkdirs whatever the workspace's size. Its files are written in place
 *   only when their owner is the mapped uid (the runner's own, for a runner that is not
 *   root); others are replaced by a rename, like host files.
 * - /etc's upper is in memory (--overlay-mem: a directory on the staging tmpfs), like /tmp:
 *   configuration writes are small, and an overlay whose upper is on the state directory's
 *   filesystem costs the kernel more than the rest of a short job's container (on ext4 its
 *   mount creates and deletes a work directory, a temporary file and a whiteout, and its
 *   unmount syncs the whole filesystem; BENCHMARKS.md section 19).
 *   /usr (where packages install) and /workspace stay on disk. A sandbox whose job keeps
 *   it (keepAlive) has every upper on disk, so its directory holds all it changed; where
 *   tmpfs cannot hold the overlay's xattrs (Linux before 6.6) the agent uses the disk too.
 * - bwrap binds every layer under COW_STAGING (a tmpfs of its own) and mount points for the
 *   trees; the agent mounts, masks, and detaches COW_STAGING, so no step reaches an upper
 *   except through its overlay. The agent gets CAP_SYS_ADMIN (mount), CAP_DAC_OVERRIDE
 *   (overlayfs's work dir is mode 0: without it the kernel finds that the "upper fs does
 *   not support tmpfile"), CAP_SYS_RESOURCE (to set the namespace's user namespace limit to
 *   0, see arl_cow_root_plan()) and CAP_SETPCAP (to drop the bounding set), all in the
 *   sandbox's user namespace only, and drops them before the first step.
 */
#include "local/cow_root.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local/skeleton.h"
#include "local/tree.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define WS_TREE "/workspace"
/* The tree whose upper is in memory (DESIGN). */
#define MEM_TREE "/etc"

int arl_cow_root_open(struct cow_root *c, const char *skel_dir, const char *const *trees,
                      size_t ntrees, uid_t uid, gid_t gid, struct arl_err *err)
{
	memset(c, 0, sizeof(*c));
	c->uid = uid;
	c->gid = gid;
	if (mkdir(skel_dir, 0755) < 0) {
		arl_error_errno(err, errno, "cannot make skeleton directory '%s'", skel_dir);
		return -1;
	}
	c->skel = arl_xstrdup(skel_dir);
	for (size_t i = 0; i < ntrees; i++) {
		char *dst;
		int r;

		if (trees[i][0] != '/' || !trees[i][1] || strchr(trees[i] + 1, '/')) {
			arl_error(err, ARL_E_INVALID, "'%s' is not a top-level directory",
			          trees[i]);
			arl_cow_root_close(c);
			return -1;
		}
		dst = arl_xasprintf("%s%s", skel_dir, trees[i]);
		r = arl_local_skeleton_build(trees[i], dst, uid, gid, NULL, err);
		free(dst);
		if (r < 0) {
			arl_cow_root_close(c);
			return -1;
		}
		arl_local_sv_push(&c->trees, trees[i]);
	}
	return 0;
}

void arl_cow_root_use(struct cow_root *c, const char *skel_dir, const char *const *trees,
                      size_t ntrees, uid_t uid, gid_t gid)
{
	memset(c, 0, sizeof(*c));
	c->uid = uid;
	c->gid = gid;
	c->skel = arl_xstrdup(skel_dir);
	c->borrowed = true;
	for (size_t i = 0; i < ntrees; i++)
		arl_local_sv_push(&c->trees, trees[i]);
}

void arl_cow_root_close(struct cow_root *c)
{
	struct arl_err err = ARL_ERR_INIT;

	if (c->skel && !c->borrowed && arl_local_rm_tree(AT_FDCWD, c->skel, &err) < 0)
		arl_log_warn("%s", err.msg);
	free(c->skel);
	c->skel = NULL;
	arl_local_sv_release(&c->trees);
}

/* Makes @name in @dfd owned by the root's uid; an fd of it, or -1. */
static int make_owned(const struct cow_root *c, int dfd, const char *name, struct arl_err *err)
{
	int fd;

	if (mkdirat(dfd, name, 0755) < 0 ||
	    (fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot make '%s' in the sandbox directory", name);
		return -1;
	}
	if ((c->uid != geteuid() || c->gid != getegid()) && fchown(fd, c->uid, c->gid) < 0) {
		arl_error_errno(err, errno, "cannot chown '%s' in the sandbox directory", name);
		close(fd);
		return -1;
	}
	return fd;
}

int arl_cow_root_make_uppers(const struct cow_root *c, int sbfd, struct arl_err *err)
{
	static const char *const kinds[] = {"upper", "work"};

	for (size_t k = 0; k < 2; k++) {
		int kfd = make_owned(c, sbfd, kinds[k], err);

		for (size_t i = 0; kfd >= 0 && i <= c->trees.n; i++) {
			const char *t = i < c->trees.n ? c->trees.v[i] : WS_TREE;
			int fd = make_owned(c, kfd, t + 1, err);

			/* The workspace's root was 0700 when it was the sandbox directory. */
			if (fd >= 0 && i == c->trees.n && k == 0 && fchmod(fd, 0700) < 0) {
				arl_error_errno(err, errno, "cannot chmod the workspace's upper");
				close(fd);
				fd = -1;
			}
			if (fd < 0) {
				close(kfd);
				kfd = -1;
			} else {
				close(fd);
			}
		}
		if (kfd < 0)
			return -1;
		close(kfd);
	}
	return 0;
}

static void push3(struct strvec *v, const char *opt, const char *a, const char *b)
{
	arl_local_sv_push(v, opt);
	arl_local_sv_push(v, a);
	if (b)
		arl_local_sv_push(v, b);
}

void arl_cow_root_bwrap_args(const struct cow_root *c, struct strvec *v, const char *sb,
                             const char *ws_lower)
{
	static const char *const caps[] = {"CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_SYS_RESOURCE",
	                                   "CAP_SETPCAP"};

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		push3(v, "--cap-add", caps[i], NULL);
	push3(v, "--tmpfs", COW_STAGING, NULL);
	push3(v, "--ro-bind", c->skel, COW_STAGING "/skel");
	push3(v, "--bind", sb, COW_STAGING "/sb");
	for (size_t i = 0; i < c->trees.n; i++) {
		char *low = arl_xasprintf(COW_STAGING "/low%s", c->trees.v[i]);

		push3(v, "--ro-bind", c->trees.v[i], low);
		push3(v, "--dir", c->trees.v[i], NULL);
		free(low);
	}
	if (ws_lower)
		push3(v, "--ro-bind", ws_lower, COW_STAGING "/low" WS_TREE);
	else
		push3(v, "--dir", COW_STAGING "/low" WS_TREE, NULL);
	push3(v, "--dir", WS_TREE, NULL);
}

void arl_cow_root_plan(const struct cow_root *c, struct strvec *plan, const char *const *masks,
                       size_t nmasks, const char *tmpfs, bool all_on_disk)
{
	for (size_t i = 0; i <= c->trees.n; i++) {
		const char *t = i < c->trees.n ? c->trees.v[i] : WS_TREE;
		bool mem = !all_on_disk && !strcmp(t, MEM_TREE);

		arl_local_sv_push(plan, mem ? "--overlay-mem" : "--overlay");
		arl_local_sv_push(plan, t);
		if (i < c->trees.n)
			arl_local_sv_take(
			    plan, arl_xasprintf(COW_STAGING "/skel%s:" COW_STAGING "/low%s", t, t));
		else
			arl_local_sv_push(plan, COW_STAGING "/low" WS_TREE);
		arl_local_sv_take(plan, arl_xasprintf(COW_STAGING "/sb/upper%s", t));
		arl_local_sv_take(plan, arl_xasprintf(COW_STAGING "/sb/work%s", t));
		if (mem)
			arl_local_sv_take(plan, arl_xasprintf(COW_STAGING "/mem-%s", t + 1));
	}
	for (size_t i = 0; i < nmasks; i++)
		push3(plan, "--mask", masks[i], NULL);
	if (tmpfs)
		push3(plan, "--tmpfs", tmpfs, NULL);
	push3(plan, "--no-userns", COW_STAGING "/proc", NULL);
	push3(plan, "--detach", COW_STAGING, NULL);
}
