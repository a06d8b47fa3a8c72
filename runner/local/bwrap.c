/*
 * The bubblewrap command line a step runs under, the environment it reads from fd 3, and the
 * probes open() runs (see DESIGN in backend_local.c).
 */
#include "local/bwrap.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "local/container.h"
#include "local/identity.h"
#include "local/image_root.h"
#include "local/local.h"
#include "local/sandbox_dir.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define PROBE_TIMEOUT_MS 15000

/* bwrap's own environment: none (a step's comes in its EXEC, see container.h). */
char *const arl_local_no_env[] = {NULL};

/*
 * The command line of a sandbox's container: bwrap, whose first process is the agent
 * @agent (a host path, as root the mount point the child binds it on) serving fd 3, with
 * the sandbox directory @ws (as root: the mount point the child binds it on) at /workspace.
 * With the copy-on-write root (L->cow.skel), @ws holds the uppers instead and /workspace is
 * an overlay on @ws_lower (NULL: an empty one); the agent mounts it from the plan after its
 * "--fd 3".
 */
void arl_local_bwrap_argv(const struct local *L, struct strvec *v, const char *ws,
                          const char *ws_lower, const char *agent, bool network,
                          const struct local_image *img, bool all_on_disk)
{
	/*
	 * uid 0 in a user namespace of its own, mapped to the uid bwrap runs as: the sandbox uid
	 * as root (see DESIGN in backend_local.c), our own otherwise; nested user namespaces
	 * are refused.
	 */
	static const char *const head[] = {"--unshare-user",
	                                   "--uid",
	                                   "0",
	                                   "--gid",
	                                   "0",
	                                   "--disable-userns",
	                                   "--die-with-parent",
	                                   "--unshare-pid",
	                                   "--as-pid-1",
	                                   "--unshare-ipc",
	                                   "--unshare-uts",
	                                   "--unshare-cgroup-try"};
	static const char *const masked[] = {"/etc/shadow", "/etc/gshadow", "/etc/shadow-",
	                                     "/etc/gshadow-", "/etc/security/opasswd"};
	static const char *const proc_ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
	                                      "/proc/bus"};
	const bool cow = L->cow.skel != NULL;

	arl_local_sv_push(v, L->bwrap);
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		/*
		 * --disable-userns nests the sandbox in a second user namespace, where the agent
		 * cannot mount: the plan's --no-userns forbids them instead (cow_root.h).
		 */
		if (!cow || strcmp(head[i], "--disable-userns"))
			arl_local_sv_push(v, head[i]);
	if (!network)
		arl_local_sv_push(v, "--unshare-net");
	arl_local_sv_push(v, "--new-session");
	if (cow) {
		/*
		 * The agent mounts the overlays with the few capabilities (of the sandbox's user
		 * namespace only) these add, and drops them all before its HELLO, so before any
		 * step runs; the binds under /usr and /etc are made by the agent too, as an
		 * overlay on /etc would hide bwrap's.
		 */
		/*
		 * A dynamic agent (a sanitizer build's) needs the host's loader before its
		 * overlay goes on /usr; a release build's is static.
		 */
		if (L->agent_dynamic) {
			arl_local_sv_push(v, "--ro-bind");
			arl_local_sv_push(v, "/usr");
			arl_local_sv_push(v, "/usr");
		}
		if (img)
			arl_local_image_bwrap_args(img, v, ws, ws_lower);
		else
			arl_cow_root_bwrap_args(&L->cow, v, ws, ws_lower);
		goto rest;
	}
	arl_local_sv_push(v, "--cap-drop");
	arl_local_sv_push(v, "ALL");
	arl_local_sv_push(v, "--ro-bind");
	arl_local_sv_push(v, "/usr");
	arl_local_sv_push(v, "/usr");
	arl_local_sv_push(v, "--ro-bind");
	arl_local_sv_push(v, "/etc");
	arl_local_sv_push(v, "/etc");
	/*
	 * The host's secrets, should /etc show them to the step's uid (it never is the host's
	 * root now; kept as a second wall). -try: a file the host lacks is skipped.
	 */
	for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
		arl_local_sv_push(v, "--ro-bind-try");
		arl_local_sv_push(v, "/dev/null");
		arl_local_sv_push(v, masked[i]);
	}
	if (L->etc_ssh) { /* host keys; a tmpfs needs an existing mount point */
		arl_local_sv_push(v, "--tmpfs");
		arl_local_sv_push(v, "/etc/ssh");
	}
