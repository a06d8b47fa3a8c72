/*
 * Sandbox directories: their names (which carry the owner gc judges by), making and filling
 * them, the warm pools and their preparer thread, and recycling released ones (see DESIGN in
 * backend_local.c).
 */
#include "local/sandbox_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "local/container.h"
#include "local/identity.h"
#include "local/local.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define MKDIR_TRIES 100

static int dirattr_read(int fd, struct dirattr *a)
{
	struct stat st;

	memset(a, 0, sizeof(*a));
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
		return -1;
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->uid = st.st_uid;
	a->gid = st.st_gid;
	a->mode = st.st_mode;
	a->size = st.st_size;
	a->xattrs = flistxattr(fd, NULL, 0);
	if (a->xattrs < 0 && errno != ENOTSUP)
		return -1;
	if (ioctl(fd, FS_IOC_FSGETXATTR, &a->fsx) < 0)
		a->fsx_errno = errno ? errno : EIO;
	return 0;
}

static bool dirattr_unchanged(const struct dirattr *now, const struct dirattr *made)
{
	const struct fsxattr *a = &now->fsx, *b = &made->fsx;

	return now->dev == made->dev && now->ino == made->ino && now->uid == made->uid &&
	       now->gid == made->gid && now->size <= made->size && now->xattrs == made->xattrs &&
	       now->fsx_errno == made->fsx_errno &&
	       (now->fsx_errno ||
	        (a->fsx_xflags == b->fsx_xflags && a->fsx_extsize == b->fsx_extsize &&
	         a->fsx_projid == b->fsx_projid && a->fsx_cowextsize == b->fsx_cowextsize));
}

/*
 * "PID-START-BOOT-PIDNS" of this runner for its sandbox names: the boot id's first 8 hex
 * digits, the PID namespace's inode; 0 for what cannot be read. See local_gc.c.
 */
char *arl_local_owner_tag(void)
{
	struct arl_owner me;

	arl_owner_self(&me);
	return arl_xasprintf("%ld-%llu-%.8s-%s", me.pid, me.start,
	                     strspn(me.boot, "0123456789abcdef") >= 8 ? me.boot : "0",
	                     me.pidns[0] ? me.pidns : "0");
}

/* The next sandbox name, "sb-RUN-PID-START-BOOT-PIDNS-N": gc judges its owner by it. Owned. */
static char *next_name(struct local *L)
{
	unsigned long n;

	pthread_mutex_lock(&L->mu);
	n = ++L->counter;
	pthread_mutex_unlock(&L->mu);
	return arl_xasprintf("sb-%lld-%s-%lu", (long long)L->run_id, L->owner, n);
}

/* Deletes what is left of a sandbox directory on an error path and frees its name. */
void arl_local_drop_dir(struct local *L, struct sbdir *d)
{
	struct arl_err ignored = ARL_ERR_INIT;

	if (!d->name)
		return;
	arl_local_rm_tree(L->state_fd, d->name, &ignored);
	free(d->name);
	d->name = NULL;
}

/*
 * Makes a new, empty sandbox directory, mode 0700 whatever the umask, owned by @uid and @gid
 * as root, and notes what it is like for recycling. Returns an fd of it (the caller closes
 * it), or -1.
 */
int arl_local_create_dir(struct local *L, uid_t uid, gid_t gid, struct sbdir *d,
                         struct arl_err *err)
{
	char *name = NULL;
	int dfd;

