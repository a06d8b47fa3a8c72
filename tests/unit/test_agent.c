/*
 * Unit tests for the sandbox agent (runner/agent/) and its client (local/agent_client.c): the
 * built arl-batch-agent runs as our child on a socketpair, without bwrap. Output framing,
 * environment and workDir, start errors, what survives a step's end and its SIGNAL, file
 * writes, forged frames, hardening, and the end of everything when the socket closes (in a
 * PID namespace of its own, and as a subreaper without one). Processes are watched through
 * pidfds: every wait is on an event, never a clock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "static_elf.h"

#include "agent/protocol.h"
#include "local/agent_client.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

extern char **environ;

static char *step_env[] = {"PATH=/usr/bin:/bin", NULL};

struct agent_proc {
	pid_t pid; /* the agent, or unshare running it */
	struct arl_agent *a;
};

/*
 * Spawns the agent on fd 3 of a socketpair, under `unshare --pid --fork` with @pidns; returns
 * our end of the socket.
 */
static int spawn_agent(pid_t *pid, bool pidns)
{
	posix_spawn_file_actions_t fa;
	char *plain[] = {"arl-batch-agent", "--fd", "3", NULL};
	char *ns_root[] = {"unshare",     "--pid", "--fork", "--kill-child",
	                   ARL_AGENT_BIN, "--fd",  "3",      NULL};
	char *ns_user[] = {"unshare",     "--user", "--map-root-user",
	                   "--pid",       "--fork", "--kill-child",
	                   ARL_AGENT_BIN, "--fd",   "3",
	                   NULL};
	int sv[2], child_end, rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, 10); /* never 3 itself: dup2 clears CLOEXEC */
	assert_true(child_end >= 10);
	close(sv[1]);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, child_end, 3);
	if (pidns)
		rc =
		    posix_spawnp(pid, "unshare", &fa, NULL, geteuid() ? ns_user : ns_root, environ);
	else
		rc = posix_spawn(pid, ARL_AGENT_BIN, &fa, NULL, plain, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(child_end);
	assert_int_equal(rc, 0);
	return sv[0];
}

/* Starts the agent and connects a client; -1 when @pidns and no PID namespace is ours. */
static int start_agent(struct agent_proc *ap, bool pidns)
{
	struct arl_err err = ARL_ERR_INIT;
	int fd = spawn_agent(&ap->pid, pidns);

	if (arl_agent_open(&ap->a, fd, 0, &err) < 0) {
		int status;

		waitpid(ap->pid, &status, 0);
		if (pidns)
			return -1; /* no PID namespace for us here */
		fail_msg("arl_agent_open: %s", err.msg);
	}
	return 0;
}

/* Closes the socket and expects the agent to exit 0. */
static void stop_agent(struct agent_proc *ap)
{
	int status;

	arl_agent_free(ap->a);
	ap->a = NULL;
	assert_int_equal(waitpid(ap->pid, &status, 0), ap->pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

struct step_out {
	struct arl_buf out, err;
	int exit_code, signal;
	bool error; /* an ERROR event instead of EXIT */
	int errnum;
	char text[ARL_PROTO_TEXT_MAX + 1];
};

static void step_out_release(struct step_out *o)
{
	arl_buf_release(&o->out);
	arl_buf_release(&o->err);
}

/* Takes events of request @id into @o until its last one; true when it was the last. */
static bool take_event(struct arl_agent *a, uint32_t id, struct step_out *o)
{
	struct arl_agent_event ev;
	struct arl_err err = ARL_ERR_INIT;

	if (arl_agent_next(a, 0, -1, &ev, &err) < 0)
		fail_msg("arl_agent_next: %s", err.msg);
	assert_int_equal(ev.id, id);
	switch (ev.kind) {
	case ARL_AGENT_STDOUT:
		assert_int_equal(arl_buf_add(&o->out, ev.data, ev.len), 0);
		return false;
	case ARL_AGENT_STDERR:
		assert_int_equal(arl_buf_add(&o->err, ev.data, ev.len), 0);
		return false;
	case ARL_AGENT_EXIT:
		o->exit_code = ev.exit_code;
		o->signal = ev.signal;
		return true;
	case ARL_AGENT_ERROR:
		o->error = true;
		o->errnum = ev.errnum;
		memcpy(o->text, ev.data, ev.len);
		o->text[ev.len] = '\0';
		return true;
	case ARL_AGENT_OK:
		return true;
	default:
		fail_msg("unexpected event %d", (int)ev.kind);
	}
	return true;
}

static uint32_t exec_step(struct arl_agent *a, char *const argv[], const char *dir)
{
	struct arl_err err = ARL_ERR_INIT;
	uint32_t id = 0;

	if (arl_agent_exec(a, argv, step_env, dir, &id, &err) < 0)
		fail_msg("arl_agent_exec: %s", err.msg);
	return id;
}

static void run_step(struct arl_agent *a, char *const argv[], const char *dir, struct step_out *o)
{
	uint32_t id = exec_step(a, argv, dir);

	memset(o, 0, sizeof(*o));
	while (!take_event(a, id, o))
		;
}

static void run_sh(struct arl_agent *a, const char *script, struct step_out *o)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};

	run_step(a, argv, "/", o);
}

