/*
 * Skeletons kept between runs (skel_cache.h).
 *
 * DESIGN
 * - A run's skeleton (skeleton.h) depends only on the host trees, the uid and gid it is for
 *   and who builds it (what that one may list). It is kept in COW_SKEL_DIR under a name of
 *   those (SKEL_CACHE_TAG "EUID-UID-GID-KEY-BUILDER", KEY a hash of the trees), beside its
 *   manifest: every directory it copied with its inode, mode, owner, mtime and ctime. A run
 *   stats them (~17,000 for /usr and /etc: a few tens of ms, where building and deleting
 *   cost ~0.25 s of CPU): a directory added, removed, renamed, chmod'ed or chown'ed anywhere
 *   changes a recorded directory's mtime or ctime, and a skeleton found stale is rebuilt.
 *   The skeleton's own directories are recorded as well (relative to TOP), so that one a
 *   host process of the sandbox uid changed (a file planted in TOP/skel/usr/bin) is stale.
 * - A build is read while the trees may change: one whose newest ctime is under SETTLE_S
 *   old (a change within the timestamps' granularity could go unseen) is used by its run and
 *   deleted at its end, as before. A build is made under the run's gc-known name and renamed
 *   only once complete with its manifest, so no run finds a partial one.
 * - Each run holds the skeleton it uses with a shared flock on its directory; a stale one is
 *   deleted only under an exclusive flock taken without waiting, manifest first, so a run
 *   that opened it just before finds no manifest and passes it by. `gc --yes` deletes the
 *   kept skeletons no run holds.
 * - TOP is mode 0711: the sandbox uid reaches TOP/skel by its path, but no one else can open
 *   TOP, so no local user can flock it (a lock held by anyone made every run build, and keep,
 *   one more). A kept one others may read (made before) is not reused. At most KEEP_MAX are
 *   kept per name prefix: beyond, a run's build is its own and deleted at its end.
 * - Trust: only a directory we own that no one else may write is used, and only its
 *   manifest's verdict; /dev/shm is sticky, so no one else can swap it. Like a run's own
 *   skeleton, its directories below the trees are the sandbox uid's (they must be, see
 *   skeleton.c): a process running as that uid on the host could change them, for as long
 *   as they are kept instead of for one run, and the next run finds the skeleton stale (its
 *   own directories are in the manifest); a sandbox never sees them but read-only.
 */
#include "local/skel_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "local/cow_root.h"
#include "local/skeleton.h"
#include "local/tree.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define SETTLE_S     2
#define MANIFEST     "manifest"
#define MANIFEST_MAX (256u << 20)
#define KEEP_MAX     4
#define FORMAT       "skel-cache-2" /* in the key: a change of format makes new names */

/* COW_SKEL_PREFIX SKEL_CACHE_TAG "EUID-UID-GID-KEY-" (owned). */
static char *cache_prefix(const char *const *trees, size_t ntrees, uid_t uid, gid_t gid)
{
	struct arl_buf k = ARL_BUF_INIT;
	uint64_t key;
	char *p;

	arl_buf_add(&k, FORMAT, sizeof(FORMAT));
	for (size_t i = 0; i < ntrees; i++)
		arl_buf_add(&k, trees[i], strlen(trees[i]) + 1);
	key = arl_fnv1a_n(k.p, k.len);
	arl_buf_release(&k);
	p = arl_xasprintf(COW_SKEL_PREFIX SKEL_CACHE_TAG "%u-%u-%u-%016" PRIx64 "-",
	                  (unsigned)geteuid(), (unsigned)uid, (unsigned)gid, key);
	return p;
}

