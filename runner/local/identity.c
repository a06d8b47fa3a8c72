/* Who a local step runs as, and where, as root, it finds its sandbox. */
#include "local/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local/local.h"
#include "util.h"
#include "banned.h"

/* The sandbox uid and gid as root, unless ARL_SANDBOX_UID/ARL_SANDBOX_GID say otherwise. */
#define SANDBOX_ID_DEFAULT 65530

/* As root, the host uid (and gid) @pool's steps run as, which owns its directories. */
uid_t arl_local_pool_uid(const struct local *L, const struct arl_pool *pool)
{
	return arl_local_pool(pool)->isolation == ARL_ISO_NONE ? L->none_uid : L->sb_uid;
}

gid_t arl_local_pool_gid(const struct local *L, const struct arl_pool *pool)
{
	return arl_local_pool(pool)->isolation == ARL_ISO_NONE ? L->none_gid : L->sb_gid;
}

/*
 * Who a step's process is (see DESIGN in backend_local.c): never one with our keyrings, and as root the uid of
 * bwrap steps or, @none, of isolation none steps, with the sandbox directory @ws_fd (an O_PATH
 * fd; -1: none) bound on ROOT_MNT where that uid can reach it. @args_fd (or -1) becomes fd 3.
 */
void arl_local_step_ident(const struct local *L, bool none, struct arl_spawn_ident *id, int ws_fd,
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
 * An O_PATH fd of sandbox @name for arl_local_step_ident() (the caller closes it): the child binds that
 * very directory, resolving no path as root.
 */
int arl_local_sandbox_fd(const struct local *L, const char *name, struct arl_err *err)
{
	int fd = openat(L->state_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return arl_error_errno(err, errno, "cannot open sandbox '%s/%s'", L->state_dir,
		                       name);
	return fd;
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
int arl_local_sandbox_ids(struct local *L, struct arl_err *err)
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
int arl_local_make_root_mnt(struct arl_err *err)
{
	static const char *const dirs[] = {ROOT_MNT_DIR, ROOT_MNT, ROOT_LOWER};
	struct stat st;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
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
	/* A file mount point: the agent is bound on it in the child's own mount namespace. */
	{
		int fd = open(ROOT_AGENT, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);

		if (fd < 0 || fstat(fd, &st) < 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return arl_error_errno(err, e, "cannot create '%s'", ROOT_AGENT);
		}
		close(fd);
		if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
			return arl_error(err, ARL_E_SYS,
			                 "'%s' must be a file of root's that only root can write",
			                 ROOT_AGENT);
	}
	return 0;
}
