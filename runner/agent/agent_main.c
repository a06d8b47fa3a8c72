/*
 * arl-batch-agent: the first process of a local sandbox. It runs the runner's steps inside the
 * sandbox, as a pod's runtime runs `exec`s in a container, over the socket it inherits
 * (--fd N; protocol.h). Linked statically with libc only, because it must run inside any
 * image root, where none of the host's shared libraries exist.
 *
 * DESIGN
 * - One thread, one poll loop over the socket, a signalfd for SIGCHLD and the steps' pipes.
 *   Frames to the runner are sent blocking: the runner reads while a request is outstanding,
 *   and the pipes simply fill (the step waits) while it does not.
 * - A step is a child in its own session (so its own process group), stdin /dev/null, stdout
 *   and stderr pipes, chdir(workDir), the environment exactly as given. Its EXIT is sent when
 *   its leader is reaped, after what the pipes held at that moment: processes left behind
 *   (`cmd &` in its group, or `setsid cmd &` in their own) keep running, as in a pod, and keep
 *   the pipes open; the agent keeps reading those and discards what they write, so a server
 *   that logs never blocks or gets EPIPE.
 * - SIGNAL goes to the step's group while its leader is alive. A step that was signalled (a
 *   timeout or a cancel) loses its whole group when the leader dies: the remaining members
 *   get SIGKILL before the leader is reaped (waitid WNOWAIT), while the zombie still holds
 *   the group's number, so a recycled pid is never hit. Processes that left the group live on.
 * - As PID 1 it reaps every orphan; elsewhere (tests) it makes itself a child subreaper to do
 *   the same, and on exit kills what it adopted, since no PID namespace ends with it.
 * - Before the first frame (HELLO) it drops every capability (the bounding set and ambient
 *   ones too), sets no_new_privs and makes itself non-dumpable: a step, uid 0 in the
 *   sandbox, can then neither ptrace the agent nor open /proc/1/fd/N. Every fd it holds is
 *   CLOEXEC, so no step inherits the socket or another step's pipe.
 * This file may not write to stderr (only the runner's log does); errors go to the runner as
 * ERROR frames, and a bad command line prints its usage on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/mounts.h"
#include "agent/collect.h"
#include "agent/exec.h"
#include "agent/protocol.h"

/* musl has neither close_range() nor its flag (Linux 5.11's value). */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
static int agent_close_range(unsigned first, unsigned last, unsigned flags)
{
	return (int)syscall(SYS_close_range, first, last, flags);
}

/* Sanitizer runtimes and vfork do not mix: gcc says so with these, clang with __has_feature. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VFORK_OK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define VFORK_OK 0
#endif
#endif
#ifndef VFORK_OK
#define VFORK_OK 1
#endif

#define STEPS_MAX  64 /* steps running at once */
#define WRITES_MAX 8  /* files open for WRITE at once */

struct step {
	uint32_t id;
	pid_t pid; /* 0: slot free */
	int out, err;
	bool signalled;
};

struct file_write {
	uint32_t id;
	char *path; /* NULL: slot free */
	int fd;     /* -1 after an error */
	int errnum; /* the first error */
	char msg[ARL_PROTO_TEXT_MAX];
};

struct agent {
	int sock;
	int sigfd;
	int devnull;
	bool pid1;
	struct step steps[STEPS_MAX];
	struct file_write writes[WRITES_MAX];
	int *drain; /* pipes of ended steps, read and discarded until EOF */
	size_t ndrain, drain_cap;
	unsigned char *exec_buf; /* an EXEC's payload while ARL_PROTO_MORE frames arrive */
	size_t exec_len;
	uint32_t exec_id;
	unsigned char frame[ARL_PROTO_FRAME_MAX];
};

static void quit(struct agent *a, int status) __attribute__((noreturn));