static void expect_sh(struct arl_agent *a, const char *script, const char *out, const char *err,
                      int code)
{
	struct step_out o;

	run_sh(a, script, &o);
	assert_false(o.error);
	assert_int_equal(o.out.len, strlen(out));
	assert_memory_equal(o.out.len ? o.out.p : "", out, strlen(out));
	assert_string_equal(o.err.len ? o.err.p : "", err);
	assert_int_equal(o.exit_code, code);
	step_out_release(&o);
}

static int pidfd_of(long pid)
{
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);

	if (fd < 0)
		fail_msg("pidfd_open(%ld): %s", pid, strerror_r(errno, (char[64]){0}, 64));
	return fd;
}

static bool exited(int pidfd)
{
	struct pollfd p = {pidfd, POLLIN, 0};

	return poll(&p, 1, 0) == 1;
}

/* Blocks until the process exits: if it never does, ctest's timeout says so. */
static void wait_exit(int pidfd)
{
	struct pollfd p = {pidfd, POLLIN, 0};

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	close(pidfd);
}

/* Pids printed one a line in @text, as pidfds; returns how many. */
static size_t pidfds_of_lines(const char *text, int *fds, size_t max)
{
	size_t n = 0;

	for (const char *p = text; *p && n < max;) {
		char *end;
		long pid = strtol(p, &end, 10);

		assert_true(end > p && *end == '\n');
		fds[n++] = pidfd_of(pid);
		p = end + 1;
	}
	return n;
}

static size_t count_char(const struct arl_buf *b, char c)
{
	size_t n = 0;

	for (size_t i = 0; i < b->len; i++)
		n += b->p[i] == c;
	return n;
}

/* ---- steps ---- */

static void test_output_framing(void **state)
{
	struct agent_proc ap;
	struct step_out o;

	(void)state;
	start_agent(&ap, false);
	expect_sh(ap.a, "echo hi", "hi\n", "", 0);
	expect_sh(ap.a, "printf hi", "hi", "", 0);
	expect_sh(ap.a, "printf 'no newline' >&2; exit 3", "", "no newline", 3);
	expect_sh(ap.a, "kill -KILL $$", "", "", 128 + SIGKILL);
	run_sh(ap.a, "printf 'a\\000b'", &o);
	assert_int_equal(o.out.len, 3);
	assert_memory_equal(o.out.p, "a\0b", 3);
	step_out_release(&o);
	stop_agent(&ap);
}

static void expect_seq(const struct arl_buf *b, int last)
{
	struct arl_buf want = ARL_BUF_INIT;

	for (int i = 1; i <= last; i++)
		arl_buf_addf(&want, "%d\n", i);
	assert_true(want.len > 1024 * 1024);
	assert_int_equal(b->len, want.len);
	assert_memory_equal(b->p, want.p, want.len);
	arl_buf_release(&want);
}

static void test_large_output(void **state)
{
	struct agent_proc ap;
	struct step_out o;

	(void)state;
	start_agent(&ap, false);
	/* Both streams at once: over 1 MiB each, whole and in order. */
	run_sh(ap.a, "seq 1 170000 >&2 & seq 1 170000; wait", &o);
	assert_int_equal(o.exit_code, 0);
	expect_seq(&o.out, 170000);
	expect_seq(&o.err, 170000);
	step_out_release(&o);
	stop_agent(&ap);
}

static void test_large_exec(void **state)
{
	struct agent_proc ap;
	struct step_out o;
	char *argv[8] = {"/bin/sh", "-c", "echo $#; printf %s \"$@\" | wc -c", "sh"};

	(void)state;
	/* 400 kB of arguments: the EXEC request spans several frames (ARL_PROTO_MORE). */
	for (int i = 4; i < 8; i++) {
		argv[i] = malloc(100001);
		memset(argv[i], 'a' + i, 100000);
		argv[i][100000] = '\0';
	}
	start_agent(&ap, false);
	run_step(ap.a,
	         (char *[]){argv[0], argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7],
	                    NULL},
	         "/", &o);
	assert_string_equal(o.out.p, "4\n400000\n");
	step_out_release(&o);
	stop_agent(&ap);
	for (int i = 4; i < 8; i++)
		free(argv[i]);
}

static void test_env_and_workdir(void **state)
{
	char dir[] = "/tmp/arl-agent-XXXXXX";
	char *env[] = {"A=1", "B=two words", "EMPTY=", NULL};
	char *argv_env[] = {"/usr/bin/env", NULL};
	char *argv_pwd[] = {"/bin/pwd", "-P", NULL};
	struct arl_err err = ARL_ERR_INIT;
	struct agent_proc ap;
	struct step_out o = {0};
	char want[64];
	uint32_t id;

	(void)state;
	assert_non_null(mkdtemp(dir));
	start_agent(&ap, false);
	assert_int_equal(arl_agent_exec(ap.a, argv_env, env, "/", &id, &err), 0);
	while (!take_event(ap.a, id, &o))
		;
	assert_string_equal(o.out.p, "A=1\nB=two words\nEMPTY=\n");
	step_out_release(&o);
	run_step(ap.a, argv_pwd, dir, &o);
	snprintf(want, sizeof(want), "%s\n", dir);
	assert_string_equal(o.out.p, want);
	step_out_release(&o);
	stop_agent(&ap);
	rmdir(dir);
}

