/*
 * DESIGN
 *
 * Everything is prepared before the child exists: the program is resolved against the PATH
 * the child will see, the working directory and stdin are opened here (so a bad cwd or stdin
 * is reported as such, not as a failed exec), and the file actions only dup2 and fchdir.
 * Every fd we open is CLOEXEC because other workers spawn at the same time; dup2 clears the
 * flag on the child's 0, 1 and 2 only. glibc's posix_spawn (clone + CLONE_VFORK) reports exec
 * failures as its return value, so "cannot run" errors need no extra pipe.
 *
 * The child leads its own process group (SETPGROUP, pgid 0), starts with an empty signal mask
 * (workers block every signal) and default dispositions. One poll() loop then watches, at
 * once, the stdout and stderr pipes, a pidfd of the child and the caller's cancel fd, so a
 * child filling one pipe while we wait on the other cannot deadlock, and deadlines need no
 * SIGCHLD or timer threads.
 *
 * The pidfd turns readable when the child exits, but we do not reap it until the very end:
 * an unreaped zombie keeps its pid, and with it our process-group id, from being reused.
 * That makes every kill(-pid, ...) safe, including the SIGKILL sent to the rest of the group
 * once the main process exits (background grandchildren would otherwise keep the pipes open
 * and hang us). Processes that left the group (setsid) cannot be killed that way; we read
 * their output for at most DRAIN_MS more and then stop listening.
 *
 * With an identity (arl_spawn_ident: other ids, a mount namespace, a fresh keyring, an fd 3),
 * posix_spawn cannot do it, and fork() would copy our page tables per step (3-9 ms measured
 * at 10-100 MB of RSS against 1 ms). So the child is glibc's own way, clone(CLONE_VM |
 * CLONE_VFORK) on a stack of its own, running raw system calls only (see child_main()); it
 * reports a failure before exec through a CLOEXEC pipe (EOF means exec happened).
 *
 * Output is capped per stream: the first half is kept in a linear buffer, the last half in a
 * ring, so memory stays within capture_max however much the program prints.
 *
 * timed_out and cancelled record the first cause only: once SIGTERM went out for one, the
 * other changes nothing. Relative cwd-dependent paths (argv[0] with a '/', stdin_path, PATH
 * entries) are resolved as the child sees them, in its working directory.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/keyctl.h>

#include "capture.h"
#include "util.h"
#include "banned.h"

/* How long we keep reading after the group was killed, for fds held outside the group. */
#define DRAIN_MS 1000
/* One read per wakeup: a pipe holds 64 KiB by default, so this usually empties it. */
#define READ_CHUNK (64 * 1024)
/* glibc's execvp() default when PATH is unset. */
#define DEFAULT_PATH "/bin:/usr/bin"

/* The child from spawn to reap. */
struct proc {
	pid_t pid; /* > 0 from posix_spawn until reaped */
	int pidfd;
	bool exited;      /* the pidfd fired: a zombie now, still holding our pgid */
	bool terminating; /* SIGTERM sent (deadline or cancel) */
	int64_t kill_at;  /* when to escalate to SIGKILL; 0: not pending */
};

int arl_spawn_search_path(const char *name, const char *path, int dirfd, char **out)
{
	const char *p, *end;
	int why = ENOENT;
	struct stat st;
	char *cand;

	for (p = path;; p = end + 1) {
		end = strchrnul(p, ':');
		/* An empty entry means the current directory, as in execvp(). */
		if (end == p)
			cand = arl_xasprintf("./%s", name);
		else
			cand = arl_xasprintf("%.*s/%s", (int)(end - p), p, name);
		if (!fstatat(dirfd, cand, &st, 0) && S_ISREG(st.st_mode)) {
			if (!faccessat(dirfd, cand, X_OK, 0)) {
				*out = cand;
				return 0;
			}
			/* Like execvp(): found but not executable beats not found. */
			why = EACCES;
		}
		free(cand);
		if (!*end)
			break;
	}
	return why;
}