/* Sends one frame; the runner gone (EPIPE) ends the agent, since the sandbox ends with it. */
static void send_frame(struct agent *a, unsigned type, uint32_t id, const void *p1, size_t n1,
                       const void *p2, size_t n2)
{
	unsigned char hdr[ARL_PROTO_HEADER];
	struct iovec iov[3] = {{hdr, sizeof(hdr)}, {(void *)p1, n1}, {(void *)p2, n2}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};

	arl_proto_put_header(hdr, type, 0, id);
	while (sendmsg(a->sock, &m, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			quit(a, 1);
}

static void send_u32s(struct agent *a, unsigned type, uint32_t id, uint32_t x, uint32_t y)
{
	unsigned char p[8];

	arl_proto_put_u32(p, x);
	arl_proto_put_u32(p + 4, y);
	send_frame(a, type, id, p, sizeof(p), NULL, 0);
}

static void send_error(struct agent *a, uint32_t id, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void send_error(struct agent *a, uint32_t id, int errnum, const char *fmt, ...)
{
	char msg[ARL_PROTO_TEXT_MAX];
	unsigned char e[4];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	arl_proto_put_u32(e, (uint32_t)errnum);
	send_frame(a, ARL_PROTO_ERROR, id, e, sizeof(e), msg, (size_t)n);
}

static const char *errtext(int errnum, char *buf, size_t len)
{
#ifdef __GLIBC__
	return strerror_r(errnum, buf, len); /* GNU's: may return a static string */
#else
	if (strerror_r(errnum, buf, len) != 0) /* XSI's (musl) */
		snprintf(buf, len, "error %d", errnum);
	return buf;
#endif
}

/*
 * A failure of the agent itself: reported with id 0, then the agent exits (the runner sees
 * the sandbox fail). @errnum 0: a protocol violation, @what says which.
 */
static void fatal(struct agent *a, int errnum, const char *what) __attribute__((noreturn));
static void fatal(struct agent *a, int errnum, const char *what)
{
	char ebuf[128];

	if (errnum)
		send_error(a, 0, errnum, "sandbox agent: %s: %s", what,
		           errtext(errnum, ebuf, sizeof(ebuf)));
	else
		send_error(a, 0, EPROTO, "sandbox agent: protocol error: %s", what);
	quit(a, 1);
}

/* ---- hardening ---- */

/*
 * Drops every capability: the bounding set (so a uid-0 step cannot regain them through
 * execve), the ambient, inheritable, permitted and effective sets. Dropping the bounding set
 * needs CAP_SETPCAP; without any capability at all there is nothing to drop, and
 * no_new_privs (set next) keeps execve from granting any.
 */
static int drop_capabilities(const char **what)
{
	/* capget(2)'s ABI, version 3, declared here: musl ships no <linux/capability.h>. */
	struct {
		uint32_t version;
		int pid;
	} h = {0x20080522, 0};
	struct {
		uint32_t effective, permitted, inheritable;
	} d[2];
	bool had = false;

	if (syscall(SYS_capget, &h, d) < 0) {
		*what = "cannot read capabilities";
		return -1;
	}
	for (int i = 0; i < 2; i++)
		had = had || d[i].permitted || d[i].effective || d[i].inheritable;
	for (int cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break; /* past the kernel's last capability */
		if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && had) {
			*what = "cannot drop the capability bounding set";
			return -1;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		*what = "cannot clear ambient capabilities";
		return -1;
	}
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0) {
		*what = "cannot drop capabilities";
		return -1;
	}
	return 0;
}

static void harden(struct agent *a)
{
	const char *what = NULL;

	if (!a->pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		fatal(a, errno, "cannot become a child subreaper");
	if (drop_capabilities(&what) < 0)
		fatal(a, errno, what);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fatal(a, errno, "cannot set no_new_privs");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fatal(a, errno, "cannot make itself non-dumpable");
}

/* ---- steps ---- */

static struct step *step_by_id(struct agent *a, uint32_t id)
{
	for (int i = 0; i < STEPS_MAX; i++)
		if (a->steps[i].pid && a->steps[i].id == id)
			return &a->steps[i];
	return NULL;
}

static struct step *step_by_pid(struct agent *a, pid_t pid)
{
	for (int i = 0; i < STEPS_MAX; i++)
		if (a->steps[i].pid == pid)
			return &a->steps[i];
	return NULL;
}

static void drain_add(struct agent *a, int fd)
{
	if (fd < 0)
		return;
	if (a->ndrain == a->drain_cap) {
		size_t cap = a->drain_cap ? 2 * a->drain_cap : 16;
		int *v = realloc(a->drain, cap * sizeof(*v));

		if (!v) {
			close(fd); /* a writer then gets EPIPE: better than the agent failing */
			return;
		}
		a->drain = v;
		a->drain_cap = cap;
	}
	a->drain[a->ndrain++] = fd;
}

/*
 * Forwards up to @max bytes from step pipe *@fd as @type frames; closes it at EOF. Returns
 * the bytes read.
 */
static size_t forward(struct agent *a, struct step *s, int *fd, unsigned type, size_t max)
{
	size_t total = 0;

	while (*fd >= 0 && total < max) {
		size_t want = max - total < ARL_PROTO_DATA_MAX ? max - total : ARL_PROTO_DATA_MAX;
		ssize_t n = read(*fd, a->frame, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			break;
		}
		send_frame(a, type, s->id, a->frame, (size_t)n, NULL, 0);
		total += (size_t)n;
	}
	return total;
}

/* What a pipe holds now, so the drain at exit ends even when a writer never stops. */
static size_t pending(int fd)
{
	int n = 0;

	if (fd < 0 || ioctl(fd, FIONREAD, &n) < 0 || n < 0)
		return 0;
	return (size_t)n;
}

static void step_ended(struct agent *a, struct step *s, int status)
{
	forward(a, s, &s->out, ARL_PROTO_STDOUT, pending(s->out));
	forward(a, s, &s->err, ARL_PROTO_STDERR, pending(s->err));
	drain_add(a, s->out);
	drain_add(a, s->err);
	if (WIFSIGNALED(status))
		send_u32s(a, ARL_PROTO_EXIT, s->id, ARL_PROTO_SIGNALED, (uint32_t)WTERMSIG(status));
	else
		send_u32s(a, ARL_PROTO_EXIT, s->id, ARL_PROTO_EXITED,
		          (uint32_t)WEXITSTATUS(status));
	memset(s, 0, sizeof(*s));
}

/*
 * The child between vfork (fork for ARL_COLLECT_ARGV0) and exec. A vfork()ed child shares
 * the agent's memory until it execs or exits: it allocates nothing and changes no variable
 * of ours (errno aside), and its signal dispositions are its own. A failure is reported
 * through @errfd as the errno and a stage byte (0 chdir, 1 exec).
 */
static void child(struct agent *a, int out, int err, int errfd, const char *dir, char **argv,
                  char **env, char **scratch) __attribute__((noreturn));
static void child(struct agent *a, int out, int err, int errfd, const char *dir, char **argv,
                  char **env, char **scratch)
{
	unsigned char report[5];
	sigset_t none;
	int stage = 0;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* The one disposition the agent sets; an exec resets handlers, it installs none. */
	signal(SIGPIPE, SIG_DFL);
	if (setsid() < 0 || dup2(a->devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	if (chdir(dir) < 0)
		goto fail;
	stage = 1;
	/*
	 * Not a program: the job's artifacts, streamed on stdout by this child itself
	 * (collect.h), as the steps see the files; the agent's own binary may not be reachable
	 * by any path in the sandbox (an image's root). EOF on errfd says it started.
	 */
	if (!strcmp(argv[0], ARL_COLLECT_ARGV0)) {
		int n = 0;

		while (argv[n])
			n++;
		/* No exec to close them: errfd (EOF: started), the socket, other steps' pipes. */
		agent_close_range(3, ~0u, 0);
		_exit(arl_collect_main(n, argv));
	}
	arl_agent_execvpe(argv[0], argv, env, scratch); /* the step's own PATH */
fail:
	arl_proto_put_u32(report, (uint32_t)errno);
	report[4] = (unsigned char)stage;
	(void)!write(errfd, report, sizeof(report));
	_exit(127);
}

/* Points @v (@n + 1 slots) at the @n NUL-ended strings from *@p on, advancing *@p. */
static void take_strings(char **v, size_t n, char **p)
{
	for (size_t i = 0; i < n; i++) {
		v[i] = *p;
		*p += strlen(*p) + 1;
	}
	v[n] = NULL;
}

static void start_step(struct agent *a, uint32_t id, unsigned char *p, size_t len)
{
	char **argv = NULL, **env = NULL, *q, *dir, ebuf[128];
	int out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
	unsigned char report[5];
	uint32_t argc, envc;
	struct step *s = NULL;
	long nstr;
	ssize_t n;
	pid_t pid;

	if (len < 8 || (nstr = arl_proto_count_strings(p + 8, len - 8)) < 0)
		fatal(a, 0, "malformed EXEC frame");
	argc = arl_proto_get_u32(p);
	envc = arl_proto_get_u32(p + 4);
	if (argc < 1 || (uint64_t)argc + envc + 1 != (uint64_t)nstr)
		fatal(a, 0, "EXEC frame with wrong string counts");
	if (!id || step_by_id(a, id))
		fatal(a, 0, "EXEC frame with a reused id");
	for (int i = 0; i < STEPS_MAX && !s; i++)
		if (!a->steps[i].pid)
			s = &a->steps[i];
	if (!s) {
		send_error(a, id, EAGAIN, "too many steps running in the sandbox (at most %d)",
		           STEPS_MAX);
		return;
	}
	/* argc + 1 for argv, argc + 2 for arl_agent_execvpe()'s scratch. */
	argv = calloc(2 * (size_t)argc + 3, sizeof(*argv));
	env = calloc((size_t)envc + 1, sizeof(*env));
	if (!argv || !env) {
		send_error(a, id, ENOMEM, "cannot start the step: out of memory");
		goto out;
	}
	q = (char *)p + 8;
	dir = q;
	q += strlen(q) + 1;
	take_strings(argv, argc, &q);
	take_strings(env, envc, &q);

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		send_error(a, id, errno, "cannot start '%s': pipe: %s", argv[0],
		           errtext(errno, ebuf, sizeof(ebuf)));
		goto out;
	}
	/*
	 * vfork for a program: no copy of the agent's page tables, and none of its pages then
	 * copied as it writes them, for each step. Called here, not in a helper: a vfork()ed
	 * child may not return from the function that called it. fork for ARL_COLLECT_ARGV0,
	 * which runs in the child without an exec, and in sanitizer builds (their runtimes).
	 */
	if (VFORK_OK && strcmp(argv[0], ARL_COLLECT_ARGV0))
		pid = vfork();
	else
		pid = fork();
	if (pid < 0) {
		send_error(a, id, errno, "cannot start '%s': fork: %s", argv[0],
		           errtext(errno, ebuf, sizeof(ebuf)));
		goto out;
	}
	if (pid == 0)
		child(a, out[1], err[1], rep[1], dir, argv, env, argv + argc + 1);
	close(rep[1]);
	rep[1] = -1;
	/* EOF: exec succeeded (the pipe is CLOEXEC); 5 bytes: the child said why it failed. */
	while ((n = read(rep[0], report, sizeof(report))) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(report)) {
		int e = (int)arl_proto_get_u32(report);

		/* The child exits 127 and is reaped as an orphan: no EXIT for this id. */
		if (report[4] == 0)
			send_error(a, id, e, "cannot change to work directory '%s': %s", dir,
			           errtext(e, ebuf, sizeof(ebuf)));
		else
			send_error(a, id, e, "cannot run '%s': %s", argv[0],
			           errtext(e, ebuf, sizeof(ebuf)));
		goto out;
	}
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	*s = (struct step){.id = id, .pid = pid, .out = out[0], .err = err[0]};
	out[0] = err[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
		if (rep[i] >= 0)
			close(rep[i]);
	}
	free(argv);
	free(env);
}

/*
 * Reaps every child that exited: step leaders end their step, anything else is an orphan
 * the agent adopted as PID 1 or subreaper.
 */
static void reap(struct agent *a)
{
	struct signalfd_siginfo si;
	siginfo_t info;
	int status;

	while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	for (;;) {
		struct step *s;

		memset(&info, 0, sizeof(info));
		if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || !info.si_pid)
			break;
		s = step_by_pid(a, info.si_pid);
		if (s && s->signalled)
			kill(-s->pid, SIGKILL); /* the zombie still holds the group's number */
		if (waitpid(info.si_pid, &status, 0) < 0)
			break;
		if (s)
			step_ended(a, s, status);
	}
}

/* ---- files ---- */

static struct file_write *write_by_id(struct agent *a, uint32_t id)
{
	for (int i = 0; i < WRITES_MAX; i++)
		if (a->writes[i].path && a->writes[i].id == id)
			return &a->writes[i];
	return NULL;
}

/* Records the first error of @w ("@what '@path': @why", errno's text without @why). */
static void write_fail(struct file_write *w, int errnum, const char *what, const char *path,
                       const char *why)
{
	char ebuf[128];

	if (w->errnum)
		return;
	w->errnum = errnum;
	snprintf(w->msg, sizeof(w->msg), "%s '%s': %s", what, path,
	         why ? why : errtext(errnum, ebuf, sizeof(ebuf)));
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/*
 * mkdir -p of @path's parent. A symlink among the parents is refused, as FilePatch always
 * did: the agent has no more rights than a step, but a link a step planted must not send a
 * patch elsewhere than its path says.
 */
static int make_parents(char *path, struct file_write *w)
{
	for (char *c = strchr(path + 1, '/'); c; c = strchr(c + 1, '/')) {
		struct stat st;
		int rc = 0;

		*c = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			write_fail(w, errno, "cannot create directory", path, NULL);
			rc = -1;
		} else if (lstat(path, &st) < 0) {
			write_fail(w, errno, "cannot create directory", path, NULL);
			rc = -1;
		} else if (S_ISLNK(st.st_mode)) {
			write_fail(w, ELOOP, "refusing to write", path, "it is a symlink");
			rc = -1;
		} else if (!S_ISDIR(st.st_mode)) {
			write_fail(w, ENOTDIR, "refusing to write", path, "not a directory");
			rc = -1;
		}
		*c = '/';
		if (rc < 0)
			return -1;
	}
	return 0;
}

static void open_file(struct agent *a, uint32_t id, const unsigned char *p, size_t len)
{
	struct file_write *w = NULL;
	uint32_t mode;
	struct stat st;

	if (len < 5 || arl_proto_count_strings(p + 4, len - 4) != 1)
		fatal(a, 0, "malformed WRITE frame");
	mode = arl_proto_get_u32(p);
	if (!id || write_by_id(a, id) || mode & ~0777u || p[4] != '/')
		fatal(a, 0, "WRITE frame with a reused id, a bad mode or a relative path");
	for (int i = 0; i < WRITES_MAX && !w; i++)
		if (!a->writes[i].path)
			w = &a->writes[i];
	if (!w)
		fatal(a, 0, "too many WRITE requests open");
	*w = (struct file_write){.id = id, .fd = -1, .path = strdup((const char *)p + 4)};
	if (!w->path)
		fatal(a, ENOMEM, "WRITE");
	if (make_parents(w->path, w) < 0)
		return;
	/*
	 * O_NOFOLLOW: a symlink a step left as the last component is refused, not followed.
	 * O_NONBLOCK and no O_TRUNC until it is known to be a regular file, so a FIFO cannot
	 * hang the agent and a device is never truncated.
	 */
	w->fd = open(w->path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
	             (mode_t)mode);
	if (w->fd < 0 && errno == ELOOP)
		write_fail(w, errno, "refusing to write", w->path, "it is a symlink");
	else if (w->fd < 0 && errno == EISDIR)
		write_fail(w, errno, "refusing to write", w->path, "it is a directory");
	else if (w->fd < 0 && errno == ENXIO) /* a FIFO without reader, a socket */
		write_fail(w, errno, "refusing to write", w->path, "not a regular file");
	else if (w->fd < 0)
		write_fail(w, errno, "cannot open", w->path, NULL);
	else if (fstat(w->fd, &st) < 0)
		write_fail(w, errno, "cannot stat", w->path, NULL);
	else if (!S_ISREG(st.st_mode))
		write_fail(w, EINVAL, "refusing to write", w->path, "not a regular file");
	else if (ftruncate(w->fd, 0) < 0 || fchmod(w->fd, (mode_t)mode) < 0)
		write_fail(w, errno, "cannot write", w->path, NULL);
}

static void write_data(struct agent *a, uint32_t id, const unsigned char *p, size_t len)
{
	struct file_write *w = write_by_id(a, id);

	if (!w)
		fatal(a, 0, "WRITE_DATA frame without WRITE");
	while (w->fd >= 0 && len) {
		ssize_t n = write(w->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			write_fail(w, n < 0 ? errno : EIO, "cannot write", w->path, NULL);
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void write_end(struct agent *a, uint32_t id)
{
	struct file_write *w = write_by_id(a, id);

	if (!w)
		fatal(a, 0, "WRITE_END frame without WRITE");
	if (w->fd >= 0 && close(w->fd) < 0) {
		w->fd = -1;
		write_fail(w, errno, "cannot write", w->path, NULL);
	}
	if (w->errnum)
		send_error(a, id, w->errnum, "%s", w->msg);
	else
		send_frame(a, ARL_PROTO_OK, id, NULL, 0, NULL, 0);
	free(w->path);
	memset(w, 0, sizeof(*w));
}

/* ---- requests ---- */

static void on_exec_frame(struct agent *a, const struct arl_proto_frame *f)
{
	unsigned char *buf;

	if (a->exec_buf && a->exec_id != f->id)
		fatal(a, 0, "EXEC frames of two requests interleaved");
	if (!a->exec_buf && !(f->flags & ARL_PROTO_MORE)) {
		start_step(a, f->id, (unsigned char *)f->payload, f->len);
		return;
	}
	if (a->exec_len + f->len > ARL_PROTO_EXEC_MAX)
		fatal(a, 0, "EXEC request larger than the protocol allows");
	buf = realloc(a->exec_buf, a->exec_len + f->len + 1);
	if (!buf)
		fatal(a, ENOMEM, "EXEC request");
	memcpy(buf + a->exec_len, f->payload, f->len);
	a->exec_buf = buf;
	a->exec_len += f->len;
	a->exec_id = f->id;
	if (f->flags & ARL_PROTO_MORE)
		return;
	start_step(a, f->id, a->exec_buf, a->exec_len);
	free(a->exec_buf);
	a->exec_buf = NULL;
	a->exec_len = 0;
}

/* Reads and acts on one request; returns -1 when the runner closed the socket. */
static int on_request(struct agent *a)
{
	struct msghdr m = {0};
	struct iovec iov = {a->frame, sizeof(a->frame)};
	struct arl_proto_frame f;
	const char *why;
	struct step *s;
	ssize_t n;

	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	while ((n = recvmsg(a->sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0 && errno != ECONNRESET)
		fatal(a, errno, "cannot read from the runner");
	if (n <= 0)
		return -1;
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		fatal(a, 0, "oversized frame from the runner");
	if (arl_proto_parse(a->frame, (size_t)n, &f, &why) < 0)
		fatal(a, 0, why);
	if (f.flags && f.type != ARL_PROTO_EXEC)
		fatal(a, 0, "header flags on a frame other than EXEC");
	if (a->exec_buf && f.type != ARL_PROTO_EXEC)
		fatal(a, 0, "EXEC request left unfinished");
	switch (f.type) {
	case ARL_PROTO_EXEC:
		on_exec_frame(a, &f);
		break;
	case ARL_PROTO_SIGNAL:
		if (f.len != 4 || !arl_proto_get_u32(f.payload) ||
		    arl_proto_get_u32(f.payload) >= (uint32_t)NSIG)
			fatal(a, 0, "malformed SIGNAL frame");
		/* A step that already ended is no error: its timeout raced its exit. */
		if ((s = step_by_id(a, f.id))) {
			s->signalled = true;
			kill(-s->pid, (int)arl_proto_get_u32(f.payload));
		}
		break;
	case ARL_PROTO_WRITE:
		open_file(a, f.id, f.payload, f.len);
		break;
	case ARL_PROTO_WRITE_DATA:
		write_data(a, f.id, f.payload, f.len);
		break;
	case ARL_PROTO_WRITE_END:
		if (f.len)
			fatal(a, 0, "malformed WRITE_END frame");
		write_end(a, f.id);
		break;
	default:
		fatal(a, 0, "unknown frame type from the runner");
	}
	return 0;
}

/* ---- the loop ---- */

/* Not PID 1: nothing ends with us unless we end it. Kills adopted children until none. */
static void kill_descendants(struct agent *a)
{
	char path[64], buf[4096];
	int status;

	for (int i = 0; i < STEPS_MAX; i++)
		if (a->steps[i].pid)
			kill(-a->steps[i].pid, SIGKILL);
	snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)getpid());
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		bool any = false;

		if (fd >= 0)
			close(fd);
		if (n < 0)
			n = 0;
		buf[n] = '\0';
		for (char *p = buf, *end; *p; p = end) {
			long pid = strtol(p, &end, 10);

			if (end == p)
				break;
			if (pid > 0) {
				kill((pid_t)pid, SIGKILL);
				any = true;
			}
		}
		/* Wait for one, so what it leaves behind is adopted before the next look. */
		if (waitpid(-1, &status, any ? 0 : WNOHANG) <= 0 && !any)
			break;
	}
}

/* As PID 1, our exit ends the namespace and every process in it; elsewhere we end them. */
static void quit(struct agent *a, int status)
{
	if (!a->pid1)
		kill_descendants(a);
	exit(status);
}

static void serve(struct agent *a)
{
	struct pollfd *pfd = NULL;
	size_t cap = 0;

	for (;;) {
		size_t n = 0, need = 2 + 2 * STEPS_MAX + a->ndrain;

		if (need > cap) {
			struct pollfd *p = realloc(pfd, need * sizeof(*p));

			if (!p)
				fatal(a, ENOMEM, "poll set");
			pfd = p;
			cap = need;
		}
		pfd[n++] = (struct pollfd){.fd = a->sock, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = a->sigfd, .events = POLLIN};
		for (int i = 0; i < STEPS_MAX; i++) {
			pfd[n++] = (struct pollfd){.fd = a->steps[i].pid ? a->steps[i].out : -1,
			                           .events = POLLIN};
			pfd[n++] = (struct pollfd){.fd = a->steps[i].pid ? a->steps[i].err : -1,
			                           .events = POLLIN};
		}
		for (size_t i = 0; i < a->ndrain; i++)
			pfd[n++] = (struct pollfd){.fd = a->drain[i], .events = POLLIN};
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal(a, errno, "poll");
		}
		/* Output first: what a step wrote before exiting is sent before its EXIT. */
		for (int i = 0; i < STEPS_MAX; i++) {
			struct step *s = &a->steps[i];

			if (pfd[2 + 2 * i].revents)
				forward(a, s, &s->out, ARL_PROTO_STDOUT, ARL_PROTO_DATA_MAX);
			if (pfd[3 + 2 * i].revents)
				forward(a, s, &s->err, ARL_PROTO_STDERR, ARL_PROTO_DATA_MAX);
		}
		for (size_t i = a->ndrain; i-- > 0;) {
			ssize_t r;

			if (!pfd[2 + 2 * STEPS_MAX + i].revents)
				continue;
			r = read(a->drain[i], a->frame, sizeof(a->frame));
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				close(a->drain[i]);
				a->drain[i] = a->drain[--a->ndrain];
			}
		}
		if (pfd[1].revents)
			reap(a);
		if (pfd[0].revents && on_request(a) < 0)
			break;
	}
	free(pfd);
}

static int usage(void)
{
	fputs(
	    "usage: arl-batch-agent --fd N [MOUNT PLAN]\n"
	    "The sandbox agent of arl-batch: started by the runner as the first process of a\n"
	    "sandbox, it serves requests on the socket N it inherits, after mounting MOUNT PLAN\n"
	    "(--overlay TARGET LOWERS UPPER WORK, --overlay-mem TARGET LOWERS UPPER WORK MEMDIR,\n"
	    "--mask PATH, --tmpfs PATH, --detach PATH,\n"
	    "--no-userns DIR, --layers TARGET BASE N UPPER WORK, --pivot NEWROOT,\n"
	    "--as-user UID GID).\n",
	    stdout);
	return 2;
}

int main(int argc, char **argv)
{
	static struct agent agent;
	struct agent *a = &agent;
	struct stat st;
	sigset_t chld;
	char *end, plan_msg[ARL_PROTO_TEXT_MAX];
	long fd;

	if (argc < 3 || strcmp(argv[1], "--fd"))
		return usage();
	if (arl_agent_plan_check(argv + 3, argc - 3, plan_msg, sizeof(plan_msg)) < 0) {
		printf("arl-batch-agent: %s\n", plan_msg);
		return usage();
	}
	errno = 0;
	fd = strtol(argv[2], &end, 10);
	if (errno || *end || end == argv[2] || fd < 3 || fd > INT_MAX)
		return usage();
	a->sock = (int)fd;
	if (fstat(a->sock, &st) < 0 || !S_ISSOCK(st.st_mode))
		return usage();
	/* Steps never inherit the socket, nor anything else the agent was given. */
	fcntl(a->sock, F_SETFD, FD_CLOEXEC);
	for (int i = 3; i < a->sock; i++)
		fcntl(i, F_SETFD, FD_CLOEXEC);
	agent_close_range((unsigned)a->sock + 1, ~0u, CLOSE_RANGE_CLOEXEC);
	a->pid1 = getpid() == 1;
	umask(022); /* what a container runtime gives a pod's processes */
	signal(SIGPIPE, SIG_IGN);

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0 ||
	    (a->sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fatal(a, errno, "cannot watch SIGCHLD");
	a->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (a->devnull < 0)
		fatal(a, errno, "cannot open '/dev/null'");
	/* The copy-on-write root, while the agent still has the capabilities to mount it. */
	if (arl_agent_plan_apply(argv + 3, argc - 3, plan_msg, sizeof(plan_msg)) < 0)
		fatal(a, errno, plan_msg);
	harden(a);
	send_u32s(a, ARL_PROTO_HELLO, 0, ARL_PROTO_VERSION, (uint32_t)getpid());
	serve(a);
	quit(a, 0);
}