static void test_start_errors(void **state)
{
	char *argv_true[] = {"true", NULL};
	char *argv_none[] = {"no-such-program-x", NULL};
	struct agent_proc ap;
	struct step_out o;

	(void)state;
	start_agent(&ap, false);
	run_step(ap.a, argv_true, "/nonexistent/dir", &o);
	assert_true(o.error);
	assert_int_equal(o.errnum, ENOENT);
	assert_string_equal(o.text, "cannot change to work directory '/nonexistent/dir': No such "
	                            "file or directory");
	run_step(ap.a, argv_none, "/", &o);
	assert_true(o.error);
	assert_string_equal(o.text, "cannot run 'no-such-program-x': No such file or directory");
	/* The agent goes on serving. */
	expect_sh(ap.a, "echo still here", "still here\n", "", 0);
	stop_agent(&ap);
}

/* Runs @argv in @dir with the environment @env; its stdout, or its ERROR's text. */
static void run_env(struct arl_agent *a, char *const argv[], char *const env[], const char *dir,
                    struct step_out *o)
{
	struct arl_err err = ARL_ERR_INIT;
	uint32_t id = 0;

	if (arl_agent_exec(a, argv, env, dir, &id, &err) < 0)
		fail_msg("arl_agent_exec: %s", err.msg);
	memset(o, 0, sizeof(*o));
	while (!take_event(a, id, o))
		;
}

static void expect_out(struct arl_agent *a, char *const argv[], const char *path, const char *dir,
                       const char *out)
{
	char *env[] = {(char *)path, NULL};
	struct step_out o;

	run_env(a, argv, path ? env : env + 1, dir, &o);
	assert_false(o.error);
	assert_int_equal(o.exit_code, 0);
	assert_non_null(o.out.p);
	assert_string_equal(o.out.p, out);
	step_out_release(&o);
}

/*
 * A step's program is found and started as glibc's execvp does it, whichever libc the agent
 * was linked with: a file without "#!" runs through /bin/sh, PATH is the step's own (an empty
 * element is the work directory, none at all is /bin:/usr/bin), an unexecutable file on PATH
 * is skipped for a later one, and only such files found is EACCES.
 */
/* Makes @dir/@name holding @text with @mode. */
static void put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_program_search(void **state)
{
	char d[] = "/tmp/arl-agent-exec-XXXXXX", d2[] = "/tmp/arl-agent-exec-XXXXXX";
	char script[64], path[160], cmd[128];
	char *abs_argv[] = {script, "a", NULL};
	char *rel_argv[] = {"arl-noshebang", "b", NULL};
	char *prog_argv[] = {"arl-prog", NULL};
	char *sh_argv[] = {"sh", "-c", "echo default", NULL};
	struct agent_proc ap;
	struct step_out o;

	(void)state;
	assert_non_null(mkdtemp(d));
	assert_non_null(mkdtemp(d2));
	snprintf(script, sizeof(script), "%s/arl-noshebang", d);
	put_file(d, "arl-noshebang", "echo \"script $1\"\n", 0755);
	put_file(d, "arl-prog", "echo later\n", 0755);
	put_file(d2, "arl-prog", "echo first\n", 0644);
	start_agent(&ap, false);

	expect_out(ap.a, abs_argv, "PATH=/usr/bin:/bin", "/", "script a\n");
	snprintf(path, sizeof(path), "PATH=/nonexistent:%s", d);
	expect_out(ap.a, rel_argv, path, "/", "script b\n");
	expect_out(ap.a, rel_argv, "PATH=/bin:", d, "script b\n");
	snprintf(path, sizeof(path), "PATH=%s:%s", d2, d);
	expect_out(ap.a, prog_argv, path, "/", "later\n");
	expect_out(ap.a, sh_argv, NULL, "/", "default\n");

	snprintf(path, sizeof(path), "PATH=%s", d2);
	{
		char *env[] = {path, NULL};

		run_env(ap.a, prog_argv, env, "/", &o);
	}
	assert_true(o.error);
	assert_int_equal(o.errnum, EACCES);
	assert_string_equal(o.text, "cannot run 'arl-prog': Permission denied");
	stop_agent(&ap);
	snprintf(cmd, sizeof(cmd), "rm -r '%s' '%s'", d, d2);
	assert_int_equal(system(cmd), 0);
}

/*
 * Pod semantics: a step's end kills nothing (a background process in its group and one in its
 * own session both live on); SIGNAL reaches the step's group only, and what is left of the
 * group when its first process dies is killed; what left the group survives until the
 * sandbox ends.
 */
