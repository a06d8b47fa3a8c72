/*
 * DESIGN
 *
 * A local sandbox is a directory `sb-<run>-<owner>-<n>` under the state directory, <owner>
 * being the runner's pid, its start time, boot id and PID namespace (see owner_gone()). With
 * `isolation: bwrap` (the default) every Command step is its own bubblewrap invocation with
 * that directory bound read-write at /workspace; the rest of the root is built from scratch:
 *
 *   bwrap [--unshare-user --uid 0 --gid 0 --disable-userns]      (as root, see below)
 *         --die-with-parent --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try
 *         [--unshare-net] --new-session --cap-drop ALL
 *         --ro-bind /usr /usr --ro-bind /etc /etc
 *         [--symlink usr/bin /bin ... | --ro-bind /lib /lib ...]   (as the host has them)
 *         [--ro-bind-try DIR DIR]        (network pools: where /etc/resolv.conf points)
 *         --proc /proc --ro-bind-try /proc/sys /proc/sys (sysrq-trigger, irq, bus alike)
 *         --dev /dev --tmpfs /tmp --bind SANDBOX_DIR /workspace --chdir WORKDIR
 *         --hostname sandbox --args 3 -- ARGV...
 *
 * The environment reaches only the program: bwrap itself starts with an empty one (a step's
 * LD_PRELOAD or LD_DEBUG_OUTPUT would otherwise act in bwrap, on the host side) and reads
 * "--clearenv --setenv K V ..." from fd 3, a sealed memfd (argv is world-readable in /proc).
 * It is PATH=/usr/local/bin:/usr/bin:/bin, HOME=/workspace, LANG=C.UTF-8, then the step's
 * env, then ARL_WORKSPACE (always /workspace here).
 *
 * Identity: whoever starts us, a step is never the host's root. Started as root, bwrap run as
 * root would create no user namespace, and uid 0 without capabilities still writes host
 * sysctls (the kernel checks only the uid) and owns root's keyrings. So the child that execs
 * bwrap (spawn's arl_spawn_ident) drops to the sandbox uid and gid (SANDBOX_ID_DEFAULT, or
 * ARL_SANDBOX_UID/GID; never 0) and bwrap maps that uid to 0 inside. The state directory's
 * parents may be closed to that uid, and bwrap 0.8 resolves bind sources by path (its
 * --bind-fd too), so the child first enters a mount namespace of its own and binds the
 * sandbox directory, from an O_PATH fd, on ROOT_MNT, which bwrap binds from. Directories, workspace copies and
 * FilePatch files are chowned to that uid, the directory 0700: the step can change them and
 * no one else can. Every step, root or not, joins a fresh session keyring. Started as an
 * ordinary user, bwrap makes its own user namespace for that user, as it always did.
 * --new-session puts the sandbox outside spawn's process group, which is fine: spawn kills
 * the outer bwrap, --die-with-parent SIGKILLs the sandbox's pid 1, and the kernel takes the
 * whole pid namespace with it. PR_SET_PDEATHSIG follows the spawning thread, and the
 * scheduler's workers live for the whole run.
 *
 * Each step gets a fresh /tmp, so state carries over between steps only in /workspace; that
 * is why FilePatch accepts only paths inside /workspace. FilePatch writes from the runner
 * into the sandbox directory: the path is split into components ('..' refused) and opened
 * one component at a time from the directory's fd with O_NOFOLLOW, creating parents, so a
 * symlink planted by an earlier step can never redirect the write outside (Linux's openat2
 * RESOLVE_IN_ROOT would instead follow such a link to a different file than the sandbox
 * sees, and parents must be created one by one anyway). The file itself is opened
 * O_NONBLOCK and must be regular, so a planted FIFO cannot hang the worker.
 *
 * `isolation: none` runs the program directly with the sandbox directory as /workspace:
 * workDir /workspace/x becomes DIR/x, HOME and ARL_WORKSPACE are DIR, argv is not rewritten.
 * As root DIR is ROOT_MNT, bound as for bwrap, and the step is a uid of its own (none_uid),
 * never bwrap's: what it leaves behind (setsid) would otherwise own every later bwrap step's
 * user namespace (/proc/PID/root, environ, signals). Its directories are that uid's (a spare
 * changes hands when the other kind of pool takes it). The child enters workDir by path after
 * the ids change, so a symlink the step planted leads only where that uid may go. We do not
 * kill none_uid's processes at release: every none step of every root runner shares it.
 *
 * Warm pool: one preparer thread keeps up to `replicas` ready directories per pool (made or
 * recycled, workspace copied in; without a workspace a spare counts as ready). acquire()
 * pops one or, when none is ready, prepares its own from a spare or a new directory, and
 * wakes the preparer only when there is work for it. Copying and deleting walk directories
 * with openat() and never follow symlinks; deletion restores u+rwx on directories a step
 * locked, and moves subtrees deeper than RM_MAX_DEPTH up to the top to keep the fds held
 * bounded.
 *
 * Recycling: making and removing a directory per attempt is most of what a run of short jobs
 * costs the kernel (on ext4 without a journal, every mkdir walks past each inode freed in the
 * last minute). So release() renames the directory to the next fresh name (its old name is
 * gone when release() returns, and every attempt records a name of its own) and keeps it as
 * a spare for the next sandbox of any pool if it is exactly as made: empty, same inode, owner
 * and group, mode 0700, no extended attribute (ACLs are ones), inode flags and project
 * unchanged, not grown (ext4 directories never shrink). The worker checks the usual case, a
 * step that left nothing behind, in seven system calls; anything else is queued for the
 * preparer, which empties it off the worker's path (restoring the mode) and checks again.
 * What fails the checks is deleted as before, and so is the directory of an attempt that may
 * have left a process behind: a step killed on timeout or cancel (a dying sandbox can still
 * write for a moment), or one whose output was still held by a process outside its group.
 * With bwrap nothing of a step outlives it otherwise: pid 1 of the sandbox takes every
 * process of its namespace with it. With isolation: none, a process a step detached
 * completely (setsid, its output redirected) is out of our sight, as it always was; it keeps
 * the directory as its working directory and could write into whichever attempt gets it
 * next, as it could write anywhere else the user can. Spares and queued directories keep the
 * "sb-RUN-OWNER-N" names, so gc finds them when their runner dies; close() deletes them.
 */
#include "backend/backend.h"
#include "local/backend_local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/fs.h>

#include "buf.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define WS_INSIDE "/workspace"
/* As root, where a step's child binds its sandbox, in a mount namespace of its own. */
#define ROOT_MNT_DIR "/run/arl-batch"
#define ROOT_MNT     ROOT_MNT_DIR "/workspace"
/* The sandbox uid and gid as root, unless ARL_SANDBOX_UID/ARL_SANDBOX_GID say otherwise. */
#define SANDBOX_ID_DEFAULT 65530
#define SANDBOX_PATH       "/usr/local/bin:/usr/bin:/bin"
#define SANDBOX_LANG       "C.UTF-8"
/* The workspace is user input: refuse absurd nesting rather than run out of fds. */
#define COPY_MAX_DEPTH 128
/* Directories held open at once while deleting; deeper subtrees are moved up first. */
#define RM_MAX_DEPTH     32
#define PROBE_TIMEOUT_MS 15000
#define MKDIR_TRIES      100
/* Released directories queued for the preparer, and spares kept, at the least. */
#define BACKLOG_MIN 4

/* A NULL-terminated vector of owned strings (argv, envp). */
struct strvec {
	char **v;
	size_t n, cap;
};

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
};

struct warm_pool {
	const struct arl_pool *pool; /* borrowed: the job file outlives the backend */
	struct sbdir *ready;         /* prepared, unused sandbox directories */
	size_t nready, cap;
	size_t preparing; /* being prepared by the preparer right now */
	bool failed;      /* the last preparation failed: retry only after the next acquire */
};

struct local {
	char *state_dir; /* canonical, absolute */
	int state_fd;    /* every sandbox is created and deleted relative to this fd */
	int64_t run_id;
	char *owner;    /* "PID-START-BOOT-PIDNS" in sandbox names, for gc (owner_gone) */
	bool etc_ssh;   /* the host has /etc/ssh: bwrap hides it under a tmpfs */
	size_t backlog; /* most directories queued for the preparer, and most spare ones */
	size_t capture_max;
	int cancel_fd;
	char *bwrap;             /* absolute path; NULL when no pool uses bwrap */
	struct strvec root_args; /* how /bin, /lib... look on the host */
	struct strvec net_args;  /* extra read-only binds for network pools */
	bool drop;               /* we are root: steps run as sb_uid/sb_gid (see DESIGN) */
	uid_t sb_uid;            /* bwrap steps (and the probe) */
	gid_t sb_gid;
	uid_t none_uid; /* isolation none steps: never sb_uid */
	gid_t none_gid;

