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
 */
#include "agent/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

struct plan_op {
	const char *name;
	int operands;
};

static const struct plan_op plan_ops[] = {
    {"--overlay", 4}, {"--mask", 1}, {"--tmpfs", 1}, {"--detach", 1}, {"--no-userns", 1},
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

static int operand_ok(const struct plan_op *op, int k, const char *arg)
{
	if (op->operands != 4)
		return path_ok(arg, "");
	return k == 2 ? lowers_ok(arg) : path_ok(arg, ",:\\");
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

static int mount_overlay(char *const *a, char *msg, size_t len)
{
	char opts[4 * PATH_MAX + 64];
	int n = snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", a[1],
	                 a[2], a[3]);

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
static int forbid_userns(const char *dir, char *msg, size_t len)
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
	ok = fd >= 0 && write(fd, "0\n", 2) == 2;
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

int arl_agent_plan_apply(char *const *args, int n, char *msg, size_t len)
{
	for (int i = 0; i < n;) {
		const struct plan_op *op = find_op(args[i]);
		char *const *a = args + i + 1;
		int r = 0;

		if (!strcmp(op->name, "--overlay"))
			r = mount_overlay(a, msg, len);
		else if (!strcmp(op->name, "--mask"))
			r = mount_mask(a[0], msg, len);
		else if (!strcmp(op->name, "--tmpfs"))
			r = mount_tmpfs(a[0], msg, len);
		else if (!strcmp(op->name, "--no-userns"))
			r = forbid_userns(a[0], msg, len);
		else if ((r = umount2(a[0], MNT_DETACH)) < 0)
			snprintf(msg, len, "cannot detach '%s'", a[0]);
		if (r < 0)
			return -1;
		i += 1 + op->operands;
	}
	return 0;
}
