/*
 * Copying a pool's workspace into a sandbox directory and deleting sandbox directories:
 * both walk with openat() and never follow a symlink. Deletion restores u+rwx on directories
 * a step locked, and moves subtrees deeper than RM_MAX_DEPTH up to the top to keep the fds
 * held bounded.
 */
#include "local/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* The workspace is user input: refuse absurd nesting rather than run out of fds. */
#define COPY_MAX_DEPTH 128
/* Directories held open at once while deleting; deeper subtrees are moved up first. */
#define RM_MAX_DEPTH 32
/* Fresh names tried for a subtree moved up. */
#define MOVE_TRIES 100

static bool is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/* --- deleting ------------------------------------------------------------------------ */

/*
 * Opens directory @name in @parent for deletion, never through a symlink. A step may have
 * left it mode 0 or 0500: we own it, so give ourselves u+rwx back. The chmod goes through an
 * O_PATH fd (via /proc) because fchmodat() would follow a symlink swapped in meanwhile.
 */
int arl_local_open_dir_owned(int parent, const char *name)
{
	struct stat st;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == EACCES) {
		int pfd = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		char proc[64];
		int saved;

		if (pfd < 0)
			return -1;
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
		if (chmod(proc, 0700) == 0)
			fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		saved = errno;
		close(pfd);
		errno = saved;
		if (fd < 0)
			return -1;
	}
	if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700)
		(void)fchmod(fd, (st.st_mode & 07777) | 0700); /* unlinkat() below needs w+x */
	return fd;
}

/* Records the first failure of a deletion and returns 0, "not removed". */
static int rm_fail(struct arl_err *err, int errnum, const char *what, const char *name)
{
	arl_error_errno(err, errnum, "cannot %s '%s'", what, name);
	return 0;
}

/* Moves a directory too deep to descend into @topfd under a fresh name, to finish it there. */
static int rm_move_up(int dfd, const char *name, int topfd, unsigned *seq, struct arl_err *err)
{
	for (int i = 0; i < MOVE_TRIES; i++) {
		char tmp[64];

		snprintf(tmp, sizeof(tmp), ".arl-deep-%u", (*seq)++);
		/* RENAME_NOREPLACE: the workspace may hold an entry of that name already. */
		if (!renameat2(dfd, name, topfd, tmp, RENAME_NOREPLACE))
			return 1;
		if (errno != EEXIST)
			break;
	}
	return rm_fail(err, errno, "move", name);
}

/*
 * Removes entry @de of directory @dfd, @depth levels below the sandbox's own directory
 * @topfd. Returns 1 when it is gone (or moved up to be finished later), 0 when not.
 */
static int rm_entry(int dfd, const struct dirent *de, int topfd, unsigned depth, unsigned *seq,
                    struct arl_err *err)
{
	const char *name = de->d_name;
	bool isdir = de->d_type == DT_DIR;
	struct stat st;
	int sub;

	if (de->d_type == DT_UNKNOWN && !fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		isdir = S_ISDIR(st.st_mode);
	if (!isdir) {
		/* Symlinks land here: the link goes, whatever it points to stays. */
		if (!unlinkat(dfd, name, 0) || errno == ENOENT)
			return 1;
		if (errno != EISDIR) /* EISDIR: replaced by a directory meanwhile */
			return rm_fail(err, errno, "delete", name);
	}
	if (depth + 1 >= RM_MAX_DEPTH)
		return rm_move_up(dfd, name, topfd, seq, err);
	if ((sub = arl_local_open_dir_owned(dfd, name)) < 0) {
		if (errno == ENOENT)
			return 1;
		/* Replaced by a file or a symlink since readdir(): unlink that instead. */
		if ((errno == ENOTDIR || errno == ELOOP) && !unlinkat(dfd, name, 0))
			return 1;
		return rm_fail(err, errno, "open", name);
	}
	arl_local_rm_contents(sub, topfd, depth + 1, seq, err);
	if (!unlinkat(dfd, name, AT_REMOVEDIR) || errno == ENOENT)
		return 1;
	return rm_fail(err, errno, "delete", name);
}

/*
 * Empties directory @fd (consumed); @topfd < 0 means @fd is the top. Passes repeat while
 * they remove something, because deleting while reading may make readdir() skip entries and
 * because subtrees too deep to descend are moved up into the top to be finished there.
 * Returns 0 when the directory ended up empty.
 */
int arl_local_rm_contents(int fd, int topfd, unsigned depth, unsigned *seq, struct arl_err *err)
{
	DIR *d = fdopendir(fd);
	bool any = true, progress = true;

	if (!d) {
		arl_error_errno(err, errno, "cannot read a directory");
		close(fd);
		return -1;
	}
	if (topfd < 0)
		topfd = dirfd(d);
	while (any && progress) {
		struct dirent *de;

		any = progress = false;
		rewinddir(d);
		while ((de = readdir(d))) {
			if (is_dot(de->d_name))
				continue;
			any = true;
			if (rm_entry(dirfd(d), de, topfd, depth, seq, err))
				progress = true;
		}
	}
	closedir(d);
	return any ? -1 : 0;
}

/* Deletes @name in @parent and everything below it, without ever following a symlink. */
int arl_local_rm_tree(int parent, const char *name, struct arl_err *err)
{
	unsigned seq = 0;
	int fd = arl_local_open_dir_owned(parent, name);

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if ((errno == ENOTDIR || errno == ELOOP) && !unlinkat(parent, name, 0))
			return 0;
		return arl_error_errno(err, errno, "cannot open '%s'", name);
	}
	arl_local_rm_contents(fd, -1, 0, &seq, err);
	/* The verdict: is it gone? Errors met on the way were recorded in @err. */
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return arl_error_errno(err, errno, "cannot delete '%s'", name);
	return 0;
}