static void test_background_and_signal(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	struct agent_proc ap;
	struct step_out o;
	int first[2], second[3];
	uint32_t id;
	char *argv[] = {"/bin/sh", "-c",
	                "setsid sh -c 'echo detached >&2; exec sleep 1000' & echo $!;"
	                " sleep 1000 & echo $!;"
	                " (trap '' TERM; echo ignoring >&2; exec sleep 1000) & echo $!; wait",
	                NULL};

	(void)state;
	start_agent(&ap, false);
	run_sh(ap.a, "setsid sleep 1000 & echo $!; sleep 1000 & echo $!", &o);
	assert_int_equal(o.exit_code, 0);
	assert_int_equal(pidfds_of_lines(o.out.p, first, 2), 2);
	step_out_release(&o);
	assert_false(exited(first[0]));
	assert_false(exited(first[1]));

	id = exec_step(ap.a, argv, "/");
	memset(&o, 0, sizeof(o));
	/* Signalled once each child said it left the group or ignores SIGTERM: no race. */
	while (count_char(&o.out, '\n') < 3 || count_char(&o.err, '\n') < 2)
		assert_false(take_event(ap.a, id, &o));
	assert_int_equal(pidfds_of_lines(o.out.p, second, 3), 3);
	assert_int_equal(arl_agent_signal(ap.a, id, SIGTERM, &err), 0);
	while (!take_event(ap.a, id, &o))
		;
	assert_int_equal(o.signal, SIGTERM);
	assert_int_equal(o.exit_code, 128 + SIGTERM);
	step_out_release(&o);
	wait_exit(second[1]); /* in the group: SIGTERM */
	wait_exit(second[2]); /* in the group, ignoring SIGTERM: killed as the step ended */
	assert_false(exited(second[0]));
	assert_false(exited(first[0]));
	assert_false(exited(first[1]));
	/* A late SIGNAL for an ended step is ignored. */
	assert_int_equal(arl_agent_signal(ap.a, id, SIGKILL, &err), 0);
	expect_sh(ap.a, "echo after", "after\n", "", 0);
	assert_false(exited(second[0]));

	stop_agent(&ap); /* the subreaper's sweep: nothing outlives the agent */
	wait_exit(first[0]);
	wait_exit(first[1]);
	wait_exit(second[0]);
}