/*
 * execvp()'s search, but in the PATH of the child's environment (posix_spawnp would use
 * ours) and relative to the child's working directory @dirfd. Names with a '/' are used as
 * they are. The result is malloc'd.
 */
static int find_program(const char *name, char *const *envp, int dirfd, char **out,
                        struct arl_err *err)
{
	const char *path = NULL;
	int why;

	if (strchr(name, '/')) {
		*out = arl_xstrdup(name);
		return 0;
	}
	for (char *const *e = envp; e && *e && !path; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	/* getenv() is safe here: nothing in the runner calls setenv() once threads run. */
	if (!path)
		path = getenv("PATH");
	if (!path)
		path = DEFAULT_PATH;
	if ((why = arl_spawn_search_path(name, path, dirfd, out)) == 0)
		return 0;
	return arl_error_errno(err, why, "cannot run '%s'", name);
}

/* Signals the child's group; the group id stays ours until we reap the child. */
static void signal_group(const struct proc *p, int sig)
{
	/* A program that moved itself to another group left ours empty: reach it directly. */
	if (kill(-p->pid, sig) < 0 && errno == ESRCH)
		kill(p->pid, sig);
}

static void terminate(struct proc *p, int64_t now, int64_t grace_ms)
{
	p->terminating = true;
	signal_group(p, SIGTERM);
	p->kill_at = now + grace_ms;
}

/* Waits for the child, retrying on EINTR; returns the exit code (128+signal when killed). */
static int reap(struct proc *p)
{
	int status = 0;

	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* One read from readable pipe @i; closes it at EOF or on a read error. True when bytes came. */
static bool capture_read(struct arl_capture *c, int i, char *buf, const struct arl_spawn_opts *o)
{
	ssize_t n;

	do
		n = read(c->fd, buf, READ_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		arl_capture_add(c, buf, (size_t)n);
		if (o->on_output)
			o->on_output(o->output_arg, i, buf, (size_t)n);
		return true;
	}
	close(c->fd);
	c->fd = -1;
	return false;
}

/*
 * The poll loop: reads both pipes, fires the deadline and the SIGKILL escalation, honours
 * the cancel fd, and on the main process's exit kills what is left of its group and drains
 * the pipes for at most DRAIN_MS. Returns with the child exited but not reaped.
 */
static int watch(struct proc *p, struct arl_capture cap[2], const struct arl_spawn_opts *o,
                 int64_t grace_ms, struct arl_spawn_result *r, struct arl_err *err)
{
	struct pollfd pfd[4];
	int ipipe[2], ipid, icancel, nfds, timeout, ret = -1;
	int64_t now, wake, drain_until = 0, last_out = arl_clock_now(&o->clock);
	char *buf = arl_xmalloc(READ_CHUNK);
	bool stall;

	for (;;) {
		if (p->exited && cap[0].fd < 0 && cap[1].fd < 0)
			break;
		nfds = 0;
		ipid = icancel = -1;
		for (int i = 0; i < 2; i++) {
			ipipe[i] = -1;
			if (cap[i].fd >= 0) {
				ipipe[i] = nfds;
				pfd[nfds++] = (struct pollfd){.fd = cap[i].fd, .events = POLLIN};
			}
		}
		if (!p->exited) {
			ipid = nfds;
			pfd[nfds++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
		}
		/* Level-triggered and shared by many runs: watched, never read. */
		if (o->cancel_fd >= 0 && !p->exited && !p->terminating) {
			icancel = nfds;
			pfd[nfds++] = (struct pollfd){.fd = o->cancel_fd, .events = POLLIN};
		}

		now = arl_clock_now(&o->clock);
		wake = INT64_MAX;
		stall = false;
		if (p->exited) {
			wake = drain_until;
		} else if (p->kill_at) {
			wake = p->kill_at;
		} else if (!p->terminating) {
			if (o->deadline_ms > 0)
				wake = o->deadline_ms;
			/* Silence: the deadline wins a tie, being the harder limit. */
			if (o->stall_ms > 0 && last_out + o->stall_ms < wake) {
				wake = last_out + o->stall_ms;
				stall = true;
			}
		}
		if (now >= wake) {
			if (p->exited) {
				/* Whoever still holds the pipes is not ours to wait for. */
				r->lingering = true;
				break;
			}
			if (p->kill_at) {
				signal_group(p, SIGKILL);
				p->kill_at = 0;
			} else {
				r->timed_out = true;
				r->stalled = stall;
				terminate(p, now, grace_ms);
			}
			continue;
		}
		timeout =
		    wake == INT64_MAX ? -1 : (int)(wake - now < INT_MAX ? wake - now : INT_MAX);

		if (poll(pfd, (nfds_t)nfds, timeout) < 0) {
			if (errno == EINTR)
				continue;
			arl_error_errno(err, errno, "cannot wait for '%s': poll", o->argv[0]);
			goto out;
		}
		for (int i = 0; i < 2; i++)
			if (ipipe[i] >= 0 && pfd[ipipe[i]].revents &&
			    capture_read(&cap[i], i, buf, o) && o->stall_ms > 0)
				last_out = arl_clock_now(&o->clock);
		if (ipid >= 0 && pfd[ipid].revents) {
			p->exited = true;
			/* Background children would hold the pipes open for as long as they run. */
			signal_group(p, SIGKILL);
			drain_until = arl_clock_now(&o->clock) + DRAIN_MS;
		}
		if (icancel >= 0 && pfd[icancel].revents && !p->exited) {
			r->cancelled = true;
			terminate(p, arl_clock_now(&o->clock), grace_ms);
		}
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

/* What the clone()d child needs; it writes only what (we are stopped meanwhile). */
struct child_args {
	const char *prog;
	char *const *argv, *const *envp;
	int in_fd, out_fd, err_fd, cwd_fd;
	const struct arl_spawn_ident *id;
	int report_fd; /* CLOEXEC: EOF at exec, a struct child_report when a step failed */
	const char *what;
};

/* Why the child failed before exec: the errno and which step. */
struct child_report {
	int err;
	const char *what; /* a literal: the same address in a forked child */
};

/* The kernel's struct sigaction (glibc's differs); SIG_DFL needs no restorer. */
struct ksigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long long mask;
};

#define CHILD_STACK (64 * 1024)

/*
 * The child of spawn_ident(). It shares our memory and runs on the stopped thread's TLS, so
 * it makes raw system calls only: no libc state, no sanitizer interceptor (they would touch
 * the parent's bookkeeping), nothing that allocates. Order matters: the mount namespace and
 * the ids need root, so they come after the fds and the directory and before the keyring,
 * which is then created by, and owned by, the new uid.
 */
__attribute__((no_sanitize("address", "thread", "undefined"), noinline)) static int
child_main(void *arg)
{
	struct child_args *a = arg;
	const struct arl_spawn_ident *id = a->id;
	struct ksigaction dfl = {.handler = SIG_DFL};
	struct child_report rep;
	unsigned long long none = 0;

#define CHILD_TRY(call, step)                                                                      \
	do {                                                                                       \
		if ((call) < 0) {                                                                  \
			a->what = (step);                                                          \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)
	/* Handlers are copies of ours (no CLONE_SIGHAND), and exec keeps ignored signals. */
	for (int sig = 1; sig < 65; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(none));
	CHILD_TRY(syscall(SYS_setpgid, 0, 0), "setpgid");
	for (size_t i = 0; i < id->ncgroup_fds; i++) /* "0": the writer itself */
		CHILD_TRY(syscall(SYS_write, id->cgroup_fds[i], "0", 1), "join cgroup");
	CHILD_TRY(syscall(SYS_dup3, a->in_fd, 0, 0), "dup");
	CHILD_TRY(syscall(SYS_dup3, a->out_fd, 1, 0), "dup");
	CHILD_TRY(syscall(SYS_dup3, a->err_fd, 2, 0), "dup");
	if (a->cwd_fd >= 0)
		CHILD_TRY(syscall(SYS_fchdir, a->cwd_fd), "fchdir");
	if (id->fd3 == 3)
		CHILD_TRY(syscall(SYS_fcntl, 3, F_SETFD, 0), "fcntl");
	else if (id->fd3 > 2)
		CHILD_TRY(syscall(SYS_dup3, id->fd3, 3, 0), "dup");
	if ((id->bind_fd > 2 || id->bind_src) && id->bind_dst) {
		long tree = -1, tree2 = -1, tree3 = -1;

		/* A detached copy of the fd's mount: in our namespace, as a bind source must be. */
		if (id->bind_fd > 2)
			CHILD_TRY(tree = syscall(SYS_open_tree, id->bind_fd, "",
			                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
			                             AT_EMPTY_PATH | AT_RECURSIVE),
			          "open_tree");
		if (id->bind2_fd > 2 && id->bind2_dst)
			CHILD_TRY(tree2 =
			              syscall(SYS_open_tree, id->bind2_fd, "",
			                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH),
			          "open_tree");
		if (id->bind3_fd > 2 && id->bind3_dst)
			CHILD_TRY(tree3 =
			              syscall(SYS_open_tree, id->bind3_fd, "",
			                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH),
			          "open_tree");
		CHILD_TRY(syscall(SYS_unshare, CLONE_NEWNS), "unshare");
		CHILD_TRY(syscall(SYS_mount, NULL, "/", NULL, MS_REC | MS_SLAVE, NULL), "mount");
		if (tree >= 0)
			CHILD_TRY(syscall(SYS_move_mount, (int)tree, "", AT_FDCWD, id->bind_dst,
			                  MOVE_MOUNT_F_EMPTY_PATH),
			          "move_mount");
		else
			CHILD_TRY(syscall(SYS_mount, id->bind_src, id->bind_dst, NULL,
			                  MS_BIND | MS_REC, NULL),
			          "mount");
		if (tree2 >= 0)
			CHILD_TRY(syscall(SYS_move_mount, (int)tree2, "", AT_FDCWD, id->bind2_dst,
			                  MOVE_MOUNT_F_EMPTY_PATH),
			          "move_mount");
		if (tree3 >= 0)
			CHILD_TRY(syscall(SYS_move_mount, (int)tree3, "", AT_FDCWD, id->bind3_dst,
			                  MOVE_MOUNT_F_EMPTY_PATH),
			          "move_mount");
	}
	if (id->set_ids) {
		CHILD_TRY(syscall(SYS_setgroups, 0, NULL), "setgroups");
		CHILD_TRY(syscall(SYS_setresgid, id->gid, id->gid, id->gid), "setresgid");
		/*
		 * This also makes our shared mm non-dumpable (commit_creds()), so a root runner
		 * stays so after its first such step: no core dumps, /proc/PID files root's only.
		 * Kept as a hardening; setting it back would race with other workers' spawns.
		 */
		CHILD_TRY(syscall(SYS_setresuid, id->uid, id->uid, id->uid), "setresuid");
	}
	/*
	 * By path and as the new ids: a symlink the step planted in its workspace must not
	 * take it where only we (root) could go.
	 */
	if (id->cwd_path)
		CHILD_TRY(syscall(SYS_chdir, id->cwd_path), "chdir");
	/* A kernel without keyrings has none of ours to hide. */
	if (id->new_keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 &&
	    errno != ENOSYS) {
		a->what = "keyctl";
		goto fail;
	}
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
	syscall(SYS_execve, a->prog, a->argv, a->envp);
	a->what = "exec";
fail:
	rep.err = errno ? errno : EINVAL;
	rep.what = a->what;
	syscall(SYS_write, a->report_fd, &rep, sizeof(rep));
	syscall(SYS_exit_group, 127);
	return 127;
#undef CHILD_TRY
}

/*
 * posix_spawn with an identity: clone(CLONE_VM | CLONE_VFORK) as glibc's posix_spawn does
 * (no copy of our page tables, which fork() would cost per step), on a stack of its own.
 * Every signal is blocked around it so no handler of ours runs on the child's stack. Returns
 * 0 with *pid set, or an errno value with *what saying which step failed.
 */
static int spawn_ident(const char *prog, const struct arl_spawn_opts *o, int in_fd, int out_w,
                       int err_w, int cwd_fd, pid_t *pid, const char **what)
{
	struct child_args a = {.prog = prog,
	                       .argv = o->argv,
	                       .envp = o->envp ? o->envp : environ,
	                       .in_fd = in_fd,
	                       .out_fd = out_w,
	                       .err_fd = err_w,
	                       .cwd_fd = cwd_fd,
	                       .id = o->ident};
	struct child_report rep = {0};
	sigset_t all, old;
	char *stack = MAP_FAILED;
	int rp[2] = {-1, -1}, rc = 0;
	ssize_t n;

	*pid = -1;
	*what = "pipe";
	/* The write end above fd 3, which the child's dups may overwrite. */
	if (pipe2(rp, O_CLOEXEC) < 0 || (a.report_fd = fcntl(rp[1], F_DUPFD_CLOEXEC, 4)) < 0) {
		rc = errno;
		goto out;
	}
	close(rp[1]);
	rp[1] = a.report_fd;
	*what = "clone";
	stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		rc = errno;
		goto out;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
#ifdef __SANITIZE_THREAD__
	/* TSan's clone() interceptor runs its fork hooks in a CLONE_VM child, ruining its state. */
	if ((*pid = fork()) == 0)
		child_main(&a);
#else
	*pid = clone(child_main, stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
#endif
	if (*pid < 0)
		rc = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto out;
	close(rp[1]);
	rp[1] = -1;
	do
		n = read(rp[0], &rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(rep)) {
		/* It exited without exec: reap it here, nothing of it ran. */
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
		*pid = -1;
		*what = rep.what;
		rc = rep.err;
	}
out:
	if (stack != MAP_FAILED)
		munmap(stack, CHILD_STACK);
	for (int i = 0; i < 2; i++)
		if (rp[i] >= 0)
			close(rp[i]);
	return rc;
}

/*
 * File actions and attributes: stdio from our fds, the cwd by fd, a new process group, an
 * empty signal mask (workers block every signal) and default dispositions. Returns 0 or an
 * errno value; on failure nothing is left to destroy.
 */
static int spawn_prepare(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, int in_fd,
                         int out_w, int err_w, int cwd_fd)
{
	sigset_t none, all;
	int rc;

	sigemptyset(&none);
	/* glibc skips SIGKILL, SIGSTOP and its internal signals. */
	sigfillset(&all);
	if ((rc = posix_spawn_file_actions_init(fa)) != 0)
		return rc;
	if ((rc = posix_spawnattr_init(attr)) != 0) {
		posix_spawn_file_actions_destroy(fa);
		return rc;
	}
	if ((rc = posix_spawn_file_actions_adddup2(fa, in_fd, 0)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(fa, out_w, 1)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(fa, err_w, 2)) != 0 ||
	    (cwd_fd >= 0 && (rc = posix_spawn_file_actions_addfchdir_np(fa, cwd_fd)) != 0) ||
	    (rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                             POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (rc = posix_spawnattr_setpgroup(attr, 0)) != 0 ||
	    (rc = posix_spawnattr_setsigmask(attr, &none)) != 0 ||
	    (rc = posix_spawnattr_setsigdefault(attr, &all)) != 0) {
		posix_spawnattr_destroy(attr);
		posix_spawn_file_actions_destroy(fa);
	}
	return rc;
}

int arl_spawn_run(const struct arl_spawn_opts *o, struct arl_spawn_result *res, struct arl_err *err)
{
	struct arl_spawn_result r = {0};
	struct arl_capture cap[2];
	struct proc p = {.pid = -1, .pidfd = -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool prepared = false;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	int in_fd = -1, cwd_fd = -1, rc, ret = -1;
	size_t capture_max = o->capture_max ? o->capture_max : ARL_SPAWN_DEFAULT_CAPTURE;
	int64_t grace_ms = o->grace_ms > 0 ? o->grace_ms : ARL_KILL_GRACE_MS, start = 0;
	const char *in_path = o->stdin_path ? o->stdin_path : "/dev/null";
	char *prog = NULL;

	arl_capture_init(&cap[0], capture_max);
	arl_capture_init(&cap[1], capture_max);
	if (!o->argv || !o->argv[0] || !o->argv[0][0]) {
		arl_error(err, ARL_E_INVALID, "cannot run an empty command");
		goto out;
	}
	/* A bad fd would make poll() report POLLNVAL forever; refuse it before starting. */
	if (o->cancel_fd >= 0 && fcntl(o->cancel_fd, F_GETFD) < 0) {
		arl_error_errno(err, errno, "cannot run '%s': cancel fd %d", o->argv[0],
		                o->cancel_fd);
		goto out;
	}
	/*
	 * Opened here rather than by file actions so a bad directory gets its own message
	 * (posix_spawn's ENOENT would read like a missing program). O_PATH needs no read
	 * permission, so check search permission, which fchdir() will need, ourselves.
	 */
	if (o->cwd && ((cwd_fd = open(o->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	               faccessat(cwd_fd, ".", X_OK, 0) < 0)) {
		arl_error_errno(err, errno, "cannot change directory to '%s'", o->cwd);
		goto out;
	}
	/* Relative paths are the child's view: resolved in its working directory. */
	in_fd = openat(cwd_fd >= 0 ? cwd_fd : AT_FDCWD, in_path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (in_fd < 0) {
		arl_error_errno(err, errno, "cannot open '%s' for the standard input of '%s'",
		                in_path, o->argv[0]);
		goto out;
	}
	if (find_program(o->argv[0], o->envp, cwd_fd >= 0 ? cwd_fd : AT_FDCWD, &prog, err) < 0)
		goto out;
	/* main() keeps fds 0-2 open, so these are >= 3 and the dup2s below cannot collide. */
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		arl_error_errno(err, errno, "cannot run '%s': pipe", o->argv[0]);
		goto out;
	}

	if (!o->ident) {
		if ((rc = spawn_prepare(&fa, &attr, in_fd, outp[1], errp[1], cwd_fd)) != 0) {
			arl_error_errno(err, rc, "cannot run '%s': posix_spawn setup", o->argv[0]);
			goto out;
		}
		prepared = true;
	}

	start = arl_now_ms();
	if (o->ident) {
		const char *what = NULL;
		char ebuf[128];

		rc = spawn_ident(prog, o, in_fd, outp[1], errp[1], cwd_fd, &p.pid, &what);
		if (rc != 0) {
			p.pid = -1;
			/* exec's errors read as posix_spawn's; the other steps are named. */
			if (!strcmp(what, "exec"))
				arl_error_errno(err, rc, "cannot run '%s'", o->argv[0]);
			else if (!strcmp(what, "chdir"))
				/* ARL_E_INVALID: the directory's fault, not the machine's. */
				arl_error(err, ARL_E_INVALID, "cannot change directory to '%s': %s",
				          o->ident->cwd_path, arl_strerror(rc, ebuf, sizeof(ebuf)));
			else
				arl_error_errno(err, rc, "cannot run '%s': %s", o->argv[0], what);
			goto out;
		}
	} else {
		rc = posix_spawn(&p.pid, prog, &fa, &attr, o->argv, o->envp ? o->envp : environ);
		if (rc != 0) {
			p.pid = -1;
			arl_error_errno(err, rc, "cannot run '%s'", o->argv[0]);
			goto out;
		}
	}
	/* Our copies of the write ends must go, or the pipes never reach EOF. */
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	cap[0].fd = outp[0];
	cap[1].fd = errp[0];
	outp[0] = errp[0] = -1;

	/* The child cannot be reaped by anyone else, so its pid is still the one we spawned. */
	p.pidfd = (int)syscall(SYS_pidfd_open, p.pid, 0);
	if (p.pidfd < 0) {
		arl_error_errno(err, errno, "cannot watch '%s': pidfd_open", o->argv[0]);
		goto out;
	}
	if (watch(&p, cap, o, grace_ms, &r, err) < 0)
		goto out;
	r.exit_code = reap(&p);
	r.duration_ms = arl_now_ms() - start;
	arl_capture_finish(&cap[0], &r.out);
	arl_capture_finish(&cap[1], &r.err);
	*res = r;
	ret = 0;
out:
	/* Only on a failure after the spawn: leave no process and no zombie behind. */
	if (p.pid > 0) {
		signal_group(&p, SIGKILL);
		reap(&p);
	}
	if (p.pidfd >= 0)
		close(p.pidfd);
	arl_capture_release(&cap[0]);
	arl_capture_release(&cap[1]);
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (in_fd >= 0)
		close(in_fd);
	if (cwd_fd >= 0)
		close(cwd_fd);
	if (prepared) {
		posix_spawnattr_destroy(&attr);
		posix_spawn_file_actions_destroy(&fa);
	}
	free(prog);
	return ret;
}

void arl_spawn_result_release(struct arl_spawn_result *res)
{
	if (!res)
		return;
	arl_output_release(&res->out);
	arl_output_release(&res->err);
	memset(res, 0, sizeof(*res));
}

int arl_spawn_start(const struct arl_spawn_opts *o, int out_fd, pid_t *pid, int *pidfd,
                    struct arl_err *err)
{
	const struct arl_spawn_ident none = {0};
	struct arl_spawn_opts so = *o;
	const char *what = NULL;
	char *prog = NULL;
	int in_fd = -1, rc, ret = -1;

	*pid = -1;
	*pidfd = -1;
	if (!so.ident)
		so.ident = &none;
	if (!o->argv || !o->argv[0] || !o->argv[0][0]) {
		arl_error(err, ARL_E_INVALID, "cannot run an empty command");
		goto out;
	}
	if ((in_fd = open("/dev/null", O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot open '/dev/null'");
		goto out;
	}
	if (find_program(o->argv[0], o->envp, AT_FDCWD, &prog, err) < 0)
		goto out;
	rc = spawn_ident(prog, &so, in_fd, out_fd, out_fd, -1, pid, &what);
	if (rc != 0) {
		*pid = -1;
		arl_error_errno(err, rc, "cannot run '%s'%s%s", o->argv[0],
		                strcmp(what, "exec") ? ": " : "", strcmp(what, "exec") ? what : "");
		goto out;
	}
	*pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);
	if (*pidfd < 0) {
		arl_error_errno(err, errno, "cannot watch '%s': pidfd_open", o->argv[0]);
		arl_spawn_stop(*pid, -1, 0);
		*pid = -1;
		goto out;
	}
	ret = 0;
out:
	if (in_fd >= 0)
		close(in_fd);
	free(prog);
	return ret;
}

int arl_spawn_stop(pid_t pid, int pidfd, int64_t wait_ms)
{
	struct proc p = {.pid = pid, .pidfd = pidfd};
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
	int64_t until = arl_now_ms() + wait_ms;
	int code;

	while (pidfd >= 0 && wait_ms > 0) {
		int64_t left = until - arl_now_ms();
		int n;

		if (left <= 0)
			break;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0 || (n < 0 && errno != EINTR))
			break;
	}
	/* Unreaped, its pid still holds the group's number: the kill cannot hit another's. */
	signal_group(&p, SIGKILL);
	code = reap(&p);
	if (pidfd >= 0)
		close(pidfd);
	return code;
}