	for (int i = 0; i < MKDIR_TRIES && !name; i++) {
		name = next_name(L);
		if (mkdirat(L->state_fd, name, 0700) == 0)
			break;
		if (errno != EEXIST) {
			arl_error_errno(err, errno, "cannot create sandbox '%s/%s'", L->state_dir,
			                name);
			free(name);
			return -1;
		}
		free(name); /* left over from an earlier process with our pid */
		name = NULL;
	}
	if (!name)
		return arl_error(err, ARL_E_SYS, "cannot create a sandbox in '%s': names in use",
		                 L->state_dir);
	/*
	 * Exactly 0700, whatever the umask: the workspace is private to its sandbox. As root,
	 * it belongs to the sandbox uid, the only one that uses it (before the mode: chown
	 * may clear bits).
	 */
	dfd = openat(L->state_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || (L->drop && fchown(dfd, uid, gid) < 0) || fchmod(dfd, 0700) < 0) {
		struct arl_err ignored = ARL_ERR_INIT;

		arl_error_errno(err, errno, "cannot open sandbox '%s/%s'", L->state_dir, name);
		if (dfd >= 0)
			close(dfd);
		arl_local_rm_tree(L->state_fd, name, &ignored);
		free(name);
		return -1;
	}
	/* Extended attributes it was born with (inherited ACLs, labels) could not be compared. */
	d->recyclable = dirattr_read(dfd, &d->made) == 0 && d->made.xattrs <= 0;
	d->name = name;
	return dfd;
}

/* Says in @err why copying @workspace failed (@copy_err). */
static void copy_failed(struct arl_err *err, struct arl_err *copy_err, const char *workspace)
{
	enum arl_errc code = copy_err->code;

	if (code == ARL_E_TIMEOUT || code == ARL_E_CANCELLED) {
		arl_error(err, code, "%s while copying workspace '%s'",
		          code == ARL_E_TIMEOUT ? "the job's prepareTimeout passed" : "cancelled",
		          workspace);
	} else {
		arl_err_prefix(copy_err, "cannot copy workspace '%s'", workspace);
		arl_error(err, code, "%s", copy_err->msg);
	}
}

/*
 * Kept uppers (keep_uppers()): each of upper/ and work/ holds exactly one directory per
 * copy-on-write tree and the workspace, empty, owned by the root's uid, mode 0755 (the
 * workspace's upper 0700), with no extended attribute, inode flag or growth. Checks @fd, a
 * directory of one of them.
 */
#define OVL_UUID_XATTR "user.overlay.uuid"

/* The process's umask, which made the uppers' modes (read, never set: threads are running). */
static pthread_once_t umask_once = PTHREAD_ONCE_INIT;
static mode_t umask_seen = 0777; /* unknown: no kept mode matches, uppers are made anew */

static void umask_read(void)
{
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");
	unsigned m;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Umask: %o", &m) == 1)
			umask_seen = (mode_t)m & 0777;
	if (f)
		fclose(f);
}

static bool kept_dir_ok(const struct local *L, int fd, mode_t mode)
{
	struct dirattr a;

	char names[64];
	ssize_t n = flistxattr(fd, names, sizeof(names));

	pthread_once(&umask_once, umask_read);
	/* Overlayfs marks an upper's root with its uuid: dropped, as a new upper has none. */
	if (n == sizeof(OVL_UUID_XATTR) && !memcmp(names, OVL_UUID_XATTR, n) &&
	    fremovexattr(fd, OVL_UUID_XATTR) < 0)
		return false;
	return dirattr_read(fd, &a) == 0 && a.uid == L->cow.uid && a.gid == L->cow.gid &&
	       (a.mode & 07777) == (mode & ~umask_seen) && a.xattrs <= 0 && a.size <= 4096 &&
	       (a.fsx_errno || (a.fsx.fsx_xflags == 0 && a.fsx.fsx_projid == 0));
}

/* Whether @name is one of the trees (or the workspace) uppers are made for. */
static bool upper_tree(const struct local *L, const char *name)
{
	if (!strcmp(name, "workspace"))
		return true;
	for (size_t i = 0; i < L->cow.trees.n; i++)
		if (!strcmp(L->cow.trees.v[i] + 1, name))
			return true;
	return false;
}

/*
 * Empties @kind (upper or work) of sandbox directory @sbfd down to its trees' own empty
 * directories; false when anything there is not as arl_cow_root_make_uppers() made it.
 */
