/*
 * The agent's mount plan (mounts.h).
 *
 * DESIGN
 * - bubblewrap 0.8 cannot mount an overlay, so the runner binds each tree's layers at a
 *   staging place (host tree, skeleton, the sandbox directory holding uppers and work dirs)
 *   and the agent, first process of the sandbox, mounts the overlays over the real paths,
 *   then masks secrets again (binds bwrap made under a path are hidden by an overlay mounted
 *   on it) and detaches the staging place, so a step never reaches an upper directory
 *   except through its overlay.
 * - The mount needs CAP_SYS_ADMIN and CAP_DAC_OVERRIDE in the sandbox's user namespace:
 *   overlayfs makes WORK/work mode 0 and probes O_TMPFILE in it with the mounter's
 *   credentials; without DAC_OVERRIDE that probe fails and the kernel says "upper fs does
 *   not support tmpfile" and refuses a writable mount. The agent drops every capability
 *   right after (agent_main.c), the bounding set too, which takes CAP_SETPCAP; --no-userns
 *   takes CAP_SYS_RESOURCE. The runner gives bwrap exactly these four (--cap-add).
 * - In a user namespace the kernel requires "userxattr" (overlay metadata in user.*
 *   xattrs). Paths go into the option string unescaped, so a plan naming a path with ',',
 *   ':' (outside LOWERS' separators) or '\' is refused.
 * - An overlay whose one lower is empty (/workspace of a pool without a workspace) would show
 *   its upper as it is: the upper is bound there instead. A bind costs no overlay superblock,
 *   whose mount probes the upper's filesystem (a work directory, a temporary file, a
 *   whiteout) and whose unmount syncs that whole filesystem (BENCHMARKS.md, "The sandbox
 *   agent's start-up"). Not "volatile" overlays, which skip that sync: their two more
 *   directories per mount cost more than it here (same section).
 */
#include "agent/mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

struct plan_op {
	const char *name;
	int operands;
};

static const struct plan_op plan_ops[] = {
    {"--overlay", 4},   {"--overlay-mem", 5}, {"--mask", 1},  {"--tmpfs", 1},   {"--detach", 1},
    {"--no-userns", 1}, {"--layers", 5},      {"--pivot", 1}, {"--as-user", 2},
};

static const struct plan_op *find_op(const char *name)
{
	for (size_t i = 0; i < sizeof(plan_ops) / sizeof(plan_ops[0]); i++)
		if (!strcmp(plan_ops[i].name, name))
			return &plan_ops[i];
	return NULL;
}

/* Whether @p is absolute and free of what the overlay option string cannot carry. */
static int path_ok(const char *p, const char *refused)
{
	return p[0] == '/' && strlen(p) < PATH_MAX && !strpbrk(p, refused);
}

/* Whether every element of the colon-separated @lowers is a path_ok() one. */
static int lowers_ok(const char *lowers)
{
	char one[PATH_MAX];

	for (const char *p = lowers;;) {
		size_t n = strcspn(p, ":");

		if (n >= sizeof(one))
			return 0;
		memcpy(one, p, n);
		one[n] = '\0';
		if (!path_ok(one, ",\\"))
			return 0;
		if (!p[n])
			return 1;
		p += n + 1;
	}
}

/* --layers' N: a decimal count, 1 to ARL_AGENT_LAYERS_MAX. */
static int layer_count(const char *s)
{
	long n = 0;

	if (!*s || strlen(s) > 3)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n >= 1 && n <= ARL_AGENT_LAYERS_MAX ? (int)n : -1;
}

/* --as-user's ids: decimal, 1 to 4294967293 (0 needs no namespace of its own). */
static int id_ok(const char *s)
{
	unsigned long long n = 0;

	if (!*s || strlen(s) > 10)
		return 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		n = n * 10 + (unsigned)(*p - '0');
	}
	return n < 0xfffffffeULL;
}

static bool is_layer_count(const struct plan_op *op, int k)
{
	return !strcmp(op->name, "--layers") && k == 3;
}

static int operand_ok(const struct plan_op *op, int k, const char *arg)
{
	bool overlay = !strcmp(op->name, "--overlay") || !strcmp(op->name, "--overlay-mem");

	if (!strcmp(op->name, "--as-user"))
		return id_ok(arg);
	if (is_layer_count(op, k))
		return layer_count(arg) > 0;
	if (overlay && k == 2)
		return lowers_ok(arg);
	/* What goes into an overlay's option string. */
	return path_ok(arg, overlay || !strcmp(op->name, "--layers") ? ",:\\" : "");
}