	pthread_mutex_t mu; /* lock order: mu only, never nested; guards everything below */
	pthread_cond_t cv;  /* the preparer waits here for work or stopping */
	struct warm_pool *warm;
	size_t nwarm;
	struct sbdir *dirty; /* released, renamed, to be emptied (oldest first) or deleted */
	size_t ndirty, capdirty;
	struct sbdir *spare; /* emptied and checked: the next sandboxes of any pool */
	size_t nspare, capspare;
	unsigned long counter;
	bool stopping;
	bool preparer_running;
	pthread_t preparer;
};

struct arl_sandbox {
	const struct arl_pool *pool;
	struct sbdir dir; /* dir.name is the sandbox's name */
	char *path;       /* absolute */
	char *job;        /* for messages; may be NULL */
	bool tainted;     /* a step may have left a process behind: delete, never recycle */
};

/* Appends @s, taking ownership of it. */
static void sv_take(struct strvec *sv, char *s)
{
	ARL_GROW(sv->v, sv->cap, sv->n + 2);
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

static void sv_push(struct strvec *sv, const char *s)
{
	sv_take(sv, arl_xstrdup(s));
}

static void sv_release(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

/* One write() per line, so lines from several workers never interleave. */
static void log_line(const char *fmt, ...) ARL_PRINTF(1, 2);
static void log_line(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

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
static int open_dir_owned(int parent, const char *name)
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

static int rm_contents(int fd, int topfd, unsigned depth, unsigned *seq, struct arl_err *err);

/* Moves a directory too deep to descend into @topfd under a fresh name, to finish it there. */
static int rm_move_up(int dfd, const char *name, int topfd, unsigned *seq, struct arl_err *err)
{
	for (int i = 0; i < MKDIR_TRIES; i++) {
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
	if ((sub = open_dir_owned(dfd, name)) < 0) {
		if (errno == ENOENT)
			return 1;
		/* Replaced by a file or a symlink since readdir(): unlink that instead. */
		if ((errno == ENOTDIR || errno == ELOOP) && !unlinkat(dfd, name, 0))
			return 1;
		return rm_fail(err, errno, "open", name);
	}
	rm_contents(sub, topfd, depth + 1, seq, err);
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
static int rm_contents(int fd, int topfd, unsigned depth, unsigned *seq, struct arl_err *err)
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
static int rm_tree(int parent, const char *name, struct arl_err *err)
{
	unsigned seq = 0;
	int fd = open_dir_owned(parent, name);

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if ((errno == ENOTDIR || errno == ELOOP) && !unlinkat(parent, name, 0))
			return 0;
		return arl_error_errno(err, errno, "cannot open '%s'", name);
	}
	rm_contents(fd, -1, 0, &seq, err);
	/* The verdict: is it gone? Errors met on the way were recorded in @err. */
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return arl_error_errno(err, errno, "cannot delete '%s'", name);
	return 0;
}

/* --- copying the pool's workspace ------------------------------------------------------ */

/* What bounds a copy for an attempt: the job's prepareTimeout and the run's cancel. */
struct copy_bound {
	int64_t deadline; /* arl_now_ms clock */
	int cancel_fd;    /* -1: none */
	uid_t uid;        /* as root: who gets the copy (make_sandbox() sets them) */
	gid_t gid;
};

/* As root, the host uid (and gid) @pool's steps run as, which owns its directories. */
static uid_t pool_uid(const struct local *L, const struct arl_pool *pool)
{
	return pool->isolation == ARL_ISO_NONE ? L->none_uid : L->sb_uid;
}

static gid_t pool_gid(const struct local *L, const struct arl_pool *pool)
{
	return pool->isolation == ARL_ISO_NONE ? L->none_gid : L->sb_gid;
}

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

static int copy_tree(const struct local *L, int sfd, int dfd, struct arl_buf *rel, unsigned depth,
                     const struct copy_bound *b, struct arl_err *err);

static int copy_dir(const struct local *L, int sfd, int dfd, const char *name,
                    const struct stat *st, struct arl_buf *rel, unsigned depth,
                    const struct copy_bound *b, struct arl_err *err)
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
	if (copy_tree(L, in, out, rel, depth + 1, b, err) < 0)
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
static int copy_tree(const struct local *L, int sfd, int dfd, struct arl_buf *rel, unsigned depth,
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
			rc = copy_dir(L, sfd, dfd, de->d_name, &st, rel, depth, b, err);
		else if (S_ISREG(st.st_mode))
			rc = copy_file(sfd, dfd, de->d_name, &st, rel->p, b, err);
		else if (S_ISLNK(st.st_mode))
			rc = copy_link(sfd, dfd, de->d_name, &st, rel->p, err);
		/* The step's uid must be able to change what it was given (see DESIGN). */
		if (rc == 0 && L->drop &&
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

/* --- sandboxes ----------------------------------------------------------------------- */

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
 * digits, the PID namespace's inode; 0 for what cannot be read. See owner_gone().
 */
static char *owner_tag(void)
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
static void drop_dir(struct local *L, struct sbdir *d)
{
	struct arl_err ignored = ARL_ERR_INIT;

	if (!d->name)
		return;
	rm_tree(L->state_fd, d->name, &ignored);
	free(d->name);
	d->name = NULL;
}

/*
 * Makes a new, empty sandbox directory, mode 0700 whatever the umask, owned by @uid and @gid
 * as root, and notes what it is like for recycling. Returns an fd of it (the caller closes
 * it), or -1.
 */
static int create_dir(struct local *L, uid_t uid, gid_t gid, struct sbdir *d, struct arl_err *err)
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
		rm_tree(L->state_fd, name, &ignored);
		free(name);
		return -1;
	}
	/* Extended attributes it was born with (inherited ACLs, labels) could not be compared. */
	d->recyclable = dirattr_read(dfd, &d->made) == 0 && d->made.xattrs <= 0;
	d->name = name;
	return dfd;
}

/*
 * A sandbox directory for @pool: a spare one or a new one, with the pool's workspace in it.
 * @b bounds the copy (NULL: unbounded).
 */
static int make_sandbox(struct local *L, const struct arl_pool *pool, const struct copy_bound *b,
                        struct sbdir *out, struct arl_err *err)
{
	struct arl_buf rel = ARL_BUF_INIT;
	struct sbdir d = {0};
	struct copy_bound cb = b ? *b : (struct copy_bound){INT64_MAX, -1, 0, 0};
	int sfd = -1, dfd = -1, ret = -1;

	cb.uid = pool_uid(L, pool);
	cb.gid = pool_gid(L, pool);
	pthread_mutex_lock(&L->mu);
	if (L->nspare)
		d = L->spare[--L->nspare];
	pthread_mutex_unlock(&L->mu);
	if (!d.name) {
		if ((dfd = create_dir(L, cb.uid, cb.gid, &d, err)) < 0)
			return -1;
	} else if (pool->workspace || (L->drop && (d.made.uid != cb.uid || d.made.gid != cb.gid))) {
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
	if (pool->workspace) {
		arl_buf_add(&rel, "", 0);
		if ((sfd = open(pool->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			arl_error_errno(err, errno, "cannot open workspace '%s'", pool->workspace);
			goto out;
		}
		if (copy_tree(L, sfd, dfd, &rel, 0, &cb, err) < 0) {
			enum arl_errc code = err->code;

			if (code == ARL_E_TIMEOUT || code == ARL_E_CANCELLED) {
				arl_err_clear(err);
				arl_error(err, code, "%s while copying workspace '%s'",
				          code == ARL_E_TIMEOUT ? "the job's prepareTimeout passed"
				                                : "cancelled",
				          pool->workspace);
			} else {
				arl_err_prefix(err, "cannot copy workspace '%s'", pool->workspace);
			}
			goto out;
		}
	}
	*out = d;
	d.name = NULL;
	ret = 0;
out:
	drop_dir(L, &d);
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	arl_buf_release(&rel);
	return ret;
}

/* Deletes @d's directory and frees its name; never fails the run, only says so. */
static void discard(struct local *L, struct sbdir *d)
{
	struct arl_err err = ARL_ERR_INIT;

	if (rm_tree(L->state_fd, d->name, &err) < 0)
		log_line("arl-batch: cannot delete sandbox '%s/%s': %s", L->state_dir, d->name,
		         err.msg);
	free(d->name);
	d->name = NULL;
}

/*
 * True when directory @fd holds nothing but "." and "..". Most released workspaces are
 * empty: this is two getdents64() where a DIR stream would cost five more system calls.
 */
static bool dir_empty(int fd)
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

/*
 * Empties released directory @d for another sandbox. 0 when it ended up empty and as it was
 * made (see DESIGN), mode 0700 again; -1 when it must be deleted instead.
 */
static int recycle(struct local *L, const struct sbdir *d)
{
	struct arl_err ignored = ARL_ERR_INIT;
	struct dirattr now;
	unsigned seq = 0;
	int fd, sub, ret = -1;

	if (!d->recyclable || (fd = open_dir_owned(L->state_fd, d->name)) < 0)
		return -1;
	/* rm_contents() consumes its fd (and rewinds it); ours stays for the checks after it. */
	if ((dir_empty(fd) || ((sub = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0 &&
	                       rm_contents(sub, -1, 0, &seq, &ignored) == 0)) &&
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
		discard(L, d);
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
	ok = dir_empty(fd) && dirattr_read(fd, &now) == 0 && dirattr_unchanged(&now, &d->made) &&
	     (now.mode & 07777) == 0700;
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
		discard(L, d);
}

/*
 * Takes a released sandbox's directory out of sight at once: renamed to the next fresh name
 * (so its own name is gone when release() returns). Left empty and unaltered, it is a spare
 * right away; otherwise it is queued for the preparer to empty or delete off the worker's
 * path, or done here when there is no preparer or the queue is full.
 */
static void retire(struct local *L, struct arl_sandbox *sb)
{
	struct sbdir d = sb->dir;
	bool renamed = false, queued = false;

	sb->dir.name = NULL;
	if (sb->tainted)
		d.recyclable = false;
	for (int i = 0; i < MKDIR_TRIES && !renamed; i++) {
		char *name = next_name(L);

		/* NOREPLACE: an earlier process with our pid may have left that name behind. */
		if (renameat2(L->state_fd, d.name, L->state_fd, name, RENAME_NOREPLACE) == 0) {
			free(d.name);
			d.name = name;
			renamed = true;
			continue;
		}
		free(name);
		if (errno != EEXIST)
			break;
	}
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

static struct warm_pool *find_warm(struct local *L, const struct arl_pool *pool)
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
static bool pool_short(const struct local *L, const struct warm_pool *w)
{
	size_t want = w->pool->replicas > 0 ? (size_t)w->pool->replicas : 0;

	return w->nready + w->preparing + (w->pool->workspace ? 0 : L->nspare) < want;
}

/* The next pool (round robin from *next) short of warm sandboxes; called with mu held. */
static struct warm_pool *warm_wanted(struct local *L, size_t *next)
{
	for (size_t i = 0; i < L->nwarm; i++) {
		size_t k = (*next + i) % L->nwarm;
		struct warm_pool *w = &L->warm[k];

		if (!w->failed && pool_short(L, w)) {
			*next = k + 1;
			return w;
		}
	}
	return NULL;
}

/* Released directories first (they become the spares), then pools short of ready ones. */
static void *preparer_main(void *arg)
{
	struct local *L = arg;
	size_t next = 0;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&L->mu);
	for (;;) {
		struct arl_err err = ARL_ERR_INIT;
		struct warm_pool *w = NULL;
		struct sbdir d = {0};
		int rc;

		while (!L->stopping && !L->ndirty && !(w = warm_wanted(L, &next)))
			pthread_cond_wait(&L->cv, &L->mu);
		if (L->stopping)
			break; /* close() deletes whatever is still queued */
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
		/* No prepareTimeout here (no attempt waits), but a cancelled run stops copying. */
		rc = make_sandbox(L, w->pool, &(struct copy_bound){INT64_MAX, L->cancel_fd, 0, 0},
		                  &d, &err);
		pthread_mutex_lock(&L->mu);
		w->preparing--;
		if (rc == 0) {
			/* Even when stopping: close() deletes every ready sandbox after the join. */
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

/* --- step execution ------------------------------------------------------------------ */

static void set_output(struct arl_output *o, const char *s)
{
	arl_output_release(o);
	o->data = arl_xstrdup(s ? s : "");
	o->len = strlen(o->data);
}

/* A step that failed before (or instead of) running anything: a FAILED step, not infra. */
static void step_fail(struct arl_step_result *res, enum arl_class *cls, int code, const char *msg)
{
	res->state = ARL_STATE_FAILED;
	res->has_exit = true;
	res->exit_code = code;
	set_output(&res->out, "");
	set_output(&res->err, msg);
	*cls = ARL_CLASS_FAILED;
}

/* bwrap's own environment: none (the step's comes through --args, see env_args()). */
static char *const no_env[] = {NULL};

/*
 * Who a step's process is (see DESIGN): never one with our keyrings, and as root the uid of
 * bwrap steps or, @none, of isolation none steps, with the sandbox directory @ws_fd (an O_PATH
 * fd; -1: none) bound on ROOT_MNT where that uid can reach it. @args_fd (or -1) becomes fd 3.
 */
static void step_ident(const struct local *L, bool none, struct arl_spawn_ident *id, int ws_fd,
                       int args_fd)
{
	memset(id, 0, sizeof(*id));
	id->new_keyring = true;
	id->fd3 = args_fd > 2 ? args_fd : 0;
	if (L->drop) {
		id->set_ids = true;
		id->uid = none ? L->none_uid : L->sb_uid;
		id->gid = none ? L->none_gid : L->sb_gid;
		id->bind_fd = ws_fd;
		id->bind_dst = ws_fd > 2 ? ROOT_MNT : NULL;
	}
}

/*
 * An O_PATH fd of sandbox @name for step_ident() (the caller closes it): the child binds that
 * very directory, resolving no path as root.
 */
static int sandbox_fd(const struct local *L, const char *name, struct arl_err *err)
{
	int fd = openat(L->state_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return arl_error_errno(err, errno, "cannot open sandbox '%s/%s'", L->state_dir,
		                       name);
	return fd;
}

/*
 * The bwrap command line up to and including "--". @ws is the host directory bound at
 * /workspace (as root: the mount point the child binds the sandbox on), @workdir the
 * absolute working directory inside. The environment comes through fd 3 (env_args()).
 */
static void bwrap_argv(const struct local *L, struct strvec *v, const char *ws, const char *workdir,
                       bool network)
{
	static const char *const head[] = {"--die-with-parent", "--unshare-pid", "--unshare-ipc",
	                                   "--unshare-uts", "--unshare-cgroup-try"};
	static const char *const masked[] = {"/etc/shadow", "/etc/gshadow", "/etc/shadow-",
	                                     "/etc/gshadow-", "/etc/security/opasswd"};
	static const char *const proc_ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
	                                      "/proc/bus"};

	sv_push(v, L->bwrap);
	/*
	 * As root, bwrap runs as the sandbox uid (see DESIGN) and maps it to 0 inside, as steps
	 * had it; nested user namespaces are refused, like a plain user's would be.
	 */
	if (L->drop) {
		static const char *const user[] = {"--unshare-user", "--uid", "0",
		                                   "--gid",          "0",     "--disable-userns"};

		for (size_t i = 0; i < sizeof(user) / sizeof(user[0]); i++)
			sv_push(v, user[i]);
	}
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		sv_push(v, head[i]);
	if (!network)
		sv_push(v, "--unshare-net");
	sv_push(v, "--new-session");
	sv_push(v, "--cap-drop");
	sv_push(v, "ALL");
	sv_push(v, "--ro-bind");
	sv_push(v, "/usr");
	sv_push(v, "/usr");
	sv_push(v, "--ro-bind");
	sv_push(v, "/etc");
	sv_push(v, "/etc");
	/*
	 * The host's secrets, should /etc show them to the step's uid (it never is the host's
	 * root now; kept as a second wall). -try: a file the host lacks is skipped.
	 */
	for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
		sv_push(v, "--ro-bind-try");
		sv_push(v, "/dev/null");
		sv_push(v, masked[i]);
	}
	if (L->etc_ssh) { /* host keys; a tmpfs needs an existing mount point */
		sv_push(v, "--tmpfs");
		sv_push(v, "/etc/ssh");
	}
	for (size_t i = 0; i < L->root_args.n; i++)
		sv_push(v, L->root_args.v[i]);
	for (size_t i = 0; network && i < L->net_args.n; i++)
		sv_push(v, L->net_args.v[i]);
	sv_push(v, "--proc");
	sv_push(v, "/proc");
	/*
	 * Read-only over the new /proc: sysctls of the step's own namespaces would be writable
	 * (bwrap covers these only when it can write them itself), and nothing here is a
	 * step's business. Host sysctls are refused by uid anyway.
	 */
	for (size_t i = 0; i < sizeof(proc_ro) / sizeof(proc_ro[0]); i++) {
		sv_push(v, "--ro-bind-try");
		sv_push(v, proc_ro[i]);
		sv_push(v, proc_ro[i]);
	}
	sv_push(v, "--dev");
	sv_push(v, "/dev");
	sv_push(v, "--tmpfs");
	sv_push(v, "/tmp");
	sv_push(v, "--bind");
	sv_push(v, ws);
	sv_push(v, WS_INSIDE);
	sv_push(v, "--chdir");
	sv_push(v, workdir);
	sv_push(v, "--hostname");
	sv_push(v, "sandbox");
	sv_push(v, "--args");
	sv_push(v, "3");
	sv_push(v, "--");
}

/*
 * The step's environment as bwrap options ("--clearenv", then "--setenv K V" for each
 * "K=V" of @env), NUL-separated in a sealed memfd for bwrap's --args: bwrap itself starts
 * with an empty environment (so LD_PRELOAD and the like never act on the host side), and
 * values stay out of argv, which every user can read in /proc. Returns the fd or -1.
 */
static int env_args(char *const *env, struct arl_err *err)
{
	struct arl_buf b = ARL_BUF_INIT;
	size_t off = 0;
	int fd = -1;

	arl_buf_add(&b, "--clearenv", sizeof("--clearenv"));
	for (char *const *e = env; *e; e++) {
		const char *eq = strchr(*e, '=');

		arl_buf_add(&b, "--setenv", sizeof("--setenv"));
		arl_buf_add(&b, *e, (size_t)(eq - *e));
		arl_buf_add(&b, "", 1);
		arl_buf_add(&b, eq + 1, strlen(eq + 1) + 1);
	}
	fd = memfd_create("arl-bwrap-env", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	while (fd >= 0 && off < b.len) {
		ssize_t n = write(fd, b.p + off, b.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (fd < 0 || off < b.len || lseek(fd, 0, SEEK_SET) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		arl_error_errno(err, errno, "cannot pass the environment to bwrap");
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	arl_buf_release(&b);
	return fd;
}

/*
 * The program's environment: our defaults, the step's env over them, ARL_WORKSPACE last so
 * it always tells the truth. @ws is the workspace as the program sees it.
 */
static int build_env(struct strvec *env, const struct arl_step *step, const char *ws,
                     struct arl_buf *msg)
{
	const struct arl_kv defaults[] = {
	    {"PATH", SANDBOX_PATH}, {"HOME", (char *)ws}, {"LANG", SANDBOX_LANG}};

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (!arl_strmap_get(&step->env, defaults[i].key))
			sv_take(env, arl_xasprintf("%s=%s", defaults[i].key, defaults[i].val));
	for (size_t i = 0; i < step->env.n; i++) {
		const struct arl_kv *kv = &step->env.v[i];

		if (!kv->key[0] || strchr(kv->key, '=')) {
			arl_buf_addf(msg, "arl-batch: env name '%s' is not valid\n", kv->key);
			return -1;
		}
		if (strcmp(kv->key, "ARL_WORKSPACE"))
			sv_take(env, arl_xasprintf("%s=%s", kv->key, kv->val ? kv->val : ""));
	}
	sv_take(env, arl_xasprintf("ARL_WORKSPACE=%s", ws));
	return 0;
}

/* True when a '..' component appears in @path. */
static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return true;
	return false;
}

/* The part of @path after "/workspace", or NULL when it is not inside it. */
static const char *strip_ws(const char *path)
{
	size_t n = strlen(WS_INSIDE);

	if (strncmp(path, WS_INSIDE, n) || (path[n] && path[n] != '/'))
		return NULL;
	return path + n;
}

/* isolation none: workDir /workspace/x is DIR/x, and it must exist. */
static int none_cwd(const struct arl_sandbox *sb, const char *wd, char **cwd, struct arl_buf *msg)
{
	const char *rel;
	struct stat st;

	if (!wd)
		wd = WS_INSIDE;
	if (!(rel = wd[0] == '/' ? strip_ws(wd) : wd)) {
		arl_buf_addf(
		    msg, "arl-batch: workDir '%s' must be inside /workspace with isolation: none\n",
		    wd);
		return -1;
	}
	if (has_dotdot(rel)) {
		arl_buf_addf(msg, "arl-batch: workDir '%s' must not contain '..'\n", wd);
		return -1;
	}
	*cwd = arl_xasprintf("%s%s%s", sb->path, rel[0] == '/' || !rel[0] ? "" : "/", rel);
	if (stat(*cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		arl_buf_addf(msg, "arl-batch: workDir '%s' does not exist in the sandbox\n", wd);
		free(*cwd);
		*cwd = NULL;
		return -1;
	}
	return 0;
}

/* Host path @p as a root runner's isolation none step reaches it: under ROOT_MNT. Owned. */
static char *mnt_path(const struct arl_sandbox *sb, const char *p)
{
	size_t n = strlen(sb->path);

	if (!strncmp(p, sb->path, n) && (p[n] == '/' || !p[n]))
		return arl_xasprintf("%s%s", ROOT_MNT, p + n);
	return arl_xstrdup(p);
}

static bool is_executable(const char *path, int *why)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		*why = errno;
		return false;
	}
	if (S_ISDIR(st.st_mode)) {
		*why = EISDIR;
		return false;
	}
	if (access(path, X_OK) < 0) {
		*why = errno;
		return false;
	}
	return true;
}

/*
 * isolation none: finds @prog as a shell would (in @path, relative names against @cwd) so
 * that a missing program is the step's failure (127, or 126 when not executable), not an
 * infra error from spawn. Returns 0 and sets *out, or the exit code with @msg filled.
 */
static int resolve_program(const char *prog, const char *path, const char *cwd, char **out,
                           struct arl_buf *msg)
{
	char ebuf[128];
	int why = ENOENT, denied = 0;

	if (strchr(prog, '/')) {
		char *full = prog[0] == '/' ? arl_xstrdup(prog) : arl_xasprintf("%s/%s", cwd, prog);

		if (is_executable(full, &why)) {
			*out = full;
			return 0;
		}
		free(full);
		arl_buf_addf(msg, "arl-batch: cannot run '%s': %s\n", prog,
		             arl_strerror(why, ebuf, sizeof(ebuf)));
		return why == ENOENT || why == ENOTDIR ? 127 : 126;
	}
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char *full;

		/* An empty entry is the current directory, as in execvp(). */
		if (n == 0)
			full = arl_xasprintf("%s/%s", cwd, prog);
		else if (p[0] == '/')
			full = arl_xasprintf("%.*s/%s", (int)n, p, prog);
		else
			full = arl_xasprintf("%s/%.*s/%s", cwd, (int)n, p, prog);
		if (is_executable(full, &why)) {
			*out = full;
			return 0;
		}
		free(full);
		if (why == EACCES)
			denied = 1;
		if (!end)
			break;
		p = end;
	}
	if (denied) {
		arl_buf_addf(msg, "arl-batch: cannot run '%s': Permission denied\n", prog);
		return 126;
	}
	arl_buf_addf(msg, "arl-batch: command '%s' not found in PATH '%s'\n", prog, path);
	return 127;
}

static int run_command(struct local *L, struct arl_sandbox *sb, const struct arl_step *step,
                       const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                       enum arl_class *cls, struct arl_err *err)
{
	bool none = sb->pool->isolation == ARL_ISO_NONE;
	struct strvec argv = {0}, env = {0};
	struct arl_buf msg = ARL_BUF_INIT;
	struct arl_spawn_opts so = {0};
	struct arl_spawn_ident id;
	struct arl_spawn_result sr;
	char *cwd = NULL, *prog = NULL, *wd = NULL, *mnt_cwd = NULL;
	const char *path;
	int ret = -1, code = 1, args_fd = -1, ws_fd = -1;

	memset(&sr, 0, sizeof(sr));
	if (!step->argv || !step->argv[0]) {
		arl_buf_addstr(&msg, "arl-batch: the Command step has no command\n");
		goto refused;
	}
	/* As root, isolation none steps reach their workspace at ROOT_MNT (see DESIGN). */
	if (build_env(&env, step, !none ? WS_INSIDE : L->drop ? ROOT_MNT : sb->path, &msg) < 0)
		goto refused;
	if (!(path = arl_strmap_get(&step->env, "PATH")))
		path = SANDBOX_PATH;
	if (none) {
		if (none_cwd(sb, step->work_dir, &cwd, &msg) < 0)
			goto refused;
		if ((code = resolve_program(step->argv[0], path, cwd, &prog, &msg)) != 0)
			goto refused;
		if (L->drop) {
			mnt_cwd = mnt_path(sb, cwd);
			sv_take(&argv, mnt_path(sb, prog));
		} else {
			sv_push(&argv, prog);
		}
	} else {
		if (!L->bwrap) {
			arl_error(err, ARL_E_BACKEND,
			          "pool '%s' uses bwrap, which open() did not check",
			          sb->pool->name);
			*cls = ARL_CLASS_INFRA;
			goto out;
		}
		if (!step->work_dir)
			wd = arl_xstrdup(WS_INSIDE);
		else if (step->work_dir[0] == '/')
			wd = arl_xstrdup(step->work_dir);
		else
			wd = arl_xasprintf("%s/%s", WS_INSIDE, step->work_dir);
		bwrap_argv(L, &argv, L->drop ? ROOT_MNT : sb->path, wd, sb->pool->network);
		sv_push(&argv, step->argv[0]);
		if ((args_fd = env_args(env.v, err)) < 0) {
			*cls = ARL_CLASS_INFRA;
			goto out;
		}
	}
	for (size_t i = 1; i < step->argc && step->argv[i]; i++)
		sv_push(&argv, step->argv[i]);

	if (L->drop && (ws_fd = sandbox_fd(L, sb->dir.name, err)) < 0) {
		*cls = ARL_CLASS_INFRA;
		goto out;
	}
	step_ident(L, none, &id, ws_fd, args_fd);
	/* As root, the child enters workDir as the step's uid (see DESIGN), never as ours. */
	id.cwd_path = mnt_cwd;
	so.ident = &id;
	so.argv = argv.v;
	so.envp = none ? env.v : no_env;
	so.cwd = mnt_cwd ? NULL : cwd;
	so.deadline_ms = ctx ? ctx->deadline_ms : 0;
	so.capture_max = L->capture_max;
	so.cancel_fd = L->cancel_fd;
	if (arl_spawn_run(&so, &sr, err) < 0) {
		/* As root, workDir is entered as the step's uid: what it may not enter, it fails. */
		if (mnt_cwd && err->code == ARL_E_INVALID) {
			arl_buf_addf(&msg, "arl-batch: workDir '%s': %s\n",
			             step->work_dir ? step->work_dir : WS_INSIDE, err->msg);
			arl_err_clear(err);
			goto refused;
		}
		sb->tainted = true; /* rare, and maybe after the start: take no chances */
		*cls = ARL_CLASS_INFRA;
		goto out;
	}
	/* Killed, or output still held from outside the group: something may still run. */
	if (sr.timed_out || sr.cancelled || sr.lingering)
		sb->tainted = true;
	res->has_exit = true;
	res->exit_code = sr.exit_code;
	/* bwrap reports a program it cannot start as its own exit 1; say 127 as a shell would. */
	if (sr.exit_code == 1 && sr.err.data && !strncmp(sr.err.data, "bwrap: execvp ", 14))
		res->exit_code = 127;
	arl_output_release(&res->out);
	arl_output_release(&res->err);
	res->out = sr.out;
	res->err = sr.err;
	memset(&sr.out, 0, sizeof(sr.out));
	memset(&sr.err, 0, sizeof(sr.err));
	if (sr.cancelled) {
		res->state = ARL_STATE_FAILED;
		*cls = ARL_CLASS_CANCELLED;
	} else if (sr.timed_out) {
		res->state = ARL_STATE_FAILED;
		*cls = ARL_CLASS_TIMEOUT;
	} else if (sr.exit_code != 0) {
		res->state = ARL_STATE_FAILED;
		*cls = ARL_CLASS_FAILED;
	} else {
		res->state = ARL_STATE_SUCCEEDED;
		*cls = ARL_CLASS_NONE;
	}
	arl_spawn_result_release(&sr);
	ret = 0;
	goto out;
refused:
	step_fail(res, cls, code, msg.p);
	ret = 0;
out:
	sv_release(&argv);
	sv_release(&env);
	arl_buf_release(&msg);
	if (args_fd >= 0)
		close(args_fd);
	if (ws_fd >= 0)
		close(ws_fd);
	free(cwd);
	free(mnt_cwd);
	free(prog);
	free(wd);
	return ret;
}

/*
 * Splits a FilePatch path into the components below /workspace, refusing anything that is
 * not plainly inside it. The message says what to do instead.
 */
static int patch_components(const char *path, struct strvec *comps, struct arl_buf *msg)
{
	char *copy, *save = NULL;
	char *why = arl_filepatch_local_refusal(path, path ? strlen(path) : 0);

	/* The same rule `validate` applies to local pools (job.h). */
	if (why) {
		arl_buf_addf(msg, "arl-batch: %s\n", why);
		free(why);
		return -1;
	}
	copy = arl_xstrdup(path);
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (strcmp(c, "."))
			sv_push(comps, c);
	free(copy);
	return 0;
}

/* Why opening component @i of @comps failed, for the step's stderr. */
static void patch_open_error(struct arl_buf *msg, int errnum, int fd, const struct strvec *comps,
                             size_t i)
{
	struct arl_buf shown = ARL_BUF_INIT;
	struct stat st;
	char ebuf[128];

	for (size_t k = 0; k <= i; k++)
		arl_buf_addf(&shown, "/%s", comps->v[k]);
	if (errnum == EISDIR) {
		arl_buf_addf(msg, "arl-batch: FilePatch refused: '%s' is a directory\n", shown.p);
	} else if ((errnum == ELOOP || errnum == ENOTDIR || errnum == ENXIO) &&
	           !fstatat(fd, comps->v[i], &st, AT_SYMLINK_NOFOLLOW)) {
		if (S_ISLNK(st.st_mode))
			arl_buf_addf(
			    msg,
			    "arl-batch: FilePatch refused: '%s' is a symlink, and FilePatch "
			    "never follows symlinks\n",
			    shown.p);
		else if (i + 1 < comps->n && !S_ISDIR(st.st_mode))
			arl_buf_addf(msg, "arl-batch: FilePatch refused: '%s' is not a directory\n",
			             shown.p);
		else
			arl_buf_addf(msg,
			             "arl-batch: FilePatch refused: '%s' is not a regular file\n",
			             shown.p);
	} else {
		arl_buf_addf(msg, "arl-batch: FilePatch cannot open '%s': %s\n", shown.p,
		             arl_strerror(errnum, ebuf, sizeof(ebuf)));
	}
	arl_buf_release(&shown);
}

static int run_filepatch(struct local *L, struct arl_sandbox *sb, const struct arl_step *step,
                         struct arl_step_result *res, enum arl_class *cls, struct arl_err *err)
{
	struct strvec comps = {0};
	struct arl_buf msg = ARL_BUF_INIT;
	const char *data = step->content ? step->content : "";
	size_t len = step->content ? step->content_len : 0, off = 0;
	struct stat st;
	char ebuf[128];
	int cur = -1, fd = -1, ret = -1;

	if (patch_components(step->path, &comps, &msg) < 0)
		goto refused;
	cur = openat(L->state_fd, sb->dir.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cur < 0) {
		arl_error_errno(err, errno, "cannot open sandbox '%s'", sb->path);
		*cls = ARL_CLASS_INFRA;
		goto out;
	}
	/* comps[0] is "workspace", which is the sandbox directory itself. */
	for (size_t i = 1; i + 1 < comps.n; i++) {
		const char *c = comps.v[i];
		int next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		bool made = false;

		if (next < 0 && errno == ENOENT) {
			made = mkdirat(cur, c, 0755) == 0;
			if (!made && errno != EEXIST) {
				patch_open_error(&msg, errno, cur, &comps, i);
				goto refused;
			}
			next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		/* As root: the step's uid must be able to change what we made for it. */
		if (next >= 0 && made && L->drop &&
		    fchown(next, pool_uid(L, sb->pool), pool_gid(L, sb->pool)) < 0) {
			int e = errno;

			close(next);
			next = -1;
			errno = e;
		}
		if (next < 0) {
			patch_open_error(&msg, errno, cur, &comps, i);
			goto refused;
		}
		close(cur);
		cur = next;
	}
	/* O_NONBLOCK: a FIFO planted here fails with ENXIO instead of blocking the worker. */
	fd = openat(cur, comps.v[comps.n - 1],
	            O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
	            0644);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		patch_open_error(&msg, fd < 0 ? errno : ENXIO, cur, &comps, comps.n - 1);
		goto refused;
	}
	if (L->drop && (st.st_uid != pool_uid(L, sb->pool) || st.st_gid != pool_gid(L, sb->pool)) &&
	    fchown(fd, pool_uid(L, sb->pool), pool_gid(L, sb->pool)) < 0) {
		patch_open_error(&msg, errno, cur, &comps, comps.n - 1);
		goto refused;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			arl_buf_addf(&msg, "arl-batch: FilePatch cannot write '%s': %s\n",
			             step->path, arl_strerror(errno, ebuf, sizeof(ebuf)));
			goto refused;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0) {
		fd = -1;
		arl_buf_addf(&msg, "arl-batch: FilePatch cannot write '%s': %s\n", step->path,
		             arl_strerror(errno, ebuf, sizeof(ebuf)));
		goto refused;
	}
	fd = -1;
	arl_buf_addf(&msg, "File created: %s\n", step->path); /* ARL's wording */
	res->state = ARL_STATE_SUCCEEDED;
	res->has_exit = true;
	res->exit_code = 0;
	set_output(&res->out, msg.p);
	set_output(&res->err, "");
	*cls = ARL_CLASS_NONE;
	ret = 0;
	goto out;
refused:
	step_fail(res, cls, 1, msg.p);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (cur >= 0)
		close(cur);
	sv_release(&comps);
	arl_buf_release(&msg);
	return ret;
}

/* --- open and close ------------------------------------------------------------------ */

/* mkdir -p with mode 0700 for what it creates; then checks we own the result. */
static int open_state_dir(struct local *L, const char *dir, struct arl_err *err)
{
	char *path, *canon = NULL;
	struct stat st, cst;
	int ret = -1;

	if (dir && dir[0]) {
		path = arl_xstrdup(dir);
	} else {
		const char *tmp = getenv("TMPDIR");

		path = arl_xasprintf("%s/arl-batch-%u", tmp && tmp[0] == '/' ? tmp : "/tmp",
		                     (unsigned)geteuid());
	}
	for (char *p = path + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				arl_error_errno(err, errno, "cannot create state directory '%s'",
				                path);
				goto out;
			}
			*p = c;
			if (!c)
				break;
		}
	}
	/* A link planted in its place (beside the database, by default) is not followed. */
	L->state_fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (L->state_fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
		arl_error(err, ARL_E_SYS, "state directory '%s' is %s; refusing it", path,
		          lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? "a symbolic link"
		                                                       : "not a directory");
		goto out;
	}
	if (L->state_fd < 0 || fstat(L->state_fd, &st) < 0 || !(canon = realpath(path, NULL)) ||
	    stat(canon, &cst) < 0) {
		arl_error_errno(err, errno, "cannot open state directory '%s'", path);
		goto out;
	}
	if (cst.st_dev != st.st_dev || cst.st_ino != st.st_ino) {
		arl_error(err, ARL_E_SYS, "state directory '%s' was replaced while it was opened",
		          path);
		goto out;
	}
	/* In a shared /tmp someone else may have made it first, to watch or swap our sandboxes. */
	if (st.st_uid != geteuid()) {
		arl_error(err, ARL_E_SYS, "state directory '%s' belongs to uid %u, not to us",
		          canon, (unsigned)st.st_uid);
		goto out;
	}
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		arl_error(err, ARL_E_SYS, "state directory '%s' is writable by other users", canon);
		goto out;
	}
	L->state_dir = canon;
	canon = NULL;
	ret = 0;
out:
	free(canon);
	free(path);
	return ret;
}

/* Reads id variable @name (unset: @def) into *out; 0 and anything not a plain number refused. */
static int sandbox_id(const char *name, unsigned long def, unsigned long *out, struct arl_err *err)
{
	const char *v = getenv(name);
	char *end;

	if (!v || !v[0]) {
		*out = def;
		return 0;
	}
	errno = 0;
	*out = strtoul(v, &end, 10);
	if (*end || errno || v[0] < '0' || v[0] > '9' || *out == 0 || *out >= 0xfffffffeUL)
		return arl_error(err, ARL_E_INVALID,
		                 "%s '%s' is not valid: give an unprivileged numeric id "
		                 "(1 to 4294967293; steps never run as root)",
		                 name, v);
	return 0;
}

/*
 * As root, steps run as an unprivileged uid and gid, SANDBOX_ID_DEFAULT unless
 * ARL_SANDBOX_UID and ARL_SANDBOX_GID (default: the uid) say otherwise; isolation none steps
 * as ARL_SANDBOX_NONE_UID (default: that uid + 1) and ARL_SANDBOX_NONE_GID (default: theirs).
 */
static int sandbox_ids(struct local *L, struct arl_err *err)
{
	unsigned long uid, gid, nuid, ngid;

	if (sandbox_id("ARL_SANDBOX_UID", SANDBOX_ID_DEFAULT, &uid, err) < 0 ||
	    sandbox_id("ARL_SANDBOX_GID", uid, &gid, err) < 0 ||
	    sandbox_id("ARL_SANDBOX_NONE_UID", uid + 1, &nuid, err) < 0 ||
	    sandbox_id("ARL_SANDBOX_NONE_GID", nuid, &ngid, err) < 0)
		return -1;
	/*
	 * A process an isolation none step leaves behind would, as bwrap's uid, own every later
	 * bwrap step's user namespace: their /proc/PID/root, environ, signals, ptrace.
	 */
	if (nuid == uid || nuid >= 0xfffffffeUL)
		return arl_error(
		    err, ARL_E_INVALID,
		    "ARL_SANDBOX_NONE_UID '%lu' is not valid: isolation none steps need "
		    "an unprivileged id of their own, not ARL_SANDBOX_UID's (%lu)",
		    nuid, uid);
	L->drop = true;
	L->sb_uid = (uid_t)uid;
	L->sb_gid = (gid_t)gid;
	L->none_uid = (uid_t)nuid;
	L->none_gid = (gid_t)ngid;
	return 0;
}

/*
 * The mount point ROOT_MNT: a root-owned directory nobody else can write, on a path every uid
 * can search (the state directory's may not be), made once and shared by root runners.
 */
static int make_root_mnt(struct arl_err *err)
{
	static const char *const dirs[] = {ROOT_MNT_DIR, ROOT_MNT};
	struct stat st;

	for (size_t i = 0; i < 2; i++) {
		if (mkdir(dirs[i], 0755) < 0 && errno != EEXIST)
			return arl_error_errno(err, errno, "cannot create '%s'", dirs[i]);
		if (lstat(dirs[i], &st) < 0)
			return arl_error_errno(err, errno, "cannot use '%s'", dirs[i]);
		if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
			return arl_error(
			    err, ARL_E_SYS,
			    "'%s' must be a directory of root's that only root can write", dirs[i]);
		if ((st.st_mode & 0111) != 0111 && chmod(dirs[i], 0755) < 0)
			return arl_error_errno(err, errno, "cannot use '%s'", dirs[i]);
	}
	return 0;
}

/* The absolute path of bwrap in our PATH, or NULL. */
static char *find_bwrap(void)
{
	const char *path = getenv("PATH");

	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		int why;

		/* Relative entries would depend on our cwd: only absolute ones count. */
		if (n && p[0] == '/') {
			char *full = arl_xasprintf("%.*s/bwrap", (int)n, p);

			if (is_executable(full, &why))
				return full;
			free(full);
		}
		if (!end)
			return NULL;
		p = end;
	}
}

/*
 * The host's top-level /bin, /sbin and /lib* as they are: symlinks into /usr on merged-/usr
 * systems (recreated as symlinks), real directories elsewhere (bound read-only).
 */
static void probe_root_layout(struct local *L)
{
	static const char *const names[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
	char target[PATH_MAX], *canon;
	struct stat st;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[32];
		ssize_t n;

		snprintf(path, sizeof(path), "/%s", names[i]);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode) && (n = readlink(path, target, sizeof(target) - 1)) > 0) {
			target[n] = '\0';
			sv_push(&L->root_args, "--symlink");
			sv_push(&L->root_args, target);
			sv_push(&L->root_args, path);
		} else if (S_ISDIR(st.st_mode)) {
			sv_push(&L->root_args, "--ro-bind");
			sv_push(&L->root_args, path);
			sv_push(&L->root_args, path);
		}
	}
	/*
	 * /etc/resolv.conf may point outside /etc (systemd-resolved: /run/systemd/resolve);
	 * network pools get that directory too, or DNS would not work in them.
	 */
	if (lstat("/etc/resolv.conf", &st) == 0 && S_ISLNK(st.st_mode) &&
	    (canon = realpath("/etc/resolv.conf", NULL))) {
		char *slash = strrchr(canon, '/');

		if (strncmp(canon, "/etc/", 5) && strncmp(canon, "/usr/", 5) && slash &&
		    slash != canon) {
			*slash = '\0';
			sv_push(&L->net_args, "--ro-bind-try");
			sv_push(&L->net_args, canon);
			sv_push(&L->net_args, canon);
		}
		free(canon);
	}
}

/* Runs `true` in a sandbox built exactly as steps' are, so open() fails with advice. */
static int probe_bwrap(struct local *L, const char *pool_name, bool network, struct arl_err *err)
{
	char *env[] = {"PATH=" SANDBOX_PATH, NULL};
	struct strvec argv = {0};
	struct arl_spawn_opts so = {0};
	struct arl_spawn_ident id;
	struct arl_spawn_result sr;
	struct sbdir d = {0};
	char *ws = NULL;
	int ret = -1, dfd, args_fd = -1, ws_fd = -1;

	memset(&sr, 0, sizeof(sr));
	/* A real sandbox directory, as the steps' uid gets it (ownership, the root bind). */
	if ((dfd = create_dir(L, L->sb_uid, L->sb_gid, &d, err)) < 0) {
		arl_err_prefix(err, "pool '%s'", pool_name);
		goto out;
	}
	close(dfd);
	ws = arl_xasprintf("%s/%s", L->state_dir, d.name);
	bwrap_argv(L, &argv, L->drop ? ROOT_MNT : ws, WS_INSIDE, network);
	sv_push(&argv, "true");
	if ((args_fd = env_args(env, err)) < 0 ||
	    (L->drop && (ws_fd = sandbox_fd(L, d.name, err)) < 0)) {
		arl_err_prefix(err, "pool '%s'", pool_name);
		goto out;
	}
	step_ident(L, false, &id, ws_fd, args_fd);
	so.ident = &id;
	so.argv = argv.v;
	so.envp = no_env;
	so.deadline_ms = arl_now_ms() + PROBE_TIMEOUT_MS;
	so.capture_max = 4096;
	so.cancel_fd = L->cancel_fd;
	if (arl_spawn_run(&so, &sr, err) < 0) {
		arl_err_prefix(err, "pool '%s'", pool_name);
		goto out;
	}
	if (sr.cancelled) {
		arl_error(err, ARL_E_BACKEND, "pool '%s': cancelled while checking bwrap",
		          pool_name);
	} else if (sr.timed_out) {
		arl_error(err, ARL_E_BACKEND, "pool '%s': '%s' did not finish within %d s",
		          pool_name, L->bwrap, PROBE_TIMEOUT_MS / 1000);
	} else if (sr.exit_code != 0) {
		const char *e = sr.err.data ? sr.err.data : "";
		int n = (int)strcspn(e, "\n");

		arl_error(err, ARL_E_BACKEND,
		          "pool '%s': bwrap cannot create a sandbox (%.*s%s): allow unprivileged "
		          "user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
		          "user.max_user_namespaces=15000, "
		          "kernel.apparmor_restrict_unprivileged_userns=0), or set "
		          "'isolation: none' on the pool",
		          pool_name, n > 160 ? 160 : n, e,
		          n ? "" : "exit status nonzero, no message");
	} else {
		ret = 0;
	}
out:
	drop_dir(L, &d);
	if (args_fd >= 0)
		close(args_fd);
	if (ws_fd >= 0)
		close(ws_fd);
	arl_spawn_result_release(&sr);
	sv_release(&argv);
	free(ws);
	return ret;
}

static void local_close(void *state)
{
	struct local *L = state;

	if (!L)
		return;
	pthread_mutex_lock(&L->mu);
	L->stopping = true;
	pthread_cond_broadcast(&L->cv);
	pthread_mutex_unlock(&L->mu);
	if (L->preparer_running)
		pthread_join(L->preparer, NULL);
	for (size_t i = 0; i < L->nwarm; i++) {
		struct warm_pool *w = &L->warm[i];

		for (size_t k = 0; k < w->nready; k++)
			discard(L, &w->ready[k]);
		free(w->ready);
	}
	free(L->warm);
	/* Queued ones too: deleted, as nothing will use them now. */
	for (size_t i = 0; i < L->ndirty; i++)
		discard(L, &L->dirty[i]);
	free(L->dirty);
	for (size_t i = 0; i < L->nspare; i++)
		discard(L, &L->spare[i]);
	free(L->spare);
	if (L->state_fd >= 0)
		close(L->state_fd);
	free(L->state_dir);
	free(L->owner);
	free(L->bwrap);
	sv_release(&L->root_args);
	sv_release(&L->net_args);
	pthread_cond_destroy(&L->cv);
	pthread_mutex_destroy(&L->mu);
	free(L);
}

static int local_open(void **state, const struct arl_backend_opts *o,
                      const struct arl_pool *const *pools, size_t npools, struct arl_err *err)
{
	struct local *L = arl_xcalloc(1, sizeof(*L));
	const char *bwrap_pool = NULL;
	bool need_netns = false;
	int ret = -1;

	pthread_mutex_init(&L->mu, NULL);
	pthread_cond_init(&L->cv, NULL);
	L->state_fd = -1;
	L->run_id = o->run_id;
	L->owner = owner_tag();
	L->etc_ssh = access("/etc/ssh", F_OK) == 0;
	L->capture_max = o->capture_max;
	L->cancel_fd = o->cancel_fd;
	/* Whoever starts us, a step is never the host's root (see DESIGN). */
	if (geteuid() == 0 && (sandbox_ids(L, err) < 0 || make_root_mnt(err) < 0))
		goto out;
	if (open_state_dir(L, o->state_dir, err) < 0)
		goto out;
	/* Sweep what runners killed before their cleanup left behind (same as `arl-batch gc`). */
	{
		struct arl_err ignored = ARL_ERR_INIT;
		int swept = arl_local_gc(o->state_dir, true, NULL, NULL, &ignored);

		if (swept > 0)
			log_line("arl-batch: deleted %d sandbox%s left by runners that died", swept,
			         swept == 1 ? "" : "es");
	}
	L->warm = arl_xcalloc(npools ? npools : 1, sizeof(*L->warm));
	for (size_t i = 0; i < npools; i++) {
		const struct arl_pool *p = pools[i];
		struct stat st;

		if (p->workspace) {
			int e = 0;

			if (p->workspace[0] != '/')
				e = EINVAL; /* the loader makes it absolute; a relative one is a bug */
			else if (stat(p->workspace, &st) < 0)
				e = errno;
			else if (!S_ISDIR(st.st_mode))
				e = ENOTDIR;
			if (e) {
				arl_error_errno(err, e, "pool '%s': cannot use workspace '%s'",
				                p->name, p->workspace);
				goto out;
			}
		}
		if (p->isolation == ARL_ISO_BWRAP) {
			if (!bwrap_pool)
				bwrap_pool = p->name;
			if (!p->network)
				need_netns = true;
		}
		L->warm[L->nwarm++].pool = p;
		L->backlog += p->replicas > 0 ? (size_t)p->replicas : 1;
	}
	if (L->backlog < BACKLOG_MIN)
		L->backlog = BACKLOG_MIN;
	if (bwrap_pool) {
		if (!(L->bwrap = find_bwrap())) {
			arl_error(
			    err, ARL_E_BACKEND,
			    "pool '%s': bubblewrap is not installed (no 'bwrap' in PATH): "
			    "apt-get install bubblewrap, or set 'isolation: none' on the pool",
			    bwrap_pool);
			goto out;
		}
		probe_root_layout(L);
		if (probe_bwrap(L, bwrap_pool, !need_netns, err) < 0)
			goto out;
	}
	if (L->nwarm) {
		int rc = pthread_create(&L->preparer, NULL, preparer_main, L);

		if (rc) {
			arl_error_errno(err, rc, "cannot start the sandbox preparer thread");
			goto out;
		}
		L->preparer_running = true;
	}
	*state = L;
	L = NULL;
	ret = 0;
out:
	local_close(L);
	return ret;
}

/* --- the ops table ------------------------------------------------------------------- */

static int local_acquire(void *state, const struct arl_pool *pool,
                         const struct arl_sandbox_req *req, struct arl_sandbox **out,
                         struct arl_err *err)
{
	struct local *L = state;
	struct arl_sandbox *sb;
	struct warm_pool *w;
	struct sbdir d = {0};
	struct copy_bound b = {req && req->deadline_ms ? req->deadline_ms : INT64_MAX, L->cancel_fd,
	                       0, 0};

	pthread_mutex_lock(&L->mu);
	if ((w = find_warm(L, pool))) {
		bool retry = w->failed;

		if (w->nready)
			d = w->ready[--w->nready];
		w->failed = false; /* demand is back: let the preparer try again */
		/* A wake-up costs the worker more than the pop: only when there is work. */
		if (retry || L->ndirty || pool_short(L, w))
			pthread_cond_signal(&L->cv);
	}
	pthread_mutex_unlock(&L->mu);
	if (!d.name && make_sandbox(L, pool, &b, &d, err) < 0) {
		if (err->code != ARL_E_TIMEOUT && err->code != ARL_E_CANCELLED)
			arl_err_prefix(err, "pool '%s'", pool->name);
		return -1;
	}
	sb = arl_xcalloc(1, sizeof(*sb));
	sb->pool = pool;
	sb->dir = d;
	sb->path = arl_xasprintf("%s/%s", L->state_dir, d.name);
	if (req && req->job && req->job->name)
		sb->job = arl_xstrdup(req->job->name);
	*out = sb;
	return 0;
}

/*
 * Whether @sb's directory is no longer in the state directory, or is another one by that
 * name: something on the host deleted it. Judged by the name (a held fd would keep the
 * inode, and a removed one cannot come back); errors other than ENOENT say nothing.
 */
static bool sandbox_removed(const struct local *L, const struct arl_sandbox *sb)
{
	struct stat st;

	if (fstatat(L->state_fd, sb->dir.name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT;
	return !S_ISDIR(st.st_mode) || (sb->dir.made.ino && (st.st_dev != sb->dir.made.dev ||
	                                                     st.st_ino != sb->dir.made.ino));
}

static int local_exec(void *state, struct arl_sandbox *sb, const struct arl_step *step,
                      const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                      enum arl_class *cls, struct arl_err *err)
{
	struct local *L = state;
	int ret;

	if (!res->name)
		res->name = arl_xstrdup(step->name ? step->name : "");
	res->type = step->type == ARL_STEP_FILEPATCH ? "FilePatch" : "Command";
	res->started_ms = arl_wall_ms();
	*cls = ARL_CLASS_NONE;
	if (step->type == ARL_STEP_FILEPATCH)
		ret = run_filepatch(L, sb, step, res, cls, err);
	else
		ret = run_command(L, sb, step, ctx, res, cls, err);
	/*
	 * A step that failed in a directory deleted under it did nothing wrong: the failure is
	 * the host's (infra, retried), not a result of the step. Behind bwrap a step cannot
	 * delete its own /workspace (a mount point) nor see the state directory.
	 */
	if ((ret < 0 || *cls == ARL_CLASS_FAILED || *cls == ARL_CLASS_TIMEOUT) &&
	    sandbox_removed(L, sb)) {
		arl_err_clear(err);
		arl_error(err, ARL_E_BACKEND,
		          "the sandbox directory '%s' was removed from the host while the step ran",
		          sb->path);
		sb->tainted = true;
		ret = -1;
	}
	if (ret < 0) {
		/* The error is the attempt's; the step just has no output of its own. */
		*cls = ARL_CLASS_INFRA;
		res->state = ARL_STATE_FAILED;
		if (!res->out.data)
			set_output(&res->out, "");
		if (!res->err.data)
			set_output(&res->err, "");
	}
	res->finished_ms = arl_wall_ms();
	return ret;
}

static const char *local_sandbox_name(const struct arl_sandbox *sb)
{
	return sb->dir.name;
}

static void local_release(void *state, struct arl_sandbox *sb, bool keep)
{
	struct local *L = state;

	if (!sb)
		return;
	if (keep) {
		/* "keep-" takes it out of gc's sight: an ownerless sb-* directory is garbage. */
		char *kept = arl_xasprintf("keep-%s", sb->dir.name);
		const char *where = renameat(L->state_fd, sb->dir.name, L->state_fd, kept) == 0
		                        ? kept
		                        : sb->dir.name;

		log_line("arl-batch: %s%s%skeeping sandbox '%s/%s' (keepAlive)",
		         sb->job ? "job '" : "", sb->job ? sb->job : "", sb->job ? "': " : "",
		         L->state_dir, where);
		free(kept);
	} else {
		retire(L, sb);
	}
	free(sb->dir.name);
	free(sb->path);
	free(sb->job);
	free(sb);
}

/*
 * Why the runner that made sandbox @name is gone, or NULL: alive, not ours to judge (another
 * PID namespace: *@foreign is set), or not a sandbox name. The identity in the name is the
 * runner's own; a step cannot rename its directory, whose parent it cannot see.
 */
static const char *owner_gone(const char *name, const struct arl_owner *me, bool *foreign)
{
	struct arl_owner o = {0};
	unsigned long long pidns;
	unsigned long n;
	long long run;
	char boot[9];
	const char *why;
	int end = 0;

	*foreign = false;
	if (sscanf(name, "sb-%lld-%ld-%llu-%8[0-9a-f]-%llu-%lu%n", &run, &o.pid, &o.start, boot,
	           &pidns, &n, &end) != 6 ||
	    name[end]) {
		/*
		 * A name of an older version, "sb-RUN-PID-N": the pid alone, so only a pid that is
		 * not running is certain. A reused one keeps it until that process ends.
		 */
		memset(&o, 0, sizeof(o)); /* the failed match may have filled some */
		end = 0;
		if (sscanf(name, "sb-%lld-%ld-%lu%n", &run, &o.pid, &n, &end) != 3 || name[end])
			return NULL;
		return arl_owner_gone(&o, me);
	}
	if (strlen(boot) == 8)
		memcpy(o.boot, boot, sizeof(boot));
	if (pidns)
		snprintf(o.pidns, sizeof(o.pidns), "%llu", pidns);
	why = arl_owner_gone(&o, me);
	*foreign = !why && o.pidns[0] && me->pidns[0] && strcmp(o.pidns, me->pidns) != 0;
	return why;
}

int arl_local_gc(const char *state_dir, bool remove, FILE *out, int *foreign, struct arl_err *err)
{
	int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct arl_owner me;
	DIR *d;
	struct dirent *de;
	int found = 0, others = 0;

	if (foreign)
		*foreign = 0;
	if (dfd < 0)
		return errno == ENOENT ? 0
		                       : arl_error_errno(err, errno, "cannot open '%s'", state_dir);
	d = fdopendir(dup(dfd));
	if (!d) {
		close(dfd);
		return arl_error_errno(err, errno, "cannot read '%s'", state_dir);
	}
	arl_owner_self(&me);
	while ((de = readdir(d))) {
		struct arl_err rm = ARL_ERR_INIT;
		const char *why;
		bool other_ns;

		if (strncmp(de->d_name, "sb-", 3))
			continue;
		if (!(why = owner_gone(de->d_name, &me, &other_ns))) {
			others += other_ns;
			continue;
		}
		found++;
		if (out)
			fprintf(out, "%s %s/%s (%s)\n", remove ? "deleting" : "orphaned", state_dir,
			        de->d_name, why);
		if (remove && rm_tree(dfd, de->d_name, &rm) < 0 && out)
			fprintf(out, "arl-batch: cannot delete '%s/%s': %s\n", state_dir,
			        de->d_name, rm.msg);
	}
	closedir(d);
	close(dfd);
	if (foreign)
		*foreign = others;
	return found;
}

const struct arl_backend_ops arl_backend_local = {
    .name = "local",
    .open = local_open,
    .acquire = local_acquire,
    .exec = local_exec,
    .sandbox_name = local_sandbox_name,
    .release = local_release,
    .close = local_close,
};
