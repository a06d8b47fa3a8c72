/*
 * The bubblewrap command line a step runs under, the environment it reads from fd 3, and the
 * probes open() runs (see DESIGN in backend_local.c).
 */
#include "local/bwrap.h"

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
#include "local/identity.h"
#include "local/local.h"
#include "local/sandbox_dir.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define PROBE_TIMEOUT_MS 15000

/* bwrap's own environment: none (the step's comes through --args, see arl_local_env_args()). */
char *const arl_local_no_env[] = {NULL};

/*
 * The bwrap command line up to and including "--". @ws is the host directory bound at
 * /workspace (as root: the mount point the child binds the sandbox on), @workdir the
 * absolute working directory inside. The environment comes through fd 3 (arl_local_env_args()).
 */
void arl_local_bwrap_argv(const struct local *L, struct strvec *v, const char *ws,
                          const char *workdir, bool network)
{
	static const char *const head[] = {"--die-with-parent", "--unshare-pid", "--unshare-ipc",
	                                   "--unshare-uts", "--unshare-cgroup-try"};
	static const char *const masked[] = {"/etc/shadow", "/etc/gshadow", "/etc/shadow-",
	                                     "/etc/gshadow-", "/etc/security/opasswd"};
	static const char *const proc_ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
	                                      "/proc/bus"};

	arl_local_sv_push(v, L->bwrap);
	/*
	 * As root, bwrap runs as the sandbox uid (see DESIGN in backend_local.c) and maps it to 0 inside, as steps
	 * had it; nested user namespaces are refused, like a plain user's would be.
	 */
	if (L->drop) {
		static const char *const user[] = {"--unshare-user", "--uid", "0",
		                                   "--gid",          "0",     "--disable-userns"};

		for (size_t i = 0; i < sizeof(user) / sizeof(user[0]); i++)
			arl_local_sv_push(v, user[i]);
	}
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		arl_local_sv_push(v, head[i]);
	if (!network)
		arl_local_sv_push(v, "--unshare-net");
	arl_local_sv_push(v, "--new-session");
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
	for (size_t i = 0; i < L->root_args.n; i++)
		arl_local_sv_push(v, L->root_args.v[i]);
	for (size_t i = 0; network && i < L->net_args.n; i++)
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
	arl_local_sv_push(v, "--bind");
	arl_local_sv_push(v, ws);
	arl_local_sv_push(v, WS_INSIDE);
	arl_local_sv_push(v, "--chdir");
	arl_local_sv_push(v, workdir);
	arl_local_sv_push(v, "--hostname");
	arl_local_sv_push(v, "sandbox");
	arl_local_sv_push(v, "--args");
	arl_local_sv_push(v, "3");
	arl_local_sv_push(v, "--");
}

/*
 * The step's environment as bwrap options ("--clearenv", then "--setenv K V" for each
 * "K=V" of @env), NUL-separated in a sealed memfd for bwrap's --args: bwrap itself starts
 * with an empty environment (so LD_PRELOAD and the like never act on the host side), and
 * values stay out of argv, which every user can read in /proc. Returns the fd or -1.
 */
int arl_local_env_args(char *const *env, struct arl_err *err)
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

/* Runs `true` in a sandbox built exactly as steps' are, so open() fails with advice. */
int arl_local_probe_bwrap(struct local *L, const char *pool_name, bool network, struct arl_err *err)
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
	if ((dfd = arl_local_create_dir(L, L->sb_uid, L->sb_gid, &d, err)) < 0) {
		arl_err_prefix(err, "pool '%s'", pool_name);
		goto out;
	}
	close(dfd);
	ws = arl_xasprintf("%s/%s", L->state_dir, d.name);
	arl_local_bwrap_argv(L, &argv, L->drop ? ROOT_MNT : ws, WS_INSIDE, network);
	arl_local_sv_push(&argv, "true");
	if ((args_fd = arl_local_env_args(env, err)) < 0 ||
	    (L->drop && (ws_fd = arl_local_sandbox_fd(L, d.name, err)) < 0)) {
		arl_err_prefix(err, "pool '%s'", pool_name);
		goto out;
	}
	arl_local_step_ident(L, false, &id, ws_fd, args_fd);
	so.ident = &id;
	so.argv = argv.v;
	so.envp = arl_local_no_env;
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
	arl_local_drop_dir(L, &d);
	if (args_fd >= 0)
		close(args_fd);
	if (ws_fd >= 0)
		close(ws_fd);
	arl_spawn_result_release(&sr);
	arl_local_sv_release(&argv);
	free(ws);
	return ret;
}