rest:
	/* With an image only a dynamic agent needs them (its loader, before the pivot). */
	for (size_t i = 0; (!img || L->agent_dynamic) && i < L->root_args.n; i += 3) {
		/* Real directories are trees of the copy-on-write root (backend open). */
		if (cow && !strcmp(L->root_args.v[i], "--ro-bind"))
			continue;
		for (size_t k = i; k < i + 3; k++)
			arl_local_sv_push(v, L->root_args.v[k]);
	}
	for (size_t i = 0; network && !img && i < L->net_args.n; i++)
		arl_local_sv_push(v, L->net_args.v[i]);
	arl_local_sv_push(v, "--proc");
	arl_local_sv_push(v, "/proc");
	/*
	 * Read-only over the new /proc: sysctls of the step's own namespaces would be writable
	 * (bwrap covers these only when it can write them itself), and nothing here is a
	 * step's business. Host sysctls are refused by uid anyway.
	 */
	for (size_t i = 0; i < sizeof(proc_ro) / sizeof(proc_ro[0]); i++) {
		arl_local_sv_push(v, "--ro-bind-try");
		arl_local_sv_push(v, proc_ro[i]);
		arl_local_sv_push(v, proc_ro[i]);
	}
	arl_local_sv_push(v, "--dev");
	arl_local_sv_push(v, "/dev");
	arl_local_sv_push(v, "--tmpfs");
	arl_local_sv_push(v, "/tmp");
	if (!cow) {
		arl_local_sv_push(v, "--bind");
		arl_local_sv_push(v, ws);
		arl_local_sv_push(v, WS_INSIDE);
	}
	arl_local_sv_push(v, "--ro-bind");
	arl_local_sv_push(v, agent);
	arl_local_sv_push(v, AGENT_INSIDE);
	arl_local_sv_push(v, "--chdir");
	arl_local_sv_push(v, WS_INSIDE);
	arl_local_sv_push(v, "--hostname");
	arl_local_sv_push(v, "sandbox");
	arl_local_sv_push(v, "--");
	arl_local_sv_push(v, AGENT_INSIDE);
	arl_local_sv_push(v, "--fd");
	arl_local_sv_push(v, "3");
	if (img)
		arl_local_image_plan(img, v);
	else if (cow)
		arl_cow_root_plan(&L->cow, v, masked, sizeof(masked) / sizeof(masked[0]),
		                  L->etc_ssh ? "/etc/ssh" : NULL, all_on_disk);
}

bool arl_local_elf_dynamic(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	bool interp = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) &&
	    !memcmp(eh.e_ident, ELFMAG, SELFMAG) && eh.e_ident[EI_CLASS] == ELFCLASS64)
		for (unsigned i = 0; i < eh.e_phnum && !interp; i++) {
			off_t at = (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize);

			if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph))
				break;
			interp = ph.p_type == PT_INTERP;
		}
	close(fd);
	return interp;
}

/* The absolute path of bwrap in our PATH, or NULL. */
char *arl_local_find_bwrap(void)
{
	const char *path = getenv("PATH");
	char *full = NULL;

	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	/* Relative entries would depend on our cwd: no directory fd, so only absolute ones count. */
	if (arl_spawn_search_path("bwrap", path, -1, &full) != 0)
		return NULL;
	return full;
}

/*
 * The host's top-level /bin, /sbin and /lib* as they are: symlinks into /usr on merged-/usr
 * systems (recreated as symlinks), real directories elsewhere (bound read-only).
 */
void arl_local_probe_root_layout(struct local *L)
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
			arl_local_sv_push(&L->root_args, "--symlink");
			arl_local_sv_push(&L->root_args, target);
			arl_local_sv_push(&L->root_args, path);
		} else if (S_ISDIR(st.st_mode)) {
			arl_local_sv_push(&L->root_args, "--ro-bind");
			arl_local_sv_push(&L->root_args, path);
			arl_local_sv_push(&L->root_args, path);
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
			arl_local_sv_push(&L->net_args, "--ro-bind-try");
			arl_local_sv_push(&L->net_args, canon);
			arl_local_sv_push(&L->net_args, canon);
		}
		free(canon);
	}
}

/*
 * Starts and ends a container built exactly as attempts' are (the agent answering), so open()
 * fails with advice.
 */
int arl_local_probe_bwrap(struct local *L, const char *pool_name, bool network, struct arl_err *err)
{
	struct arl_sandbox sb = {0};
	struct arl_err why = ARL_ERR_INIT;
	int ret = -1, dfd;

	/* A real sandbox directory, as the steps' uid gets it (ownership, the root bind). */
	if ((dfd = arl_local_create_dir(L, L->sb_uid, L->sb_gid, &sb.dir, err)) < 0) {
		arl_err_prefix(err, "pool '%s'", pool_name);
		return -1;
	}
	if (L->cow.skel && arl_cow_root_make_uppers(&L->cow, dfd, err) < 0) {
		arl_err_prefix(err, "pool '%s'", pool_name);
		close(dfd);
		arl_local_drop_dir(L, &sb.dir);
		return -1;
	}
	close(dfd);
	sb.path = arl_xasprintf("%s/%s", L->state_dir, sb.dir.name);
	if (arl_local_container_start(L, &sb, network, arl_now_ms() + PROBE_TIMEOUT_MS, &why) < 0) {
		if (why.code == ARL_E_CANCELLED)
			arl_error(err, ARL_E_BACKEND, "pool '%s': cancelled while checking bwrap",
			          pool_name);
		else
			arl_error(
			    err, ARL_E_BACKEND,
			    "pool '%s': bwrap cannot create a sandbox (%s): allow unprivileged "
			    "user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
			    "user.max_user_namespaces=15000, "
			    "kernel.apparmor_restrict_unprivileged_userns=0), or set "
			    "'isolation: none' on the pool",
			    pool_name, why.msg);
	} else {
		ret = 0;
	}
	arl_local_container_stop(&sb);
	arl_local_drop_dir(L, &sb.dir);
	free(sb.path);
	return ret;
}