/* --- copying the pool's workspace ------------------------------------------------------ */

/* -1 with ARL_E_TIMEOUT or ARL_E_CANCELLED once the copy must stop; @b NULL: never. */
static int copy_check(const struct copy_bound *b, struct arl_err *err)
{
	if (!b)
		return 0;
	if (b->cancel_fd >= 0 && arl_fd_readable(b->cancel_fd))
		return arl_error(err, ARL_E_CANCELLED, "cancelled while copying the workspace");
	if (arl_now_ms() >= b->deadline)
		return arl_error(err, ARL_E_TIMEOUT, "still copying the workspace");
	return 0;
}

/* Chunks of a file between two copy_check()s: a large file does not outlast the bound. */
#define COPY_CHUNK ((size_t)64 << 20)

static int copy_data(int in, int out, const struct copy_bound *b, struct arl_err *err)
{
	char buf[65536];
	bool fallback = false;
	size_t since = 0;

	for (;;) {
		ssize_t n;

		if (since >= COPY_CHUNK) {
			if (copy_check(b, err) < 0)
				return -2;
			since = 0;
		}
		if (!fallback) {
			n = copy_file_range(in, NULL, out, NULL, COPY_CHUNK, 0);
			if (n < 0 && errno == EINTR)
				continue;
			/* Across filesystems or on old kernels: the offsets are intact, so read on. */
			if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			              errno == EOPNOTSUPP || errno == EPERM)) {
				fallback = true;
				continue;
			}
			if (n <= 0)
				return (int)n;
			since += (size_t)n;
			continue;
		}
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
			off += w;
		}
		since += (size_t)n;
	}
}

/* Permission bits as copied: setuid and setgid are dropped, the sticky bit kept. */
#define COPY_MODE(st) ((st)->st_mode & 01777)

static int copy_file(int sfd, int dfd, const char *name, const struct stat *st, const char *rel,
                     const struct copy_bound *b, struct arl_err *err)
{
	struct timespec times[2] = {st->st_atim, st->st_mtim};
	int in, out = -1, rc = -1, data = -1;

	in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (in >= 0)
		out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out >= 0 && (data = copy_data(in, out, b, err)) == 0 &&
	    fchmod(out, COPY_MODE(st)) == 0 && futimens(out, times) == 0)
		rc = 0;
	if (rc < 0 && data != -2) /* -2: copy_check() said why */
		arl_error_errno(err, errno, "cannot copy '%s'", rel);
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && rc == 0)
		rc = arl_error_errno(err, errno, "cannot copy '%s'", rel);
	return rc;
}

static int copy_link(int sfd, int dfd, const char *name, const struct stat *st, const char *rel,
                     struct arl_err *err)
{
	struct timespec times[2] = {st->st_atim, st->st_mtim};
	char target[PATH_MAX];
	ssize_t n = readlinkat(sfd, name, target, sizeof(target));