/* An orphan a step left is adopted and reaped when it dies: no zombie accumulates. */
static void test_orphans_reaped(void **state)
{
	struct agent_proc ap;
	struct step_out o;
	int fd;
	long pid;

	(void)state;
	start_agent(&ap, false);
	run_sh(ap.a, "sleep 1000 & echo $!", &o);
	pid = strtol(o.out.p, NULL, 10);
	step_out_release(&o);
	fd = pidfd_of(pid);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	wait_exit(fd); /* a zombie now, the agent's child */
	/*
	 * The agent reaps every zombie there is whenever a child exits: by the end of the
	 * second step it has seen the first one's exit after the orphan's.
	 */
	expect_sh(ap.a, "true", "", "", 0);
	expect_sh(ap.a, "true", "", "", 0);
	assert_int_equal(kill((pid_t)pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	stop_agent(&ap);
}

/*
 * A deadline that passed or a cancel fd that fired leaves the request outstanding: the caller
 * signals the step and reads on to its EXIT (as the runner's timeout will).
 */
static void test_deadline_and_cancel(void **state)
{
	char *argv[] = {"sleep", "1000", NULL};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_agent_event ev;
	struct agent_proc ap;
	struct step_out o = {0};
	int cancel[2];
	uint32_t id;

	(void)state;
	assert_int_equal(pipe2(cancel, O_CLOEXEC), 0);
	start_agent(&ap, false);
	id = exec_step(ap.a, argv, "/");
	assert_int_equal(arl_agent_next(ap.a, arl_now_ms() - 1, -1, &ev, &err), -1);
	assert_int_equal(err.code, ARL_E_TIMEOUT);
	assert_int_equal(write(cancel[1], "x", 1), 1);
	memset(&err, 0, sizeof(err));
	assert_int_equal(arl_agent_next(ap.a, 0, cancel[0], &ev, &err), -1);
	assert_int_equal(err.code, ARL_E_CANCELLED);
	/* One request at a time: a second one is refused while the step runs. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(arl_agent_exec(ap.a, argv, step_env, "/", &id, &err), -1);
	assert_string_equal(err.msg, "sandbox agent: request 1 still outstanding (one at a time)");
	memset(&err, 0, sizeof(err));
	assert_int_equal(arl_agent_signal(ap.a, 1, SIGKILL, &err), 0);
	while (!take_event(ap.a, 1, &o))
		;
	assert_int_equal(o.exit_code, 128 + SIGKILL);
	step_out_release(&o);
	stop_agent(&ap);
	close(cancel[0]);
	close(cancel[1]);
}

/* ---- files ---- */

static void expect_file(const char *path, const char *data, size_t len, mode_t mode)
{
	struct arl_buf b = ARL_BUF_INIT;
	struct arl_err err = ARL_ERR_INIT;
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	assert_int_equal(arl_buf_read_file(&b, path, 1 << 24, &err), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.len ? b.p : "", data, len);
	arl_buf_release(&b);
}

static void write_file(struct arl_agent *a, const char *path, unsigned mode, const void *data,
                       size_t len, struct step_out *o)
{
	struct arl_err err = ARL_ERR_INIT;
	uint32_t id;

	memset(o, 0, sizeof(*o));
	if (arl_agent_write(a, path, mode, data, len, &id, &err) < 0)
		fail_msg("arl_agent_write: %s", err.msg);
	assert_true(take_event(a, id, o));
}

static void test_write(void **state)
{
	char dir[] = "/tmp/arl-agent-XXXXXX";
	char path[128], big_path[128], want[256];
	struct agent_proc ap;
	struct step_out o;
	char *big = malloc(300000);

	(void)state;
	for (size_t i = 0; i < 300000; i++)
		big[i] = (char)(i * 7 + i / 1000);
	assert_non_null(mkdtemp(dir));
	start_agent(&ap, false);
	snprintf(path, sizeof(path), "%s/a/b/c.txt", dir);
	write_file(ap.a, path, 0600, "x\0y", 3, &o);
	assert_false(o.error);
	expect_file(path, "x\0y", 3, 0600);
	/* An existing file is truncated and takes the new mode, whatever the umask. */
	write_file(ap.a, path, 0751, "z", 1, &o);
	assert_false(o.error);
	expect_file(path, "z", 1, 0751);
	write_file(ap.a, path, 0644, "", 0, &o);
	expect_file(path, "", 0, 0644);
	snprintf(big_path, sizeof(big_path), "%s/big", dir);
	write_file(ap.a, big_path, 0644, big, 300000, &o);
	assert_false(o.error);
	expect_file(big_path, big, 300000, 0644);

	/* A parent that is a file. */
	snprintf(path, sizeof(path), "%s/a/b/c.txt/d", dir);
	write_file(ap.a, path, 0644, "q", 1, &o);
	assert_true(o.error);
	assert_int_equal(o.errnum, ENOTDIR);
	snprintf(want, sizeof(want), "refusing to write '%s/a/b/c.txt': not a directory", dir);
	assert_string_equal(o.text, want);
	/* A parent that is a symlink (to a directory) is refused, not followed. */
	snprintf(path, sizeof(path), "%s/ln", dir);
	assert_int_equal(symlink("a", path), 0);
	snprintf(path, sizeof(path), "%s/ln/b/x", dir);
	write_file(ap.a, path, 0644, "q", 1, &o);
	assert_true(o.error);
	assert_int_equal(o.errnum, ELOOP);
	snprintf(want, sizeof(want), "refusing to write '%s/ln': it is a symlink", dir);
	assert_string_equal(o.text, want);
	snprintf(path, sizeof(path), "%s/a/b/x", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/ln", dir);
	unlink(path);
	expect_sh(ap.a, "echo serving", "serving\n", "", 0);
	stop_agent(&ap);
	free(big);
	unlink(big_path);
	snprintf(path, sizeof(path), "%s/a/b/c.txt", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/a/b", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/a", dir);
	rmdir(path);
	rmdir(dir);
}

static void test_write_refuses_symlink_and_fifo(void **state)
{
	char dir[] = "/tmp/arl-agent-XXXXXX";
	char target[128], link[128], dangling[128], fifo[128], want[256];
	struct agent_proc ap;
	struct step_out o;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(dangling, sizeof(dangling), "%s/dangling", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_non_null(f = fopen(target, "w"));
	fputs("keep", f);
	fclose(f);
	chmod(target, 0644);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(symlink("/tmp/arl-agent-nowhere", dangling), 0);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	start_agent(&ap, false);

	write_file(ap.a, link, 0600, "evil", 4, &o);
	assert_true(o.error);
	assert_int_equal(o.errnum, ELOOP);
	snprintf(want, sizeof(want), "refusing to write '%s': it is a symlink", link);
	assert_string_equal(o.text, want);
	expect_file(target, "keep", 4, 0644);

	write_file(ap.a, dangling, 0600, "evil", 4, &o);
	assert_true(o.error);
	assert_int_equal(access("/tmp/arl-agent-nowhere", F_OK), -1);

	write_file(ap.a, fifo, 0600, "x", 1, &o); /* never blocks on a FIFO */
	assert_true(o.error);
	snprintf(want, sizeof(want), "refusing to write '%s': not a regular file", fifo);
	assert_string_equal(o.text, want);
	stop_agent(&ap);
	unlink(fifo);
	unlink(dangling);
	unlink(link);
	unlink(target);
	rmdir(dir);
}

/* ---- the client against a forged agent ---- */

static void put_frame(int fd, unsigned type, unsigned flags, uint32_t id, const void *p, size_t n)
{
	unsigned char buf[ARL_PROTO_FRAME_MAX + 16];

	assert_true(n + ARL_PROTO_HEADER <= sizeof(buf));
	arl_proto_put_header(buf, type, flags, id);
	if (n)
		memcpy(buf + ARL_PROTO_HEADER, p, n);
	assert_int_equal(send(fd, buf, n + ARL_PROTO_HEADER, 0), (ssize_t)(n + ARL_PROTO_HEADER));
}

static void put_u32s(int fd, unsigned type, uint32_t id, uint32_t x, uint32_t y)
{
	unsigned char p[8];

	arl_proto_put_u32(p, x);
	arl_proto_put_u32(p + 4, y);
	put_frame(fd, type, 0, id, p, 8);
}

/* A client whose agent is the test: returns the agent's end (HELLO already sent). */
static int fake_agent(struct arl_agent **a)
{
	struct arl_err err = ARL_ERR_INIT;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	put_u32s(sv[1], ARL_PROTO_HELLO, 0, ARL_PROTO_VERSION, 1);
	if (arl_agent_open(a, sv[0], 0, &err) < 0)
		fail_msg("arl_agent_open: %s", err.msg);
	return sv[1];
}

/* Starts a step on a forged agent, feeds it what @feed sends, expects @msg from next(). */
static void expect_forged(void (*feed)(int fd), const char *msg)
{
	char *argv[] = {"true", NULL};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_agent_event ev;
	struct arl_agent *a;
	uint32_t id;
	int fd = fake_agent(&a);

	assert_int_equal(arl_agent_exec(a, argv, step_env, "/", &id, &err), 0);
	assert_int_equal(id, 1);
	feed(fd);
	do {
		memset(&err, 0, sizeof(err));
	} while (arl_agent_next(a, 0, -1, &ev, &err) == 0 && ev.kind == ARL_AGENT_STDOUT);
	assert_string_equal(err.msg, msg);
	/* Broken for good: nothing it says afterwards is trusted. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(arl_agent_next(a, 0, -1, &ev, &err), -1);
	assert_string_equal(err.msg, "sandbox agent connection is broken");
	memset(&err, 0, sizeof(err));
	assert_int_equal(arl_agent_exec(a, argv, step_env, "/", &id, &err), -1);
	arl_agent_free(a);
	close(fd);
}

static void feed_oversized(int fd)
{
	static unsigned char big[ARL_PROTO_FRAME_MAX + 1];

	put_frame(fd, ARL_PROTO_STDOUT, 0, 1, "ok", 2);
	arl_proto_put_header(big, ARL_PROTO_STDOUT, 0, 1);
	assert_int_equal(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
}

static void feed_wrong_id(int fd)
{
	put_frame(fd, ARL_PROTO_STDOUT, 0, 99, "x", 1);
}

static void feed_bad_exit(int fd)
{
	put_u32s(fd, ARL_PROTO_EXIT, 1, ARL_PROTO_SIGNALED, 200);
}

static void feed_runner_type(int fd)
{
	put_frame(fd, ARL_PROTO_EXEC, 0, 1, "x", 1);
}

static void feed_unknown_type(int fd)
{
	put_frame(fd, 200, 0, 1, "x", 1);
}

static void feed_ok_for_exec(int fd)
{
	put_frame(fd, ARL_PROTO_OK, 0, 1, NULL, 0);
}

static void feed_flags(int fd)
{
	put_frame(fd, ARL_PROTO_STDOUT, ARL_PROTO_MORE, 1, "x", 1);
}

static void feed_short(int fd)
{
	assert_int_equal(send(fd, "\x11\0\0", 3, 0), 3);
}

static void feed_eof(int fd)
{
	shutdown(fd, SHUT_WR);
}

static void feed_agent_failure(int fd)
{
	unsigned char p[4 + 12];

	arl_proto_put_u32(p, EPROTO);
	memcpy(p + 4, "bad\x1b[2Jthing", 12);
	put_frame(fd, ARL_PROTO_ERROR, 0, 0, p, sizeof(p));
}

/* An fd passed along with a frame: the kernel closes it, the client refuses the frame. */
static void feed_fd(int fd)
{
	unsigned char frame[ARL_PROTO_HEADER + 1];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = {frame, sizeof(frame)};
	struct msghdr m = {.msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = c.buf,
	                   .msg_controllen = sizeof(c.buf)};
	int passed = 0;

	arl_proto_put_header(frame, ARL_PROTO_STDOUT, 0, 1);
	frame[ARL_PROTO_HEADER] = 'x';
	memset(&c, 0, sizeof(c));
	c.h.cmsg_level = SOL_SOCKET;
	c.h.cmsg_type = SCM_RIGHTS;
	c.h.cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(&c.h), &passed, sizeof(int));
	assert_int_equal(sendmsg(fd, &m, 0), (ssize_t)sizeof(frame));
}

static void test_forged_frames(void **state)
{
	(void)state;
	expect_forged(feed_oversized, "sandbox agent sent a frame over 65536 bytes or with fds");
	expect_forged(feed_fd, "sandbox agent sent a frame over 65536 bytes or with fds");
	expect_forged(feed_wrong_id, "sandbox agent answered request 99, expected 1");
	expect_forged(feed_bad_exit,
	              "sandbox agent sent a malformed EXIT frame: status out of range");
	expect_forged(feed_runner_type, "sandbox agent sent a EXEC frame, which only the runner "
	                                "sends");
	expect_forged(feed_unknown_type, "sandbox agent sent a frame of unknown type 200");
	expect_forged(feed_ok_for_exec, "sandbox agent sent a frame request 1 cannot have");
	expect_forged(feed_flags, "sandbox agent sent a malformed STDOUT frame: header flags set");
	expect_forged(feed_short,
	              "sandbox agent sent a malformed frame: frame shorter than its header");
	expect_forged(feed_eof, "sandbox agent closed the connection (the sandbox ended)");
	expect_forged(feed_agent_failure, "sandbox agent failed: bad\\x1b[2Jthing");
}

static void test_open_checks_hello(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	struct arl_agent *a = NULL;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	put_u32s(sv[1], ARL_PROTO_HELLO, 0, 9, 1);
	assert_int_equal(arl_agent_open(&a, sv[0], 0, &err), -1);
	assert_null(a);
	assert_string_equal(err.msg, "sandbox agent speaks protocol 9, this arl-batch protocol 1 "
	                             "(install arl-batch and arl-batch-agent together)");
	close(sv[1]);

	/* An agent that never says anything: the deadline, not a hang. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(arl_agent_open(&a, sv[0], arl_now_ms() - 1, &err), -1);
	assert_int_equal(err.code, ARL_E_TIMEOUT);
	close(sv[1]);
}

/* A request the agent cannot understand: it says why (id 0) and exits, never guesses. */
static void test_agent_refuses_bad_request(void **state)
{
	static const struct {
		unsigned char frame[16];
		size_t len;
		const char *why;
	} bad[] = {
	    {{99, 0, 0, 0, 1, 0, 0, 0}, 8, "unknown frame type from the runner"},
	    {{ARL_PROTO_SIGNAL, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0}, 11, "malformed SIGNAL frame"},
	    {{ARL_PROTO_EXEC, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
	     16,
	     "malformed EXEC frame"},
	    {{ARL_PROTO_WRITE_DATA, 0, 0, 0, 7, 0, 0, 0, 'x'}, 9, "WRITE_DATA frame without WRITE"},
	    {{ARL_PROTO_SIGNAL, 0, 1, 0, 1, 0, 0, 0, 9, 0, 0, 0}, 12, "reserved header bits set"},
	};
	unsigned char buf[ARL_PROTO_FRAME_MAX];
	struct arl_agent_event ev;
	struct arl_err err = ARL_ERR_INIT;
	char want[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pid_t pid;
		int status, fd = spawn_agent(&pid, false);
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		assert_int_equal(arl_agent_decode(buf, (size_t)n, &ev, &err), 0);
		assert_int_equal(ev.kind, ARL_AGENT_HELLO);
		assert_int_equal(send(fd, bad[i].frame, bad[i].len, 0), (ssize_t)bad[i].len);
		n = recv(fd, buf, sizeof(buf), 0);
		assert_int_equal(arl_agent_decode(buf, (size_t)n, &ev, &err), 0);
		assert_int_equal(ev.kind, ARL_AGENT_ERROR);
		assert_int_equal(ev.id, 0);
		snprintf(want, sizeof(want), "sandbox agent: protocol error: %s", bad[i].why);
		assert_int_equal(ev.len, strlen(want));
		assert_memory_equal(ev.data, want, ev.len);
		assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0); /* then it is gone */
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 1);
		close(fd);
	}
}

/* ---- hardening and the end ---- */

static void test_hardening(void **state)
{
	struct agent_proc ap;
	struct step_out o;

	(void)state;
	start_agent(&ap, false);
	/* No capability left to regain through execve, even as uid 0. */
	expect_sh(ap.a, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status",
	          "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
	          "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n"
	          "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n",
	          "", 0);
	/* The socket is not inherited, and the agent's fds cannot be reached through /proc. */
	expect_sh(ap.a, "[ -e /dev/fd/3 ] && echo open || echo closed", "closed\n", "", 0);
	for (size_t i = 0; i < 3; i++) {
		static const char *const peek[] = {"readlink -v /proc/$PPID/fd/3",
		                                   "cat /proc/$PPID/environ",
		                                   "head -c1 /proc/$PPID/mem"};

		run_sh(ap.a, peek[i], &o);
		if (o.exit_code == 0 || !o.err.p || !strstr(o.err.p, "Permission denied"))
			fail_msg("'%s' exited %d: %s%s", peek[i], o.exit_code,
			         o.out.p ? o.out.p : "", o.err.p ? o.err.p : "");
		step_out_release(&o);
	}
	stop_agent(&ap);
}

/* Pids of every process whose PID namespace is @ns ("pid:[N]"), as pidfds. */
static size_t pidfds_in_ns(const char *ns, int *fds, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) && n < max) {
		char path[300], link[64];
		ssize_t len;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/pid", e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		if (!strcmp(link, ns)) {
			int fd =
			    (int)syscall(SYS_pidfd_open, (pid_t)strtol(e->d_name, NULL, 10), 0);

			if (fd >= 0)
				fds[n++] = fd;
		}
	}
	closedir(d);
	return n;
}

static void test_close_ends_pid_namespace(void **state)
{
	struct agent_proc ap;
	struct step_out o;
	char path[64], kids[64], ns[64];
	int fds[16], status;
	long agent_pid;
	size_t n;
	ssize_t len;
	FILE *f;

	(void)state;
	if (start_agent(&ap, true) < 0)
		skip();
	assert_int_equal(arl_agent_pid(ap.a), 1);
	run_sh(ap.a, "setsid sleep 1000 & sleep 1000 & echo started", &o);
	assert_string_equal(o.out.p, "started\n");
	step_out_release(&o);
	/* unshare forked the agent: its only child. */
	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)ap.pid, (long)ap.pid);
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(kids, sizeof(kids), f));
	fclose(f);
	agent_pid = strtol(kids, NULL, 10);
	snprintf(path, sizeof(path), "/proc/%ld/ns/pid", agent_pid);
	assert_true((len = readlink(path, ns, sizeof(ns) - 1)) > 0);
	ns[len] = '\0';
	n = pidfds_in_ns(ns, fds, 16);
	assert_true(n >= 3); /* the agent and both sleeps */

	arl_agent_free(ap.a);
	for (size_t i = 0; i < n; i++)
		wait_exit(fds[i]);
	assert_int_equal(waitpid(ap.pid, &status, 0), ap.pid);
	assert_true(WIFEXITED(status));
}