int arl_agent_plan_check(char *const *args, int n, char *msg, size_t len)
{
	for (int i = 0; i < n;) {
		const struct plan_op *op = find_op(args[i]);

		if (!op) {
			snprintf(msg, len, "unknown mount plan option '%s'", args[i]);
			return -1;
		}
		if (n - i - 1 < op->operands) {
			snprintf(msg, len, "'%s' needs %d operand%s", op->name, op->operands,
			         op->operands > 1 ? "s" : "");
			return -1;
		}
		for (int k = 1; k <= op->operands; k++) {
			if (!operand_ok(op, k, args[i + k]) && is_layer_count(op, k)) {
				snprintf(msg, len, "'%s': '%s' is not a layer count (1 to %d)",
				         op->name, args[i + k], ARL_AGENT_LAYERS_MAX);
				return -1;
			}
			if (!operand_ok(op, k, args[i + k])) {
				snprintf(msg, len,
				         "'%s': '%s' is not an absolute path it can mount",
				         op->name, args[i + k]);
				return -1;
			}
		}
		i += 1 + op->operands;
	}
	return 0;
}

/* Whether @lowers is one directory, empty (an error says no: the overlay then reports it). */
static int lower_empty(const char *lowers)
{
	struct dirent *de;
	DIR *d;
	int fd, empty = 1;

	if (strchr(lowers, ':') ||
	    (fd = open(lowers, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return 0;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return 0;
	}
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

static int mount_overlay(char *const *a, char *msg, size_t len)
{
	char opts[4 * PATH_MAX + 64];
	int n;

	/* What the overlay would show, without one (see DESIGN). */
	if (lower_empty(a[1])) {
		if (mount(a[2], a[0], NULL, MS_BIND, NULL) < 0 ||
		    mount(NULL, a[0], NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) <
		        0) {
			snprintf(msg, len, "cannot bind '%s' on '%s'", a[2], a[0]);
			return -1;
		}
		return 0;
	}
	n = snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", a[1], a[2],
	             a[3]);

	if (n < 0 || (size_t)n >= sizeof(opts)) {
		errno = ENAMETOOLONG;
		snprintf(msg, len, "cannot mount an overlay on '%s'", a[0]);
		return -1;
	}
	if (mount("overlay", a[0], "overlay", MS_NOSUID | MS_NODEV, opts) < 0) {
		snprintf(msg, len, "cannot mount an overlay on '%s'", a[0]);
		return -1;
	}
	return 0;
}

/*
 * An image's root: BASE/N-1 (top) ... BASE/0 (bottom) as lowers, named relative to BASE
 * (overlayfs resolves them from our working directory): 500 layers take ~2.4 KB of the
 * one page the mount options may fill, where absolute paths would not fit.
 */
static int mount_layers(char *const *a, char *msg, size_t len)
{
	int n = layer_count(a[2]), w, r;
	char opts[4096];
	size_t at;

	w = snprintf(opts, sizeof(opts), "lowerdir=");
	at = (size_t)w;
	for (int i = n - 1; i >= 0 && at < sizeof(opts); i--) {
		w = snprintf(opts + at, sizeof(opts) - at, "%d%s", i, i ? ":" : "");
		at += w > 0 ? (size_t)w : sizeof(opts);
	}
	if (at < sizeof(opts)) {
		w = snprintf(opts + at, sizeof(opts) - at, ",upperdir=%s,workdir=%s,userxattr",
		             a[3], a[4]);
		at += w > 0 ? (size_t)w : sizeof(opts);
	}
	if (at >= sizeof(opts)) {
		errno = ENAMETOOLONG;
		snprintf(msg, len, "cannot mount the image's %d layers on '%s'", n, a[0]);
		return -1;
	}
	if (chdir(a[1]) < 0) {
		snprintf(msg, len, "cannot enter '%s'", a[1]);
		return -1;
	}
	r = mount("overlay", a[0], "overlay", MS_NOSUID | MS_NODEV, opts);
	{
		int e = errno;

		if (chdir("/") < 0 && r == 0) {
			snprintf(msg, len, "cannot return to '/'");
			return -1;
		}
		errno = e;
	}
	if (r < 0) {
		snprintf(msg, len, "cannot mount the image's %d layers on '%s'", n, a[0]);
		return -1;
	}
	return 0;
}

/*
 * The image's root becomes the root: the sandbox's /proc, /dev, /tmp and /workspace move
 * into it (onto directories; an image whose /proc is a symlink or a file is refused, not
 * followed), then pivot_root, and the old root (bwrap's, with the staging place) goes.
 */
static int pivot_into(const char *root, char *msg, size_t len)
{
	static const char *const moved[] = {"/proc", "/dev", "/tmp", "/workspace"};
	char dst[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		snprintf(dst, sizeof(dst), "%s%s", root, moved[i]);
		if (mkdir(dst, 0755) < 0 && errno != EEXIST) {
			snprintf(msg, len, "cannot make '%s' in the image's root", moved[i]);
			return -1;
		}
		if (lstat(dst, &st) < 0 || !S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			snprintf(msg, len, "the image's '%s' is not a directory", moved[i]);
			return -1;
		}
		if (mount(moved[i], dst, NULL, MS_MOVE, NULL) < 0) {
			snprintf(msg, len, "cannot move '%s' into the image's root", moved[i]);
			return -1;
		}
	}
	if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		snprintf(msg, len, "cannot make '%s' the root", root);
		return -1;
	}
	return 0;
}

/*
 * An overlay whose upper is in memory: MEMDIR (a new directory on the staging tmpfs, which
 * is detached after) holds its upper and work directories. Where tmpfs cannot hold the
 * overlay's user.* xattrs (Linux before 6.6), UPPER and WORK on disk, as --overlay.
 */
static int mount_overlay_mem(char *const *a, char *msg, size_t len)
{
	char up[PATH_MAX], work[PATH_MAX];
	char *const mem[4] = {a[0], a[1], up, work};

	if (snprintf(up, sizeof(up), "%s/upper", a[4]) >= (int)sizeof(up) ||
	    snprintf(work, sizeof(work), "%s/work", a[4]) >= (int)sizeof(work)) {
		errno = ENAMETOOLONG;
		snprintf(msg, len, "cannot make an overlay's upper in memory at '%s'", a[4]);
		return -1;
	}
	if (mkdir(a[4], 0755) < 0 || mkdir(up, 0755) < 0 || mkdir(work, 0755) < 0) {
		snprintf(msg, len, "cannot make an overlay's upper in memory at '%s'", a[4]);
		return -1;
	}
	if (setxattr(up, "user.arl-batch", "", 0, 0) < 0)
		return mount_overlay(a, msg, len);
	removexattr(up, "user.arl-batch");
	return mount_overlay(mem, msg, len);
}

/* /dev/null over a file: a host secret the overlay shows again (RDONLY: writes stay refused). */
static int mount_mask(const char *path, char *msg, size_t len)
{
	struct stat st;

	if (lstat(path, &st) < 0 && errno == ENOENT)
		return 0;
	if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) <
	        0) {
		snprintf(msg, len, "cannot mask '%s'", path);
		return -1;
	}
	return 0;
}

