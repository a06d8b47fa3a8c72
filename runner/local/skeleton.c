/*
 * The skeleton layer (skeleton.h).
 *
 * DESIGN
 * - In the sandbox's user namespace only the uid bwrap runs as is mapped (to 0). A host
 *   tree's directories, owned by host root, show as nobody there, so nothing could be
 *   created in them even through an overlay. The skeleton, the top lower layer, gives every
 *   directory the mapped owner (overlayfs takes a merged directory's attributes from its
 *   topmost layer), so uid 0 inside may create, delete and rename anywhere; files still come
 *   from the host tree with their host owners: a root-owned 0600 file stays unreadable and
 *   cannot be changed in place (copy-up is refused), only replaced by a rename. Host root is
 *   never idmapped to the sandbox, which would hand it every root-owned secret.
 * - Nothing but directories: no file's data or secret is ever copied, and the layer is
 *   small (/usr and /etc here: a few thousand directories), built once per run.
 * - As root, the skeleton shows no more than its owner could list on the host: a directory
 *   closed to it (/etc/ssl/private, 0700 root) is made empty, never its children's names.
 * - A directory is made 0700 first and given its mode after its children, so a 0555 one
 *   can be filled. Every step goes through a directory fd with O_NOFOLLOW: a tree changing
 *   underneath (an entry removed, a directory swapped for a symlink) is skipped, never
 *   followed.
 */
#include "local/skeleton.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

#define SKELETON_DEPTH_MAX 256

struct skel {
	uid_t uid;
	gid_t gid;
	bool chown;
	struct arl_buf rel; /* the path below src, for messages */
	struct arl_err *err;
	const char *src;
	struct arl_skel_manifest *m; /* NULL: not recorded */
};

/* A manifest's record of one directory, after its path and NUL (unaligned: memcpy'd). */
struct skel_rec {
	uint64_t dev, ino, mode, uid, gid;
	int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
};