/*
 * The static agent as it will run: PID 1 of a bwrap sandbox whose root holds nothing but the
 * agent itself (no shared library, no shell), serving a WRITE and running a program.
 */
static void test_static_in_empty_root(void **state)
{
	char root[] = "/tmp/arl-agent-root-XXXXXX";
	char cmd[512], agent[256];
	char *argv[] = {"bwrap",
	                "--unshare-all",
	                "--unshare-user",
	                "--uid",
	                "0",
	                "--gid",
	                "0",
	                "--as-pid-1",
	                "--die-with-parent",
	                "--ro-bind",
	                root,
	                "/",
	                "--dev",
	                "/dev",
	                "--proc",
	                "/proc",
	                "--tmpfs",
	                "/tmp",
	                "/arl-batch-agent",
	                "--fd",
	                "3",
	                NULL};
	char *usage_argv[] = {"/arl-batch-agent", NULL};
	char *sh_argv[] = {"sh", "-c", "true", NULL};
	posix_spawn_file_actions_t fa;
	struct arl_err err = ARL_ERR_INIT;
	struct agent_proc ap;
	struct step_out o;
	int sv[2], child_end, status;

	(void)state;
	if (!is_static_elf(ARL_AGENT_BIN) ||
	    system("bwrap --unshare-all --ro-bind / / true 2>/dev/null") != 0)
		skip(); /* a sanitizer build links it dynamically; no bwrap here */
	assert_non_null(mkdtemp(root));
	snprintf(agent, sizeof(agent), "%s/arl-batch-agent", root);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && mkdir '%s/dev' '%s/proc' '%s/tmp'",
	         ARL_AGENT_BIN, agent, root, root, root);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
	close(sv[1]);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, child_end, 3);
	assert_int_equal(posix_spawnp(&ap.pid, "bwrap", &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(child_end);
	if (arl_agent_open(&ap.a, sv[0], 0, &err) < 0)
		fail_msg("arl_agent_open: %s", err.msg);
	assert_int_equal(arl_agent_pid(ap.a), 1);

	write_file(ap.a, "/tmp/a/b", 0600, "x", 1, &o);
	assert_false(o.error);
	run_step(ap.a, usage_argv, "/tmp/a", &o); /* the only program there is */
	assert_int_equal(o.exit_code, 2);
	assert_non_null(o.out.p);
	assert_non_null(strstr(o.out.p, "usage: arl-batch-agent --fd N"));
	step_out_release(&o);
	run_step(ap.a, sh_argv, "/", &o);
	assert_true(o.error);
	assert_string_equal(o.text, "cannot run 'sh': No such file or directory");

	arl_agent_free(ap.a);
	assert_int_equal(waitpid(ap.pid, &status, 0), ap.pid);
	assert_true(WIFEXITED(status));
	snprintf(cmd, sizeof(cmd), "rm -r '%s'", root);
	assert_int_equal(system(cmd), 0);
}

static void test_agent_path(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	char exe[PATH_MAX], want[PATH_MAX + 128], *path = NULL;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	(void)state;
	/* This test program is not installed beside the agent: the message says where it looked. */
	assert_true(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	assert_int_equal(arl_agent_path(&path, &err), -1);
	assert_null(path);
	snprintf(want, sizeof(want),
	         "cannot find the sandbox agent '%s/arl-batch-agent' (it is installed beside "
	         "arl-batch): No such file or directory",
	         exe);
	assert_string_equal(err.msg, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_output_framing),
	    cmocka_unit_test(test_large_output),
	    cmocka_unit_test(test_large_exec),
	    cmocka_unit_test(test_env_and_workdir),
	    cmocka_unit_test(test_start_errors),
	    cmocka_unit_test(test_program_search),
	    cmocka_unit_test(test_background_and_signal),
	    cmocka_unit_test(test_orphans_reaped),
	    cmocka_unit_test(test_deadline_and_cancel),
	    cmocka_unit_test(test_write),
	    cmocka_unit_test(test_write_refuses_symlink_and_fifo),
	    cmocka_unit_test(test_forged_frames),
	    cmocka_unit_test(test_open_checks_hello),
	    cmocka_unit_test(test_agent_refuses_bad_request),
	    cmocka_unit_test(test_hardening),
	    cmocka_unit_test(test_close_ends_pid_namespace),
	    cmocka_unit_test(test_static_in_empty_root),
	    cmocka_unit_test(test_agent_path),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