/* Directory @name in @dfd when it is ours and no one else may write it; -1 otherwise. */
static int open_ours(int dfd, const char *name)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	                (st.st_mode & 022))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Whether the manifest in @fd is there, ours, and says the trees are unchanged. */
static bool still_current(int fd)
{
	struct arl_buf b = ARL_BUF_INIT;
	struct stat st;
	char chunk[65536];
	ssize_t n;
	bool ok = false;
	int mfd = openat(fd, MANIFEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (mfd < 0)
		return false;
	if (fstat(mfd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) || (uint64_t)st.st_size > MANIFEST_MAX)
		goto out;
	while ((n = read(mfd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			arl_buf_add(&b, chunk, (size_t)n);
	if (n == 0 && b.len == (size_t)st.st_size)
		ok = arl_local_skeleton_current_at(fd, b.p, b.len);
out:
	close(mfd);
	arl_buf_release(&b);
	return ok;
}

/*
 * Deletes kept skeleton @name of @dfd (@fd its directory) if no run holds it: manifest
 * first, so a run that opened it meanwhile passes it by. Returns whether it did.
 */
static bool delete_unheld(int dfd, const char *name, int fd)
{
	struct arl_err err = ARL_ERR_INIT;

	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return false;
	if (unlinkat(fd, MANIFEST, 0) < 0 && errno != ENOENT)
		return false;
	if (arl_local_rm_tree(dfd, name, &err) < 0)
		arl_log_warn("cannot delete kept skeleton '%s': %s", name, err.msg);
	return true;
}

/*
 * A kept skeleton still current, held; false when none. Deletes the stale ones no run holds.
 * *@others: how many others of @prefix are left.
 */
static bool find_kept(struct skel_cache *c, const char *dir, const char *prefix, size_t *others)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;

	*others = 0;
	while (d && (de = readdir(d))) {
		int fd;

		if (strncmp(de->d_name, prefix, strlen(prefix)) ||
		    (fd = open_ours(dirfd(d), de->d_name)) < 0)
			continue;
		if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
			close(fd); /* being deleted, or held by a run we cannot share it with */
			(*others)++;
			continue;
		}
		/* Others may open (and so flock) one they can read: not to be reused. */
		if (fstat(fd, &st) < 0 || (st.st_mode & 044) || !still_current(fd)) {
			delete_unheld(dirfd(d), de->d_name, fd);
		} else if (!c->top) {
			c->top = arl_xasprintf("%s/%s", dir, de->d_name);
			c->lockfd = fd;
			c->kept = true;
			continue;
		} else {
			(*others)++;
		}
		close(fd);
	}
	if (d)
		closedir(d);
	return c->top != NULL;
}

/* Builds the skeleton in @dir/@build_name, then keeps it under @prefix + @build_name (NULL:
 * not kept). */
static int build(struct skel_cache *c, const char *dir, const char *build_name, const char *prefix,
                 const char *const *trees, size_t ntrees, uid_t uid, gid_t gid, struct arl_err *err)
{
	struct arl_skel_manifest m = {ARL_BUF_INIT, {0, 0}, NULL};
	struct timespec start;
	char *skel = NULL, *kept = NULL;
	bool settled, made = false;
	int ret = -1, mfd;

	clock_gettime(CLOCK_REALTIME, &start);
	c->top = arl_xasprintf("%s/%s", dir, build_name);
	/* 0711: bwrap, as the sandbox uid, binds TOP/skel by its path; no one else opens TOP. */
	if (mkdir(c->top, 0700) == 0)
		made = true;
	if (!made || chmod(c->top, 0711) < 0 || (c->lockfd = open_ours(AT_FDCWD, c->top)) < 0 ||
	    flock(c->lockfd, LOCK_SH) < 0) {
		arl_error_errno(err, errno, "cannot make skeleton directory '%s'", c->top);
		goto out;
	}
	skel = arl_xasprintf("%s/skel", c->top);
	if (mkdir(skel, 0755) < 0) {
		arl_error_errno(err, errno, "cannot make skeleton directory '%s'", skel);
		goto out;
	}
	for (size_t i = 0; i < ntrees; i++) {
		char *dst, *own;
		int r;

		if (trees[i][0] != '/' || !trees[i][1] || strchr(trees[i] + 1, '/')) {
			arl_error(err, ARL_E_INVALID, "'%s' is not a top-level directory",
			          trees[i]);
			goto out;
		}
		dst = arl_xasprintf("%s%s", skel, trees[i]);
		/* Its own directories too, relative to TOP: it is renamed once kept. */
		own = arl_xasprintf("skel%s", trees[i]);
		m.own = own;
		r = arl_local_skeleton_build(trees[i], dst, uid, gid, &m, err);
		m.own = NULL;
		free(own);
		free(dst);
		if (r < 0)
			goto out;
	}
	ret = 0;
	settled = prefix && m.newest.tv_sec < start.tv_sec - SETTLE_S;
	mfd = settled ? openat(c->lockfd, MANIFEST,
	                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)
	              : -1;
	if (mfd >= 0) {
		settled = arl_write_all(mfd, m.buf.p, m.buf.len);
		settled = !close(mfd) && settled;
	}
	if (mfd >= 0 && settled)
		kept = arl_xasprintf(
		    "%s/%s%s", dir, prefix,
		    build_name + (strncmp(build_name, COW_SKEL_PREFIX, strlen(COW_SKEL_PREFIX))
		                      ? 0
		                      : strlen(COW_SKEL_PREFIX)));
	if (kept && renameat2(AT_FDCWD, c->top, AT_FDCWD, kept, RENAME_NOREPLACE) == 0) {
		free(c->top);
		c->top = kept;
		kept = NULL;
		c->kept = true;
	}
out:
	if (ret < 0 && made) {
		struct arl_err rm = ARL_ERR_INIT;

		if (arl_local_rm_tree(AT_FDCWD, c->top, &rm) < 0)
			arl_log_warn("%s", rm.msg);
	}
	free(kept);
	free(skel);
	arl_skel_manifest_release(&m);
	return ret;
}

int arl_skel_cache_open(struct skel_cache *c, const char *dir, const char *build_name,
                        const char *const *trees, size_t ntrees, uid_t uid, gid_t gid, bool keep,
                        struct arl_err *err)
{
	char *prefix = cache_prefix(trees, ntrees, uid, gid);
	size_t others = 0;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	c->lockfd = -1;
	if (!(keep && find_kept(c, dir, prefix, &others)) &&
	    (ret = build(c, dir, build_name, keep && others < KEEP_MAX ? prefix : NULL, trees,
	                 ntrees, uid, gid, err)) < 0) {
		if (c->lockfd >= 0)
			close(c->lockfd);
		free(c->top);
		memset(c, 0, sizeof(*c));
		c->lockfd = -1;
	}
	if (ret == 0)
		c->skel = arl_xasprintf("%s/skel", c->top);
	free(prefix);
	return ret;
}

void arl_skel_cache_close(struct skel_cache *c)
{
	struct arl_err err = ARL_ERR_INIT;

	if (!c->top)
		return;
	if (!c->kept && arl_local_rm_tree(AT_FDCWD, c->top, &err) < 0)
		arl_log_warn("%s", err.msg);
	if (c->lockfd >= 0)
		close(c->lockfd);
	free(c->top);
	free(c->skel);
	memset(c, 0, sizeof(*c));
	c->lockfd = -1;
}

int arl_skel_cache_sweep(const char *dir, bool remove, FILE *out)
{
	char *prefix = arl_xasprintf(COW_SKEL_PREFIX SKEL_CACHE_TAG "%u-", (unsigned)geteuid());
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	while (d && (de = readdir(d))) {
		int fd;

		if (strncmp(de->d_name, prefix, strlen(prefix)) ||
		    (fd = open_ours(dirfd(d), de->d_name)) < 0)
			continue;
		if (remove ? delete_unheld(dirfd(d), de->d_name, fd)
		           : flock(fd, LOCK_EX | LOCK_NB) == 0) {
			found++;
			if (out)
				fprintf(out, "%s %s/%s (a kept skeleton no run uses)\n",
				        remove ? "deleting" : "unused", dir, de->d_name);
		}
		close(fd);
	}
	if (d)
		closedir(d);
	free(prefix);
	return found;
}