static bool empty_kind(struct local *L, int sbfd, const char *kind)
{
	struct arl_err ignored = ARL_ERR_INIT;
	size_t found = 0;
	struct dirent *de;
	DIR *dir;
	bool ok;
	int kfd = openat(sbfd, kind, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rfd;

	if (kfd < 0)
		return false;
	/* A description of its own: a dup would share (and move) kfd's offset. */
	ok = kept_dir_ok(L, kfd, 0755) &&
	     (rfd = openat(kfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0;
	if (!ok || !(dir = fdopendir(rfd))) {
		if (ok)
			close(rfd);
		close(kfd);
		return false;
	}
	while (ok && (de = readdir(dir))) {
		int fd, sub;
		unsigned seq = 0;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!upper_tree(L, de->d_name)) {
			ok = arl_local_rm_tree(kfd, de->d_name, &ignored) == 0;
			continue;
		}
		fd = openat(kfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* arl_local_rm_contents() consumes its fd; ours stays for the checks after it. */
		ok = fd >= 0 &&
		     (arl_local_dir_empty(fd) ||
		      ((sub = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0 &&
		       arl_local_rm_contents(sub, -1, 0, &seq, &ignored) == 0)) &&
		     kept_dir_ok(L, fd,
		                 !strcmp(kind, "upper") && !strcmp(de->d_name, "workspace") ? 0700
		                                                                            : 0755);
		if (fd >= 0)
			close(fd);
		found++;
	}
	closedir(dir);
	close(kfd);
	return ok && found == L->cow.trees.n + 1;
}

/*
 * Empties released copy-on-write sandbox directory @fd but keeps its uppers' own
 * directories, so the next sandbox makes none: every mkdir and rmdir on the state
 * directory's filesystem counts (ext4 without a journal walks past each recently freed
 * inode on every allocation: a quarter of a short job's CPU here). True when @fd holds
 * exactly those, empty and as made; false: the caller empties it all.
 */
static bool keep_uppers(struct local *L, int fd)
{
	struct arl_err ignored = ARL_ERR_INIT;
	struct dirent *de;
	DIR *dir;
	bool ok = true;
	int rfd;

	/* A description of its own: a dup would share (and move) fd's offset. */
	if (!L->cow.skel || (rfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return false;
	if (!(dir = fdopendir(rfd))) {
		close(rfd);
		return false;
	}
	/* Anything beside them (an image's uppers) goes; they are checked and emptied. */
	while (ok && (de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "upper") && strcmp(de->d_name, "work"))
			ok = arl_local_rm_tree(fd, de->d_name, &ignored) == 0;
	closedir(dir);
	return ok && empty_kind(L, fd, "upper") && empty_kind(L, fd, "work");
}

/*
 * A spare for a pool (@cow: one with the copy-on-write root), one with kept uppers first
 * for those, one without first for the others; called with mu held.
 */
static struct sbdir pop_spare(struct local *L, bool cow)
{
	struct sbdir d = {0};
	size_t k = L->nspare;

	for (size_t i = L->nspare; i-- > 0;)
		if (L->spare[i].uppers == cow) {
			k = i;
			break;
		}
	if (L->nspare) {
		if (k == L->nspare)
			k = L->nspare - 1;
		d = L->spare[k];
		L->spare[k] = L->spare[--L->nspare];
	}
	return d;
}

/*
 * A sandbox directory for @pool: a spare one or a new one, with the pool's workspace in it
 * (copied, or with the copy-on-write root its uppers, the workspace then being a lower
 * layer: ws_lower.h). @b bounds the copy (NULL: unbounded).
 */
int arl_local_make_sandbox(struct local *L, const struct arl_pool *pool, const struct copy_bound *b,
                           struct sbdir *out, struct arl_err *err)
{
	struct arl_buf rel = ARL_BUF_INIT;
	/* The copy's own error, reworded before it reaches the caller's. */
	struct arl_err copy_err = ARL_ERR_INIT;
	struct sbdir d = {0};
	struct copy_bound cb = b ? *b : (struct copy_bound){.deadline = INT64_MAX, .cancel_fd = -1};
	const char *workspace = arl_local_pool(pool)->workspace;
	const bool cow = L->cow.skel && arl_local_pool(pool)->isolation == ARL_ISO_BWRAP;
	int sfd = -1, dfd = -1, ret = -1;

	cb.chown = L->drop;
	cb.uid = arl_local_pool_uid(L, pool);
	cb.gid = arl_local_pool_gid(L, pool);
	pthread_mutex_lock(&L->mu);
	d = pop_spare(L, cow);
	pthread_mutex_unlock(&L->mu);
	/* Kept uppers serve only a copy-on-write root: for the others the spare is emptied. */
	if (d.name && d.uppers && !cow) {
		struct arl_err ignored = ARL_ERR_INIT;
		int fd = arl_local_open_dir_owned(L->state_fd, d.name);
		unsigned seq = 0;

		if (fd < 0 || arl_local_rm_contents(fd, -1, 0, &seq, &ignored) < 0) {
			arl_local_discard(L, &d);
			d = (struct sbdir){0};
		}
		d.uppers = false;
	}
	if (!d.name) {
		if ((dfd = arl_local_create_dir(L, cb.uid, cb.gid, &d, err)) < 0)
			return -1;
	} else if (workspace || cow ||
	           (L->drop && (d.made.uid != cb.uid || d.made.gid != cb.gid))) {
		dfd = openat(L->state_fd, d.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* Spares serve every pool: one of the other uid's changes hands (mode stays 0700). */
		if (dfd >= 0 && L->drop && (d.made.uid != cb.uid || d.made.gid != cb.gid)) {
			if (fchown(dfd, cb.uid, cb.gid) < 0) {
				int e = errno;

				close(dfd);
				dfd = -1;
				errno = e;
			}
			d.made.uid = cb.uid;
			d.made.gid = cb.gid;
		}
		if (dfd < 0) {
			arl_error_errno(err, errno, "cannot open sandbox '%s/%s'", L->state_dir,
			                d.name);
			goto out;
		}
	}
	if (cow) {
		/*
		 * Two mkdirs per tree: O(1) in the workspace's size (cow_root.h), which is a
		 * lower layer, as root the run's one copy of it (ws_lower.h).
		 */
		if (!d.uppers && arl_cow_root_make_uppers(&L->cow, dfd, err) < 0)
			goto out;
		d.uppers = false; /* in use: a released one is checked again (keep_uppers()) */
		if (arl_local_ws_lower_make(L, pool, &cb, &copy_err) < 0) {
			copy_failed(err, &copy_err, workspace);
			goto out;
		}
	} else if (workspace) {
		arl_buf_add(&rel, "", 0);
		if ((sfd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			arl_error_errno(err, errno, "cannot open workspace '%s'", workspace);
			goto out;
		}
		if (arl_local_copy_tree(sfd, dfd, &rel, 0, &cb, &copy_err) < 0) {
			copy_failed(err, &copy_err, workspace);
			goto out;
		}
	}
	*out = d;
	d.name = NULL;
	ret = 0;
out:
	arl_local_drop_dir(L, &d);
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	arl_buf_release(&rel);
	return ret;
}

/* Deletes @d's directory and frees its name; never fails the run, only says so. */
void arl_local_discard(struct local *L, struct sbdir *d)
{
	struct arl_err err = ARL_ERR_INIT;

	if (arl_local_rm_tree(L->state_fd, d->name, &err) < 0)
		arl_log_warn("cannot delete sandbox '%s/%s': %s", L->state_dir, d->name, err.msg);
	free(d->name);
	d->name = NULL;
}

/*
 * Empties released directory @d for another sandbox. 0 when it ended up empty and as it was
 * made (see DESIGN in backend_local.c), mode 0700 again; -1 when it must be deleted instead.
 */
static int recycle(struct local *L, struct sbdir *d)
{
	struct arl_err ignored = ARL_ERR_INIT;
	struct dirattr now;
	unsigned seq = 0;
	int fd, sub, ret = -1;

	d->uppers = false;
	if (!d->recyclable || (fd = arl_local_open_dir_owned(L->state_fd, d->name)) < 0)
		return -1;
	d->uppers = keep_uppers(L, fd);
	/* arl_local_rm_contents() consumes its fd (and rewinds it); ours stays for the checks after it. */
	if ((d->uppers || arl_local_dir_empty(fd) ||
	     ((sub = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0 &&
	      arl_local_rm_contents(sub, -1, 0, &seq, &ignored) == 0)) &&
	    dirattr_read(fd, &now) == 0 && dirattr_unchanged(&now, &d->made) &&
	    ((now.mode & 07777) == 0700 || fchmod(fd, 0700) == 0))
		ret = 0;
	close(fd);
	return ret;
}

static void keep_spare(struct local *L, struct sbdir *d);

/* Recycles @d into the spares, or deletes it; takes @d's name either way. */
static void settle(struct local *L, struct sbdir *d)
{
	if (recycle(L, d) == 0)
		keep_spare(L, d);
	else
		arl_local_discard(L, d);
}

/*
 * The common case, checked on the worker: the steps left the directory empty and as made,
 * mode included. Then it is a spare at once for seven system calls, with no wake-up of the
 * preparer; anything else (including a mode to restore) goes the long way, recycle().
 */
static bool recycle_fast(struct local *L, const struct sbdir *d)
{
	struct dirattr now;
	bool ok;
	int fd;

	if (!d->recyclable)
		return false;
	fd = openat(L->state_fd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = arl_local_dir_empty(fd) && dirattr_read(fd, &now) == 0 &&
	     dirattr_unchanged(&now, &d->made) && (now.mode & 07777) == 0700;
	close(fd);
	return ok;
}

/* Keeps recycled @d as a spare when there is room; takes @d's name either way. */
static void keep_spare(struct local *L, struct sbdir *d)
{
	pthread_mutex_lock(&L->mu);
	if (L->nspare < L->backlog) {
		ARL_GROW(L->spare, L->capspare, L->nspare + 1);
		L->spare[L->nspare++] = *d;
		d->name = NULL;
	}
	pthread_mutex_unlock(&L->mu);
	if (d->name)
		arl_local_discard(L, d);
}

/*
 * Takes a released sandbox's directory out of sight at once: renamed to the next fresh name
 * (so its own name is gone when release() returns). Left empty and unaltered, it is a spare
 * right away; otherwise it is queued for the preparer to empty or delete off the worker's
 * path, or done here when there is no preparer or the queue is full.
 */
bool arl_local_retire_rename(struct local *L, struct arl_sandbox *sb)
{
	for (int i = 0; i < MKDIR_TRIES && !sb->renamed; i++) {
		char *name = next_name(L);

		/* NOREPLACE: an earlier process with our pid may have left that name behind. */
		if (renameat2(L->state_fd, sb->dir.name, L->state_fd, name, RENAME_NOREPLACE) ==
		    0) {
			free(sb->dir.name);
			sb->dir.name = name;
			sb->renamed = true;
			break;
		}
		free(name);
		if (errno != EEXIST)
			break;
	}
	return sb->renamed;
}

void arl_local_retire(struct local *L, struct arl_sandbox *sb)
{
	bool renamed = arl_local_retire_rename(L, sb), queued = false;
	struct sbdir d = sb->dir;

	sb->dir.name = NULL;
	if (sb->tainted)
		d.recyclable = false;
	if (!renamed) {
		/* Gone, or it cannot be moved: delete it where it is, as before recycling. */
		d.recyclable = false;
		settle(L, &d);
		return;
	}
	if (recycle_fast(L, &d)) {
		keep_spare(L, &d);
		return;
	}
	pthread_mutex_lock(&L->mu);
	if (L->preparer_running && !L->stopping && L->ndirty < L->backlog) {
		ARL_GROW(L->dirty, L->capdirty, L->ndirty + 1);
		L->dirty[L->ndirty++] = d;
		pthread_cond_signal(&L->cv);
		queued = true;
	}
	pthread_mutex_unlock(&L->mu);
	if (!queued)
		settle(L, &d);
}

struct warm_pool *arl_local_find_warm(struct local *L, const struct arl_pool *pool)
{
	for (size_t i = 0; i < L->nwarm; i++)
		if (L->warm[i].pool == pool)
			return &L->warm[i];
	return NULL;
}

/*
 * Whether @w has fewer sandboxes at hand than its replicas; called with mu held. Without a
 * workspace to copy, a spare is as ready as a ready one: acquire() takes it as it is.
 */
bool arl_local_pool_short(const struct local *L, const struct warm_pool *w)
{
	size_t want = w->pool->replicas > 0 ? (size_t)w->pool->replicas : 0;

	if (arl_local_pool(w->pool)->isolation == ARL_ISO_BWRAP)
		return w->nboxes + w->preparing < want;
	return w->nready + w->preparing + (arl_local_pool(w->pool)->workspace ? 0 : L->nspare) <
	       want;
}

/* The next pool (round robin from *next) short of warm sandboxes; called with mu held. */
static struct warm_pool *warm_wanted(struct local *L, size_t *next)
{
	for (size_t i = 0; i < L->nwarm; i++) {
		size_t k = (*next + i) % L->nwarm;
		struct warm_pool *w = &L->warm[k];

		if (!w->failed && arl_local_pool_short(L, w)) {
			*next = k + 1;
			return w;
		}
	}
	return NULL;
}

/*
 * A warm sandbox for @w: a directory as acquire() would make it and, for bwrap pools, its
 * container spawned (not waited for: acquire() reads its HELLO). 0, or -1.
 */
static int prepare_one(struct local *L, struct warm_pool *w, struct sbdir *d,
                       struct arl_sandbox **box)
{
	const struct arl_local_pool *lp = arl_local_pool(w->pool);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_sandbox *sb;

	*box = NULL;
	/* No prepareTimeout here (no attempt waits), but a cancelled run stops copying. */
	if (arl_local_make_sandbox(
	        L, w->pool, &(struct copy_bound){.deadline = INT64_MAX, .cancel_fd = L->cancel_fd},
	        d, &err) < 0)
		return -1;
	if (lp->isolation != ARL_ISO_BWRAP)
		return 0;
	if (!(sb = arl_local_sandbox_new(L, w->pool, NULL, d, &err)))
		return -1;
	if (arl_local_container_spawn(L, sb, lp->network, &err) < 0) {
		arl_local_sandbox_end(L, sb);
		return -1;
	}
	*box = sb;
	return 0;
}

/*
 * Released directories first (the reaper's, reaper.h, once their containers ended), then
 * pools short of warm sandboxes. The containers it spawns die with this thread
 * (--die-with-parent), which lives until close() has no more use for them.
 */
void *arl_local_preparer_main(void *arg)
{
	struct local *L = arg;
	size_t next = 0;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&L->mu);
	for (;;) {
		struct arl_sandbox *box = NULL;
		struct warm_pool *w = NULL;
		struct sbdir d = {0};
		int rc;

		while (!L->stopping && !L->ndirty && !(w = warm_wanted(L, &next)))
			pthread_cond_wait(&L->cv, &L->mu);
		if (L->stopping)
			break; /* close() ends or deletes whatever is still queued */
		if (L->ndirty) {
			d = L->dirty[0];
			memmove(L->dirty, L->dirty + 1, --L->ndirty * sizeof(*L->dirty));
			pthread_mutex_unlock(&L->mu);
			settle(L, &d);
			pthread_mutex_lock(&L->mu);
			continue;
		}
		w->preparing++;
		pthread_mutex_unlock(&L->mu);
		rc = prepare_one(L, w, &d, &box);
		pthread_mutex_lock(&L->mu);
		w->preparing--;
		if (rc == 0 && box) {
			/* Even when stopping: close() ends every warm sandbox after the join. */
			ARL_GROW(w->boxes, w->capboxes, w->nboxes + 1);
			w->boxes[w->nboxes++] = box;
		} else if (rc == 0) {
			ARL_GROW(w->ready, w->cap, w->nready + 1);
			w->ready[w->nready++] = d;
		} else {
			/* acquire() prepares synchronously and reports this error itself. */
			w->failed = true;
		}
	}
	pthread_mutex_unlock(&L->mu);
	return NULL;
}