static int mount_tmpfs(const char *path, char *msg, size_t len)
{
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) {
		snprintf(msg, len, "cannot mount a tmpfs on '%s'", path);
		return -1;
	}
	return 0;
}

/*
 * No user namespace may be created in the sandbox's (bwrap's --disable-userns nests the
 * sandbox in a second user namespace, where the agent could no longer mount). The limit is
 * the sandbox namespace's own sysctl, which uid 0 without capabilities cannot raise again;
 * written through a procfs of our own at @dir, since steps' /proc/sys is read-only.
 */
static int forbid_userns(const char *dir, int allowed, char *msg, size_t len)
{
	int fd = -1, ok;

	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    mount("proc", dir, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		snprintf(msg, len, "cannot mount a procfs on '%s'", dir);
		return -1;
	}
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/sys/user/max_user_namespaces", dir);
		fd = open(path, O_WRONLY | O_CLOEXEC);
	}
	ok = fd >= 0 && write(fd, allowed ? "1\n" : "0\n", 2) == 2;
	if (!ok)
		snprintf(msg, len, "cannot forbid user namespaces");
	if (fd >= 0)
		close(fd);
	if (umount2(dir, MNT_DETACH) < 0 && ok) {
		snprintf(msg, len, "cannot detach '%s'", dir);
		ok = 0;
	}
	return ok ? 0 : -1;
}