static void rec_of(struct skel_rec *r, const struct stat *st)
{
	*r = (struct skel_rec){(uint64_t)st->st_dev,         (uint64_t)st->st_ino,
	                       (uint64_t)st->st_mode,        (uint64_t)st->st_uid,
	                       (uint64_t)st->st_gid,         (int64_t)st->st_mtim.tv_sec,
	                       (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec,
	                       (int64_t)st->st_ctim.tv_nsec};
}

/* Records directory src + s->rel as @st shows it (read before its entries). */
static void record(struct skel *s, const struct stat *st)
{
	struct skel_rec r;

	if (!s->m)
		return;
	rec_of(&r, st);
	arl_buf_addstr(&s->m->buf, s->src);
	arl_buf_add(&s->m->buf, s->rel.len ? s->rel.p : "", s->rel.len + 1);
	arl_buf_add(&s->m->buf, &r, sizeof(r));
	if (st->st_ctim.tv_sec > s->m->newest.tv_sec ||
	    (st->st_ctim.tv_sec == s->m->newest.tv_sec &&
	     st->st_ctim.tv_nsec > s->m->newest.tv_nsec))
		s->m->newest = st->st_ctim;
}

/* Records the skeleton's own directory @dfd, finished (after its children and chown). */
static int record_own(struct skel *s, int dfd)
{
	struct skel_rec r;
	struct stat st;

	if (!s->m || !s->m->own)
		return 0;
	if (fstat(dfd, &st) < 0)
		return arl_error_errno(s->err, errno, "cannot stat skeleton directory '%s'",
		                       s->rel.len ? s->rel.p : "/");
	rec_of(&r, &st);
	arl_buf_addstr(&s->m->buf, s->m->own);
	arl_buf_add(&s->m->buf, s->rel.len ? s->rel.p : "", s->rel.len + 1);
	arl_buf_add(&s->m->buf, &r, sizeof(r));
	return 0;
}

bool arl_local_skeleton_current(const char *m, size_t len)
{
	return arl_local_skeleton_current_at(AT_FDCWD, m, len);
}

bool arl_local_skeleton_current_at(int dirfd, const char *m, size_t len)
{
	size_t off = 0;

	while (off < len) {
		const char *path = m + off, *nul = memchr(path, '\0', len - off);
		struct skel_rec want, now;
		struct stat st;

		if (!nul || (size_t)(nul + 1 - m) + sizeof(want) > len)
			return false;
		memcpy(&want, nul + 1, sizeof(want));
		off = (size_t)(nul + 1 - m) + sizeof(want);
		if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return false;
		rec_of(&now, &st);
		if (memcmp(&want, &now, sizeof(want)))
			return false;
	}
	return len > 0;
}

void arl_skel_manifest_release(struct arl_skel_manifest *m)
{
	arl_buf_release(&m->buf);
	m->newest = (struct timespec){0};
}

/* Gives @dfd (made by us) its owner and @mode, after its children. */
static int finish_dir(struct skel *s, int dfd, mode_t mode)
{
	if (s->chown && fchown(dfd, s->uid, s->gid) < 0)
		return arl_error_errno(s->err, errno, "cannot chown skeleton directory '%s'",
		                       s->rel.len ? s->rel.p : "/");
	if (fchmod(dfd, mode & 07777) < 0)
		return arl_error_errno(s->err, errno, "cannot chmod skeleton directory '%s'",
		                       s->rel.len ? s->rel.p : "/");
	return 0;
}

static int copy_dirs(struct skel *s, int sfd, int dfd, unsigned depth);

/*
 * Whether the skeleton's owner could list directory @st itself: building for another uid
 * (as root), a directory it may not read is made empty, so the skeleton never shows the
 * sandbox a name root alone can see. Building for ourselves the kernel judges (EACCES).
 */
static bool owner_may_list(const struct skel *s, const struct stat *st)
{
	mode_t need = st->st_uid == s->uid ? 0500 : st->st_gid == s->gid ? 0050 : 0005;

	return !s->chown || (st->st_mode & need) == need;
}

/* Copies the directory entry @name of @sfd (already known to be one) into @dfd. */
static int copy_one(struct skel *s, int sfd, int dfd, const char *name, unsigned depth)
{
	size_t mark = s->rel.len;
	struct stat st;
	int csfd, cdfd, ret = 0;

	csfd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (csfd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
		return 0; /* gone, or no longer a directory */
	if (csfd < 0 && errno == EACCES)
		csfd = openat(sfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (csfd < 0 || fstat(csfd, &st) < 0) {
		int e = errno;

		if (csfd >= 0)
			close(csfd);
		if (e == ENOENT || e == ENOTDIR || e == ELOOP)
			return 0;
		return arl_error_errno(s->err, e, "cannot open '%s/%s'", s->rel.len ? s->rel.p : "",
		                       name);
	}
	arl_buf_addf(&s->rel, "/%s", name);
	record(s, &st);
	if (mkdirat(dfd, name, 0700) < 0 ||
	    (cdfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		ret =
		    arl_error_errno(s->err, errno, "cannot make skeleton directory '%s'", s->rel.p);
	} else {
		ret = owner_may_list(s, &st) ? copy_dirs(s, csfd, cdfd, depth + 1) : 0;
		if (ret == 0)
			ret = finish_dir(s, cdfd, st.st_mode);
		if (ret == 0)
			ret = record_own(s, cdfd);
		close(cdfd);
	}
	close(csfd);
	s->rel.len = mark;
	s->rel.p[mark] = '\0';
	return ret;
}

/* Copies the directories in @sfd into @dfd; @sfd may be an O_PATH fd (unreadable: none). */
static int copy_dirs(struct skel *s, int sfd, int dfd, unsigned depth)
{
	struct dirent *de;
	DIR *dir;
	int rfd, ret = 0;

	if (depth >= SKELETON_DEPTH_MAX)
		return 0; /* deeper directories stay the host's own (nobody inside) */
	rfd = openat(sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0 && (errno == EACCES || errno == EBADF))
		return 0; /* not ours to read: made empty */
	if (rfd < 0)
		return arl_error_errno(s->err, errno, "cannot read '%s'",
		                       s->rel.len ? s->rel.p : "/");
	if (!(dir = fdopendir(rfd))) {
		close(rfd);
		return arl_error_errno(s->err, errno, "cannot read '%s'",
		                       s->rel.len ? s->rel.p : "/");
	}
	while (ret == 0 && (errno = 0, de = readdir(dir))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
		} else if (de->d_type != DT_DIR) {
			continue;
		}
		ret = copy_one(s, sfd, dfd, de->d_name, depth);
	}
	if (ret == 0 && errno)
		ret =
		    arl_error_errno(s->err, errno, "cannot read '%s'", s->rel.len ? s->rel.p : "/");
	closedir(dir);
	return ret;
}

int arl_local_skeleton_build(const char *src, const char *dst, uid_t uid, gid_t gid,
                             struct arl_skel_manifest *manifest, struct arl_err *err)
{
	struct skel s = {uid, gid,     uid != geteuid() || gid != getegid(), ARL_BUF_INIT, err,
	                 src, manifest};
	struct stat st;
	int sfd, dfd = -1, ret = -1;

	sfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) < 0) {
		arl_error_errno(err, errno, "cannot open '%s' for its skeleton", src);
		goto out;
	}
	record(&s, &st);
	if (mkdir(dst, 0700) < 0 ||
	    (dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot make skeleton directory '%s'", dst);
		goto out;
	}
	if ((!owner_may_list(&s, &st) || copy_dirs(&s, sfd, dfd, 0) == 0) &&
	    finish_dir(&s, dfd, st.st_mode) == 0 && record_own(&s, dfd) == 0)
		ret = 0;
	if (ret < 0)
		arl_err_prefix(err, "skeleton of '%s'", src);
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	arl_buf_release(&s.rel);
	return ret;
}