	if (n < 0 || (size_t)n >= sizeof(target))
		return arl_error_errno(err, n < 0 ? errno : ENAMETOOLONG, "cannot read link '%s'",
		                       rel);
	target[n] = '\0';
	if (symlinkat(target, dfd, name) < 0)
		return arl_error_errno(err, errno, "cannot copy link '%s'", rel);
	(void)utimensat(dfd, name, times, AT_SYMLINK_NOFOLLOW);
	return 0;
}

static int copy_dir(int sfd, int dfd, const char *name, const struct stat *st, struct arl_buf *rel,
                    unsigned depth, const struct copy_bound *b, struct arl_err *err)
{
	struct timespec times[2] = {st->st_atim, st->st_mtim};
	int in = -1, out = -1, rc = -1;

	if (depth + 1 > COPY_MAX_DEPTH)
		return arl_error(err, ARL_E_LIMIT, "'%s' is nested more than %d directories deep",
		                 rel->p, COPY_MAX_DEPTH);
	if (mkdirat(dfd, name, 0700) < 0 ||
	    (in = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (out = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot copy directory '%s'", rel->p);
		goto out;
	}
	if (arl_local_copy_tree(in, out, rel, depth + 1, b, err) < 0)
		goto out;
	/* Only now: adding entries changes the mtime, and a mode like 0555 would refuse them. */
	if (fchmod(out, COPY_MODE(st)) < 0 || futimens(out, times) < 0) {
		arl_error_errno(err, errno, "cannot copy directory '%s'", rel->p);
		goto out;
	}
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/*
 * Copies the entries of directory @sfd into @dfd: directories, regular files and symlinks
 * (as symlinks), with permission bits and times. Sockets, FIFOs and devices are skipped:
 * they are not workspace content. @rel is the path so far, for messages.
 */
int arl_local_copy_tree(int sfd, int dfd, struct arl_buf *rel, unsigned depth,
                        const struct copy_bound *b, struct arl_err *err)
{
	int dup_fd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	int ret = -1;

	if (!d) {
		arl_error_errno(err, errno, "cannot read '%s'", rel->len ? rel->p : ".");
		if (dup_fd >= 0)
			close(dup_fd);
		return -1;
	}
	for (;;) {
		size_t mark = rel->len;
		struct dirent *de;
		struct stat st;
		int rc = 0;

		errno = 0;
		if (!(de = readdir(d))) {
			if (errno) {
				arl_error_errno(err, errno, "cannot read '%s'",
				                rel->len ? rel->p : ".");
				goto out;
			}
			break;
		}
		if (is_dot(de->d_name))
			continue;
		if (copy_check(b, err) < 0)
			goto out;
		arl_buf_addf(rel, "%s%s", mark ? "/" : "", de->d_name);
		if (fstatat(sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = arl_error_errno(err, errno, "cannot stat '%s'", rel->p);
		else if (S_ISDIR(st.st_mode))
			rc = copy_dir(sfd, dfd, de->d_name, &st, rel, depth, b, err);
		else if (S_ISREG(st.st_mode))
			rc = copy_file(sfd, dfd, de->d_name, &st, rel->p, b, err);
		else if (S_ISLNK(st.st_mode))
			rc = copy_link(sfd, dfd, de->d_name, &st, rel->p, err);
		/* As root, the step's uid must be able to change what it was given. */
		if (rc == 0 && b->chown &&
		    (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) &&
		    fchownat(dfd, de->d_name, b->uid, b->gid, AT_SYMLINK_NOFOLLOW) < 0)
			rc = arl_error_errno(err, errno, "cannot hand '%s' to the sandbox uid",
			                     rel->p);
		if (rc < 0)
			goto out;
		rel->len = mark;
		rel->p[mark] = '\0';
	}
	ret = 0;
out:
	closedir(d);
	return ret;
}

/*
 * True when directory @fd holds nothing but "." and "..". Most released workspaces are
 * empty: this is two getdents64() where a DIR stream would cost five more system calls.
 */
bool arl_local_dir_empty(int fd)
{
	union {
		struct dirent64 de;
		char buf[2048];
	} u;

	for (;;) {
		ssize_t n = getdents64(fd, u.buf, sizeof(u.buf));

		if (n <= 0)
			return n == 0;
		for (ssize_t off = 0; off < n;) {
			const struct dirent64 *de =
			    (const struct dirent64 *)(const void *)(u.buf + off);

			if (!is_dot(de->d_name))
				return false;
			off += de->d_reclen;
		}
	}
}