/* Writes the maps of process @pid's user namespace (our child's part of as_user()). */
static int write_maps(pid_t pid, unsigned long u, unsigned long g)
{
	static const char *const files[] = {"setgroups", "uid_map", "gid_map"};
	char map[3][32], path[64];

	snprintf(map[0], sizeof(map[0]), "deny");
	snprintf(map[1], sizeof(map[1]), "%lu 0 1\n", u);
	snprintf(map[2], sizeof(map[2]), "%lu 0 1\n", g);
	for (int i = 0; i < 3; i++) {
		ssize_t want = (ssize_t)strlen(map[i]);
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, map[i], (size_t)want) != want)
			return -1;
		close(fd);
	}
	return 0;
}

/*
 * The image's User: we enter a user namespace of our own where @uid and @gid are the
 * sandbox's 0 (the host's sandbox uid), then become them. Files of the sandbox's uid, every
 * file of the image, are the User's there. The maps are written from the sandbox's namespace
 * by a child forked before the unshare, which still has the capabilities that takes
 * (CAP_SETFCAP, to map the sandbox's 0); we could not write our own once inside.
 */
static int as_user(const char *uid, const char *gid, char *msg, size_t len)
{
	unsigned long u = strtoul(uid, NULL, 10), g = strtoul(gid, NULL, 10);
	pid_t self = getpid(), child;
	int p[2], status = 0, r = -1;
	char go = 1;

	if (pipe2(p, O_CLOEXEC) < 0 || (child = fork()) < 0) {
		snprintf(msg, len, "cannot make the user namespace of uid %s", uid);
		return -1;
	}
	if (child == 0) {
		close(p[1]);
		if (read(p[0], &go, 1) != 1 || go != 1)
			_exit(2);
		_exit(write_maps(self, u, g) < 0 ? 1 : 0);
	}
	close(p[0]);
	if (unshare(CLONE_NEWUSER) < 0) {
		snprintf(msg, len, "cannot make the user namespace of uid %s", uid);
		go = 0;
	}
	if (write(p[1], &go, 1) != 1)
		go = 0;
	close(p[1]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!go)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errno = EPERM;
		snprintf(msg, len, "cannot map uid %s and gid %s to the sandbox's", uid, gid);
	} else if (setresgid((gid_t)g, (gid_t)g, (gid_t)g) < 0 ||
	           setresuid((uid_t)u, (uid_t)u, (uid_t)u) < 0) {
		snprintf(msg, len, "cannot become uid %s gid %s", uid, gid);
	} else {
		r = 0;
	}
	return r;
}

int arl_agent_plan_apply(char *const *args, int n, char *msg, size_t len)
{
	int nested = 0;

	for (int i = 0; i < n; i++)
		nested |= !strcmp(args[i], "--as-user");
	for (int i = 0; i < n;) {
		const struct plan_op *op = find_op(args[i]);
		char *const *a = args + i + 1;
		int r = 0;

		if (!strcmp(op->name, "--overlay"))
			r = mount_overlay(a, msg, len);
		else if (!strcmp(op->name, "--overlay-mem"))
			r = mount_overlay_mem(a, msg, len);
		else if (!strcmp(op->name, "--mask"))
			r = mount_mask(a[0], msg, len);
		else if (!strcmp(op->name, "--tmpfs"))
			r = mount_tmpfs(a[0], msg, len);
		else if (!strcmp(op->name, "--no-userns"))
			r = forbid_userns(a[0], nested, msg, len);
		else if (!strcmp(op->name, "--layers"))
			r = mount_layers(a, msg, len);
		else if (!strcmp(op->name, "--pivot"))
			r = pivot_into(a[0], msg, len);
		else if (!strcmp(op->name, "--as-user"))
			r = as_user(a[0], a[1], msg, len);
		else if ((r = umount2(a[0], MNT_DETACH)) < 0)
			snprintf(msg, len, "cannot detach '%s'", a[0]);
		if (r < 0)
			return -1;
		i += 1 + op->operands;
	}
	return 0;
}
