/*
 * Unit tests for spawn.c: exit codes, environment and cwd, start errors, output capture with
 * its cap, deadlines, cancellation, process-group cleanup (and `lingering` for what escaped
 * it), fd hygiene and concurrent use.
 * The children are /bin/sh scripts; pids they print let us check nothing is left running.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>
#include <linux/keyctl.h>

#include "spawn.h"
#include "util.h"
#include "fake_clock.h"
#include "banned.h"

#define MIB (1024 * 1024)

/* Runs `/bin/sh -c script` with @o's other settings; asserts it started. */
static void run_sh(struct arl_spawn_opts *o, const char *script, struct arl_spawn_result *r)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct arl_err err = ARL_ERR_INIT;

	o->argv = argv;
	if (arl_spawn_run(o, r, &err) < 0)
		fail_msg("arl_spawn_run('%s'): %s", script, err.msg);
	o->argv = NULL;
}

/* Expects a start failure with exactly @msg, and @res left alone. */
static void expect_start_error(const struct arl_spawn_opts *o, const char *msg)
{
	struct arl_spawn_result r;
	struct arl_err err = ARL_ERR_INIT;

	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(arl_spawn_run(o, &r, &err), -1);
	assert_string_equal(err.msg, msg);
	assert_int_equal(r.exit_code, 0x5a5a5a5a);
}

static pid_t first_pid(const struct arl_output *out)
{
	int64_t v = 0;
	char line[32];
	size_t n = strcspn(out->data, "\n");

	assert_true(n > 0 && n < sizeof(line));
	memcpy(line, out->data, n);
	line[n] = '\0';
	assert_int_equal(arl_parse_i64(line, 1, INT_MAX, &v), 0);
	return (pid_t)v;
}

/* True once @pid is gone or a zombie (orphans wait for whoever reaps them, if anyone). */
static bool is_dead(pid_t pid)
{
	char path[64], buf[512], *paren;
	FILE *f;
	size_t n;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return true;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return !paren || paren[1] != ' ' || paren[2] == 'Z' || paren[2] == 'X';
}

/* Until @pid is dead (a hang here is the failure; ctest's timeout reports it). */
static void until_dead(pid_t pid)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	while (!is_dead(pid))
		nanosleep(&ts, NULL);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static long max_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* The expected "\n[... N bytes truncated ...]\n" between head and tail. */
static char *marker(uint64_t dropped)
{
	return arl_xasprintf("\n[... %" PRIu64 " bytes truncated ...]\n", dropped);
}

/* Checks @out is @cap/2 bytes of @full's head, the marker, then the rest of the cap's tail. */
static void assert_head_tail(const struct arl_output *out, const char *full, size_t full_len,
                             size_t cap)
{
	size_t head = cap / 2, tail = cap - head;
	char *m = marker(full_len - cap);
	size_t mlen = strlen(m);

	assert_true(out->truncated);
	assert_int_equal(out->len, cap + mlen);
	assert_int_equal(out->data[out->len], '\0');
	assert_memory_equal(out->data, full, head);
	assert_memory_equal(out->data + head, m, mlen);
	assert_memory_equal(out->data + head + mlen, full + full_len - tail, tail);
	free(m);
}

/* First, while the peak RSS is still low: 50 MiB of output must not be held in memory. */
static void test_memory_bounded(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	long before = max_rss_kib(), grown;

	(void)state;
	run_sh(&o, "head -c 52428800 /dev/zero | tr '\\0' m", &r);
	grown = max_rss_kib() - before;
	assert_int_equal(r.exit_code, 0);
	assert_true(r.out.truncated);
	assert_int_equal(r.out.len, ARL_SPAWN_DEFAULT_CAPTURE +
	                                strlen("\n[... 51380224 bytes truncated ...]\n"));
	print_message("peak RSS grew by %ld KiB for 50 MiB of output\n", grown);
	assert_true(grown < 24 * 1024); /* keeping it all would be 50 MiB and more */
	arl_spawn_result_release(&r);
}

static void test_exit_codes(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	int64_t t0;

	(void)state;
	run_sh(&o, "exit 0", &r);
	assert_int_equal(r.exit_code, 0);
	assert_false(r.timed_out);
	assert_false(r.cancelled);
	assert_false(r.lingering);
	assert_int_equal(r.out.len, 0);
	assert_string_equal(r.out.data, "");
	arl_spawn_result_release(&r);

	t0 = arl_now_ms();
	run_sh(&o, "echo out; echo err >&2; exit 42", &r);
	t0 = arl_now_ms() - t0;
	assert_int_equal(r.exit_code, 42);
	assert_string_equal(r.out.data, "out\n");
	assert_string_equal(r.err.data, "err\n");
	assert_false(r.out.truncated);
	assert_false(r.err.truncated);
	assert_in_range(r.duration_ms, 0, t0); /* within the call, however long it took */
	arl_spawn_result_release(&r);

	run_sh(&o, "kill -9 $$", &r);
	assert_int_equal(r.exit_code, 128 + SIGKILL);
	assert_false(r.timed_out);
	arl_spawn_result_release(&r);

	/* Binary output: NULs are kept and counted. */
	run_sh(&o, "printf 'a\\000b'", &r);
	assert_int_equal(r.out.len, 3);
	assert_memory_equal(r.out.data, "a\0b", 4);
	arl_spawn_result_release(&r);
}

static void test_env_and_cwd(void **state)
{
	char tmpl[] = "/tmp/arl-spawn-XXXXXX", *dir, *want, real[PATH_MAX];
	char *envp[] = {"FOO=bar baz", NULL};
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;

	(void)state;
	assert_non_null(dir = mkdtemp(tmpl));
	assert_non_null(realpath(dir, real));
	/* No PATH in envp: "sh" is found through ours; HOME must not leak in. */
	char *argv[] = {"sh", "-c", "printf '%s|%s|' \"$FOO\" \"${HOME-unset}\"; pwd -P", NULL};
	struct arl_err err = ARL_ERR_INIT;

	o.argv = argv;
	o.envp = envp;
	o.cwd = dir;
	assert_int_equal(arl_spawn_run(&o, &r, &err), 0);
	want = arl_xasprintf("bar baz|unset|%s\n", real);
	assert_string_equal(r.out.data, want);
	assert_int_equal(r.exit_code, 0);
	free(want);
	arl_spawn_result_release(&r);

	/* envp NULL inherits ours; cwd NULL inherits ours. */
	o = (struct arl_spawn_opts)ARL_SPAWN_OPTS_INIT;
	run_sh(&o, "printf '%s' \"$ARL_TEST_INHERITED\"", &r);
	assert_string_equal(r.out.data, "yes");
	arl_spawn_result_release(&r);
	assert_int_equal(rmdir(dir), 0);
}

/* argv[0] without '/' is searched in the child's PATH, and relative paths in its cwd. */
static void test_path_search(void **state)
{
	char tmpl[] = "/tmp/arl-spawn-XXXXXX", *dir, *prog, *path_env;
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	struct arl_err err = ARL_ERR_INIT;
	FILE *f;

	(void)state;
	assert_non_null(dir = mkdtemp(tmpl));
	prog = arl_xasprintf("%s/arl-spawn-probe", dir);
	assert_non_null(f = fopen(prog, "we"));
	fputs("#!/bin/sh\necho \"probe $*\"\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(prog, 0755), 0);
	path_env = arl_xasprintf("PATH=/nonexistent:%s:/usr/bin:/bin", dir);

	char *envp[] = {path_env, NULL};
	char *argv[] = {"arl-spawn-probe", "x", NULL};
	o.argv = argv;
	o.envp = envp;
	assert_int_equal(arl_spawn_run(&o, &r, &err), 0);
	assert_string_equal(r.out.data, "probe x\n");
	arl_spawn_result_release(&r);

	/* Our own PATH does not have it. */
	o.envp = NULL;
	expect_start_error(&o, "cannot run 'arl-spawn-probe': No such file or directory");

	char *rel[] = {"./arl-spawn-probe", "y", NULL};
	o.argv = rel;
	o.cwd = dir;
	assert_int_equal(arl_spawn_run(&o, &r, &err), 0);
	assert_string_equal(r.out.data, "probe y\n");
	arl_spawn_result_release(&r);

	/* Found but not executable is EACCES, as with execvp(). */
	assert_int_equal(chmod(prog, 0644), 0);
	o.argv = argv;
	o.envp = envp;
	o.cwd = NULL;
	expect_start_error(&o, "cannot run 'arl-spawn-probe': Permission denied");

	assert_int_equal(unlink(prog), 0);
	assert_int_equal(rmdir(dir), 0);
	free(prog);
	free(path_env);
}

/*
 * An identity for the child (the local backend's steps): a fresh session keyring (a key of
 * our session is not found), fd 3, and as root other ids and a bind in a mount namespace of
 * its own (our mount table unchanged). Exec failures read as posix_spawn's.
 */
static void test_ident(void **state)
{
	char tmpl[] = "/tmp/arl-spawn-id-XXXXXX", *dir, *src, *dst, *cwd, *script, *desc;
	struct arl_spawn_ident id = {0};
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	char *noexec[] = {"/etc/passwd", NULL};
	int p[2];

	(void)state;
	assert_non_null(dir = mkdtemp(tmpl));
	desc = arl_xasprintf("arl-spawn-test-%ld", (long)getpid());
	/* Our own session keyring, holding a key a child must not find. */
	assert_true(syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) >= 0);
	assert_true(
	    syscall(SYS_add_key, "user", desc, "secret", (size_t)6, KEY_SPEC_SESSION_KEYRING) >= 0);
	script = arl_xasprintf(
	    "keyctl request user %s >/dev/null 2>&1 && echo found || echo hidden", desc);
	if (access("/usr/bin/keyctl", X_OK) == 0) {
		run_sh(&o, script, &r); /* the control: without an identity, it is ours */
		assert_string_equal(r.out.data, "found\n");
		arl_spawn_result_release(&r);
		id.new_keyring = true;
		o.ident = &id;
		run_sh(&o, script, &r);
		assert_string_equal(r.out.data, "hidden\n");
		arl_spawn_result_release(&r);
	}
	id.new_keyring = true;
	o.ident = &id;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "on fd 3", 7), 7);
	close(p[1]);
	id.fd3 = p[0];
	run_sh(&o, "cat <&3; echo; ls /proc/self/fd | wc -l", &r);
	/* 0-3, and the fd ls reads /proc/self/fd through: nothing else of ours. */
	assert_string_equal(r.out.data, "on fd 3\n5\n");
	arl_spawn_result_release(&r);
	close(p[0]);
	id.fd3 = 0;
	o.argv = noexec;
	expect_start_error(&o, "cannot run '/etc/passwd': Permission denied");

	if (geteuid() == 0) {
		char *sub, *file, *want, *grep;

		src = arl_xasprintf("%s/src", dir);
		dst = arl_xasprintf("%s/dst", dir);
		sub = arl_xasprintf("%s/sub", src);
		cwd = arl_xasprintf("%s/sub", dst); /* sub as the child reaches it */
		file = arl_xasprintf("%s/f", sub);
		assert_int_equal(mkdir(src, 0700), 0);
		assert_int_equal(mkdir(sub, 0700), 0);
		assert_int_equal(mkdir(dst, 0755), 0);
		assert_int_equal(chown(src, 65529, 65529), 0);
		assert_int_equal(chown(sub, 65529, 65529), 0);
		/* The child enters cwd_path as the new uid, so dst's parents must let it through. */
		assert_int_equal(chmod(dir, 0711), 0);
		id = (struct arl_spawn_ident){.set_ids = true,
		                              .uid = 65529,
		                              .gid = 65528,
		                              .new_keyring = true,
		                              .bind_src = src,
		                              .bind_dst = dst,
		                              .cwd_path = cwd};
		run_sh(&o, "id -u; id -g; id -G; pwd; touch f && echo written", &r);
		want = arl_xasprintf("65529\n65528\n65528\n%s\nwritten\n", cwd);
		assert_string_equal(r.out.data, want);
		arl_spawn_result_release(&r);
		assert_int_equal(unlink(file), 0); /* written through the bind */
		grep = arl_xasprintf("grep -c ' %s ' /proc/%ld/mountinfo", dst, (long)getpid());
		o = (struct arl_spawn_opts)ARL_SPAWN_OPTS_INIT;
		run_sh(&o, grep, &r);
		assert_string_equal(r.out.data,
		                    "0\n"); /* the bind stayed in the child's namespace */
		arl_spawn_result_release(&r);
		assert_int_equal(rmdir(sub), 0);
		assert_int_equal(rmdir(src), 0);
		assert_int_equal(rmdir(dst), 0);
		free(grep);
		free(want);
		free(file);
		free(cwd);
		free(sub);
		free(src);
		free(dst);
	}
	free(script);
	free(desc);
	assert_int_equal(rmdir(dir), 0);
}

static void test_start_errors(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	char *missing[] = {"/nonexistent/arl-prog", NULL};
	char *unknown[] = {"arl-no-such-program", NULL};
	char *noexec[] = {"/etc/passwd", NULL};
	char *sh[] = {"/bin/sh", "-c", "exit 0", NULL};
	char *empty[] = {NULL};

	(void)state;
	o.argv = missing;
	expect_start_error(&o, "cannot run '/nonexistent/arl-prog': No such file or directory");
	o.argv = unknown;
	expect_start_error(&o, "cannot run 'arl-no-such-program': No such file or directory");
	/* Reported by posix_spawn itself: the exec failed in the child. */
	o.argv = noexec;
	expect_start_error(&o, "cannot run '/etc/passwd': Permission denied");
	o.argv = empty;
	expect_start_error(&o, "cannot run an empty command");

	o.argv = sh;
	o.cwd = "/nonexistent/dir";
	expect_start_error(&o, "cannot change directory to '/nonexistent/dir': No such file or "
	                       "directory");
	o.cwd = "/etc/passwd";
	expect_start_error(&o, "cannot change directory to '/etc/passwd': Not a directory");
	o.cwd = NULL;
	o.stdin_path = "/nonexistent/in";
	expect_start_error(&o, "cannot open '/nonexistent/in' for the standard input of '/bin/sh': "
	                       "No such file or directory");
	o.stdin_path = NULL;
	o.cancel_fd = 1000;
	expect_start_error(&o, "cannot run '/bin/sh': cancel fd 1000: Bad file descriptor");
}

static void test_stdin(void **state)
{
	char path[] = "/tmp/arl-spawn-in-XXXXXX";
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	int fd;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, "hello\n", 6), 6);
	close(fd);
	o.stdin_path = path;
	run_sh(&o, "cat", &r);
	assert_string_equal(r.out.data, "hello\n");
	arl_spawn_result_release(&r);

	/* The default is /dev/null, not our stdin: cat ends at once. */
	o.stdin_path = NULL;
	run_sh(&o, "cat; echo done", &r);
	assert_string_equal(r.out.data, "done\n");
	arl_spawn_result_release(&r);
	unlink(path);
}

/*
 * 20 MiB on each stream at the same time. A runner reading one pipe to EOF before the other
 * deadlocks here (both writers hold both pipes); the deadline turns that into a failure.
 */
static void test_large_output(void **state)
{
	const size_t n = 20 * MIB, cap = 64 * 1024;
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	char *full_out = arl_xmalloc(n + 8), *full_err = arl_xmalloc(n + 11);

	(void)state;
	memcpy(full_out, "START", 5);
	memset(full_out + 5, 'a', n);
	memcpy(full_out + 5 + n, "END", 3);
	memcpy(full_err, "BEGIN", 5);
	memset(full_err + 5, 'b', n);
	memcpy(full_err + 5 + n, "FINISH", 6);

	o.capture_max = cap;
	o.deadline_ms = arl_now_ms() + 60000;
	run_sh(&o,
	       "{ printf START; head -c 20971520 /dev/zero | tr '\\0' a; printf END; } &"
	       "{ printf BEGIN; head -c 20971520 /dev/zero | tr '\\0' b; printf FINISH; } >&2;"
	       "wait",
	       &r);
	assert_false(r.timed_out);
	assert_int_equal(r.exit_code, 0);
	assert_head_tail(&r.out, full_out, n + 8, cap);
	assert_head_tail(&r.err, full_err, n + 11, cap);
	arl_spawn_result_release(&r);
	free(full_out);
	free(full_err);
}

/* Exactly the cap is kept whole; one byte more is cut in the middle. Odd caps split evenly. */
static void test_capture_boundaries(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	char full[1002];

	(void)state;
	memset(full, 'x', sizeof(full));
	o.capture_max = 1001;
	run_sh(&o, "head -c 1001 /dev/zero | tr '\\0' x", &r);
	assert_false(r.out.truncated);
	assert_int_equal(r.out.len, 1001);
	assert_memory_equal(r.out.data, full, 1001);
	arl_spawn_result_release(&r);

	run_sh(&o, "head -c 1002 /dev/zero | tr '\\0' x", &r);
	assert_head_tail(&r.out, full, 1002, 1001);
	assert_non_null(strstr(r.out.data, "\n[... 1 bytes truncated ...]\n"));
	arl_spawn_result_release(&r);
}

/* Many small writes of distinct text: the ring must wrap many times and unwrap in order. */
static void test_ring_wrap(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	size_t cap = 1001, len = 0, alloc = 2 * MIB;
	char *full = arl_xmalloc(alloc);

	(void)state;
	for (int i = 1; i <= 200000; i++)
		len += (size_t)snprintf(full + len, alloc - len, "%d\n", i);
	o.capture_max = cap;
	run_sh(&o, "i=1; while [ $i -le 200000 ]; do echo $i; i=$((i+1)); done", &r);
	assert_int_equal(r.exit_code, 0);
	assert_head_tail(&r.out, full, len, cap);
	assert_false(r.err.truncated);
	arl_spawn_result_release(&r);
	free(full);
}

/*
 * Sets the clock to @ms and returns once spawn has looked at it three times since: once a
 * signal is sent, spawn's next look waits for the child's exit, so a step killed at @ms is
 * seen dead here.
 */
static void set_clock_and_let_it_look(int64_t ms)
{
	fake_clock_set(ms, 3);
}

/*
 * Drives the clock past a step's deadline (and its grace): waits for the script to write its
 * pid to @ready, then stops 1 ms short of each time and records whether the step was still
 * alive there, before going to the time itself.
 */
struct clock_driver {
	char ready[64];
	int64_t deadline, grace; /* grace 0: no SIGKILL step to walk through */
	bool stall;              /* @deadline is a stall_ms, not a deadline */
	atomic_bool alive_before_deadline, alive_before_kill;
};

/* The pid a step wrote to @path, once it is there. */
static pid_t wait_for_pid_file(const char *path)
{
	pid_t pid = 0;
	FILE *f;

	while (pid <= 0) {
		if ((f = fopen(path, "r"))) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid <= 0)
			usleep(1000);
	}
	return pid;
}

static void *drive_clock(void *arg)
{
	struct clock_driver *d = arg;
	pid_t pid = wait_for_pid_file(d->ready);

	set_clock_and_let_it_look(d->deadline - 1);
	atomic_store(&d->alive_before_deadline, !is_dead(pid));
	if (d->grace) {
		set_clock_and_let_it_look(d->deadline); /* SIGTERM: the grace starts here */
		set_clock_and_let_it_look(d->deadline + d->grace - 1);
		atomic_store(&d->alive_before_kill, !is_dead(pid));
		atomic_store(&fake_clock_ms, d->deadline + d->grace);
	} else {
		atomic_store(&fake_clock_ms, d->deadline);
	}
	return NULL;
}

/* Runs @script on the test clock, @d driving it; "$READY" names the pid file. */
static void run_on_test_clock(struct arl_spawn_opts *o, struct clock_driver *d, const char *script,
                              struct arl_spawn_result *r)
{
	char *full;
	pthread_t t;

	snprintf(d->ready, sizeof(d->ready), "/tmp/arl-test-spawn-ready-%ld", (long)getpid());
	unlink(d->ready);
	full = arl_xasprintf("READY=%s; %s", d->ready, script);
	atomic_store(&fake_clock_ms, 0);
	atomic_store(&fake_clock_reads, 0);
	o->clock = (struct arl_clock){fake_clock_now, NULL};
	if (d->stall)
		o->stall_ms = d->deadline;
	else
		o->deadline_ms = d->deadline;
	assert_int_equal(pthread_create(&t, NULL, drive_clock, d), 0);
	run_sh(o, full, r);
	pthread_join(t, NULL);
	unlink(d->ready);
	free(full);
}

static void test_deadline(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	struct clock_driver d = {.deadline = 500};
	pid_t pid;

	(void)state;
	run_on_test_clock(&o, &d, "echo $$; echo $$ >$READY.t; mv $READY.t $READY; exec sleep 30",
	                  &r);
	assert_true(r.timed_out);
	assert_false(r.cancelled);
	assert_false(r.lingering);
	/* SIGTERM is sent no earlier than the deadline, and sleep died of it (not of a SIGKILL). */
	assert_true(atomic_load(&d.alive_before_deadline));
	assert_int_equal(r.exit_code, 128 + SIGTERM);
	pid = first_pid(&r.out);
	/* Reaped, and its group is empty. */
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	assert_int_equal(kill(-pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	arl_spawn_result_release(&r);
}

/* stall_ms of silence from the start: killed as on a timeout, and said to be a stall. */
static void test_stall(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	struct clock_driver d = {.deadline = 500, .stall = true};

	(void)state;
	/* Silent throughout: no output can move the stall's start. */
	run_on_test_clock(&o, &d, "echo $$ >$READY.t; mv $READY.t $READY; exec sleep 30", &r);
	assert_true(r.timed_out);
	assert_true(r.stalled);
	assert_true(atomic_load(&d.alive_before_deadline));
	assert_int_equal(r.exit_code, 128 + SIGTERM);
	arl_spawn_result_release(&r);
}

static atomic_int output_chunks;

static void count_output(void *arg, int stream, const char *p, size_t n)
{
	(void)arg;
	(void)p;
	if (stream == 0 && n)
		atomic_fetch_add(&output_chunks, 1);
}

struct tick_driver {
	char ready[64], fifo[64];
	atomic_bool alive_before_stall;
};

/*
 * At 400 ms the step prints a line (we write to its FIFO); spawn sees it (on_output) and reads
 * the clock for it. The stall then runs from 400: alive at 899, killed at 900.
 */
static void *drive_tick(void *arg)
{
	struct tick_driver *d = arg;
	pid_t pid = wait_for_pid_file(d->ready);
	int fd;

	set_clock_and_let_it_look(400);
	fd = open(d->fifo, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "x\n", 2) != 2)
			fprintf(stderr, "cannot write the FIFO\n");
		close(fd);
	}
	while (atomic_load(&output_chunks) < 1)
		usleep(1000);
	fake_clock_set(400, 2); /* its time read after the output */
	set_clock_and_let_it_look(899);
	atomic_store(&d->alive_before_stall, !is_dead(pid));
	atomic_store(&fake_clock_ms, 900);
	return NULL;
}

/* Output restarts the stall: a chatty step lives past stall_ms from its start. */
static void test_stall_reset_by_output(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	struct tick_driver d;
	pthread_t t;
	char *script;

	(void)state;
	memset(&d, 0, sizeof(d));
	snprintf(d.ready, sizeof(d.ready), "/tmp/arl-test-spawn-ready-%ld", (long)getpid());
	snprintf(d.fifo, sizeof(d.fifo), "/tmp/arl-test-spawn-fifo-%ld", (long)getpid());
	unlink(d.ready);
	unlink(d.fifo);
	assert_int_equal(mkfifo(d.fifo, 0600), 0);
	script = arl_xasprintf("echo $$ >%s.t; mv %s.t %s; read x <%s; echo tick; exec sleep 30",
	                       d.ready, d.ready, d.ready, d.fifo);
	atomic_store(&fake_clock_ms, 0);
	atomic_store(&fake_clock_reads, 0);
	atomic_store(&output_chunks, 0);
	o.clock = (struct arl_clock){fake_clock_now, NULL};
	o.stall_ms = 500;
	o.on_output = count_output;
	assert_int_equal(pthread_create(&t, NULL, drive_tick, &d), 0);
	run_sh(&o, script, &r);
	pthread_join(t, NULL);
	unlink(d.ready);
	unlink(d.fifo);
	free(script);
	assert_true(atomic_load(&d.alive_before_stall));
	assert_true(r.timed_out);
	assert_true(r.stalled);
	assert_string_equal(r.out.data, "tick\n");
	arl_spawn_result_release(&r);
}

/* SIGTERM ignored: SIGKILL follows after the grace, not before. */
static void test_term_ignored(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	struct clock_driver d = {.deadline = 500, .grace = 500};
	pid_t pid;

	(void)state;
	o.grace_ms = 500;
	run_on_test_clock(&o, &d,
	                  "trap '' TERM; echo $$; echo $$ >$READY.t; mv $READY.t $READY; "
	                  "exec sleep 30",
	                  &r);
	assert_true(r.timed_out);
	assert_true(atomic_load(&d.alive_before_deadline));
	assert_true(atomic_load(&d.alive_before_kill)); /* the grace was given in full */
	assert_int_equal(r.exit_code, 128 + SIGKILL);
	pid = first_pid(&r.out);
	assert_int_equal(kill(pid, 0), -1);
	arl_spawn_result_release(&r);
}

/* A background child holding stdout must not keep us waiting; it dies with the group. */
static void test_background_grandchild(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	pid_t gpid;

	(void)state;
	run_sh(&o, "sleep 100 & echo $!", &r);
	assert_int_equal(r.exit_code, 0);
	assert_false(r.timed_out);
	/*
	 * Killed with the group: nothing of it is left. Without the group kill it would hold
	 * stdout past the drain time and be reported lingering: no wall-clock ceiling needed.
	 */
	assert_false(r.lingering);
	gpid = first_pid(&r.out);
	until_dead(gpid);
	arl_spawn_result_release(&r);
}

#define DRAIN_MS 1000 /* spawn.c's */

/*
 * Drives the clock through the drain after the script's exit: waits for the script (its pid
 * in @ready) to be dead and spawn to have seen it on a still clock, then stops 1 ms short of
 * the drain's end, then goes to it. Stops early once spawn has returned.
 */
struct drain_driver {
	char ready[64];
	atomic_bool returned;           /* set by the caller once spawn returned */
	atomic_bool returned_undrained; /* spawn returned with the clock still at 0 */
	atomic_bool reading_before_end; /* still reading 1 ms before the drain's end */
};

/* Like set_clock_and_let_it_look(), but done once spawn has returned. */
static void look_unless_returned(struct drain_driver *d, int64_t ms)
{
	int reads;

	atomic_store(&fake_clock_ms, ms);
	reads = atomic_load(&fake_clock_reads);
	while (atomic_load(&fake_clock_reads) < reads + 3 && !atomic_load(&d->returned))
		usleep(1000);
}

static void *drive_drain(void *arg)
{
	struct drain_driver *d = arg;
	pid_t pid = wait_for_pid_file(d->ready);

	while (!is_dead(pid))
		usleep(1000);
	look_unless_returned(d, 0);
	if (atomic_load(&d->returned)) {
		atomic_store(&d->returned_undrained, true);
		return NULL;
	}
	look_unless_returned(d, DRAIN_MS - 1);
	atomic_store(&d->reading_before_end, !atomic_load(&d->returned));
	atomic_store(&fake_clock_ms, DRAIN_MS);
	return NULL;
}

/*
 * Runs @script, which starts `setsid sleep 30` with @redirect and prints its pid once
 * setsid() ran (before that, our group kill would still reach it); kills that pid after.
 * The drain runs on the test's clock, driven by @d.
 */
static void run_escaped(const char *redirect, struct drain_driver *d, struct arl_spawn_result *r)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	char *script;
	pthread_t t;

	memset(d, 0, sizeof(*d));
	snprintf(d->ready, sizeof(d->ready), "/tmp/arl-test-spawn-escaped-%ld", (long)getpid());
	unlink(d->ready);
	script = arl_xasprintf("setsid sleep 30 %s & p=$!;"
	                       "while [ \"$(cut -d' ' -f6 /proc/$p/stat)\" != $p ]; do :; "
	                       "done; echo $p; echo $$ >%s.t; mv %s.t %s",
	                       redirect, d->ready, d->ready, d->ready);
	atomic_store(&fake_clock_ms, 0);
	atomic_store(&fake_clock_reads, 0);
	o.clock = (struct arl_clock){fake_clock_now, NULL};
	assert_int_equal(pthread_create(&t, NULL, drive_drain, d), 0);
	run_sh(&o, script, r);
	atomic_store(&d->returned, true);
	pthread_join(t, NULL);
	unlink(d->ready);
	kill(first_pid(&r->out), SIGKILL);
	assert_int_equal(r->exit_code, 0);
	assert_false(r->timed_out);
	assert_false(r->cancelled);
	free(script);
}

/*
 * One that left the group cannot be killed by us: we stop reading after the drain time (not
 * before) and say so (lingering), whichever stream it kept; the backend then never reuses the
 * workspace.
 */
static void test_escaped_grandchild(void **state)
{
	struct arl_spawn_result r;
	struct drain_driver d;

	(void)state;
	if (access("/usr/bin/setsid", X_OK) < 0)
		skip();
	run_escaped("", &d, &r);
	assert_true(r.lingering);
	assert_true(atomic_load(&d.reading_before_end));
	arl_spawn_result_release(&r);
	run_escaped(">/dev/null", &d, &r); /* stderr only */
	assert_true(r.lingering);
	assert_true(atomic_load(&d.reading_before_end));
	arl_spawn_result_release(&r);
	/* Detached completely, it is out of our sight: no drain, nothing to report. */
	run_escaped(">/dev/null 2>&1", &d, &r);
	assert_false(r.lingering);
	assert_true(atomic_load(&d.returned_undrained));
	arl_spawn_result_release(&r);
}

struct cancel_when_ready {
	char ready[64];
	int fd;
};

static void *cancel_when_ready(void *arg)
{
	struct cancel_when_ready *c = arg;

	while (access(c->ready, F_OK) < 0)
		usleep(1000);
	assert_int_equal(write(c->fd, "x", 1), 1);
	return NULL;
}

static void test_cancel(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	struct cancel_when_ready c;
	pthread_t th;
	int p[2];
	pid_t pid;
	char *script;

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	c.fd = p[1];
	snprintf(c.ready, sizeof(c.ready), "/tmp/arl-test-spawn-cancel-%ld", (long)getpid());
	unlink(c.ready);
	assert_int_equal(pthread_create(&th, NULL, cancel_when_ready, &c), 0);
	o.cancel_fd = p[0];
	/* A deadline on a clock that stands still: only the cancel can end the step. */
	atomic_store(&fake_clock_ms, 0);
	o.clock = (struct arl_clock){fake_clock_now, NULL};
	o.deadline_ms = 10000;
	script = arl_xasprintf("echo $$; : >%s; exec sleep 30", c.ready);
	run_sh(&o, script, &r);
	free(script);
	pthread_join(th, NULL);
	unlink(c.ready);
	assert_true(r.cancelled);
	assert_false(r.timed_out);
	/* Killed by the SIGTERM the cancel sent, not by a SIGKILL after the grace. */
	assert_int_equal(r.exit_code, 128 + SIGTERM);
	pid = first_pid(&r.out);
	assert_int_equal(kill(pid, 0), -1);
	arl_spawn_result_release(&r);

	/* Already readable (a run cancelled before this step): it ends at once. Never read. */
	run_sh(&o, "exec sleep 30", &r);
	assert_true(r.cancelled);
	assert_int_equal(r.exit_code, 128 + SIGTERM);
	arl_spawn_result_release(&r);
	close(p[0]);
	close(p[1]);
}

#define NTHREADS 8
#define NRUNS    6

struct worker {
	int id;
	int failures;
	char msg[256];
};

static void worker_fail(struct worker *w, const char *fmt, ...) ARL_PRINTF(2, 3);
static void worker_fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failures++)
		return;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
}

/*
 * cmocka's asserts are not thread-safe, so workers record their first failure. Each run's
 * child also lists its own fds: a pipe of another thread's run leaking in would show up.
 */
static void *worker_main(void *arg)
{
	static const char script[] = "echo \"$1\"; ls /proc/self/fd >&2; exit \"$2\"";
	struct worker *w = arg;
	char tag[32], code[8], *want;

	for (int i = 0; i < NRUNS; i++) {
		struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
		struct arl_spawn_result r;
		struct arl_err err = ARL_ERR_INIT;
		char *argv[] = {"/bin/sh", "-c", (char *)script, "sh", tag, code, NULL};
		char *sleeper[] = {"sleep", "30", NULL};
		bool timed = (w->id + i) % 3 == 0;

		snprintf(tag, sizeof(tag), "t%d-%d", w->id, i);
		snprintf(code, sizeof(code), "%d", (w->id * NRUNS + i) % 256);
		o.argv = timed ? sleeper : argv;
		if (timed)
			o.deadline_ms = arl_now_ms() + 200;
		if (arl_spawn_run(&o, &r, &err) < 0) {
			worker_fail(w, "%s: %s", tag, err.msg);
			continue;
		}
		if (timed) {
			if (!r.timed_out || r.exit_code != 128 + SIGTERM)
				worker_fail(w, "%s: timed_out %d exit %d", tag, r.timed_out,
				            r.exit_code);
		} else {
			want = arl_xasprintf("%s\n", tag);
			if (strcmp(r.out.data, want) || r.exit_code != (w->id * NRUNS + i) % 256)
				worker_fail(w, "%s: out '%s' exit %d", tag, r.out.data,
				            r.exit_code);
			/* ls's own directory fd is 3. */
			if (strcmp(r.err.data, "0\n1\n2\n3\n"))
				worker_fail(w, "%s: child fds '%s'", tag, r.err.data);
			free(want);
		}
		arl_spawn_result_release(&r);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];

	(void)state;
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.id = i};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		if (w[i].failures)
			fail_msg("worker %d: %d failures, first: %s", i, w[i].failures, w[i].msg);
}

/* Every path, successful or not, gives back its fds. */
static void test_no_fd_leak(void **state)
{
	struct arl_spawn_opts o = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result r;
	struct arl_err err = ARL_ERR_INIT;
	char *missing[] = {"arl-no-such-program", NULL};
	char *sh[] = {"/bin/sh", "-c", "echo hi", NULL};
	char *noexec[] = {"/etc/passwd", NULL};
	int before = count_fds();

	(void)state;
	run_sh(&o, "echo out; echo err >&2", &r);
	arl_spawn_result_release(&r);
	o.deadline_ms = arl_now_ms() + 100;
	run_sh(&o, "exec sleep 30", &r);
	arl_spawn_result_release(&r);
	o.deadline_ms = 0;
	o.argv = missing;
	assert_int_equal(arl_spawn_run(&o, &r, &err), -1);
	arl_err_clear(&err);
	o.argv = sh;
	o.cwd = "/nonexistent";
	assert_int_equal(arl_spawn_run(&o, &r, &err), -1);
	arl_err_clear(&err);
	o.cwd = "/tmp";
	o.stdin_path = "/nonexistent";
	assert_int_equal(arl_spawn_run(&o, &r, &err), -1);
	arl_err_clear(&err);
	/* The exec itself fails: glibc reaps that child, and we must not leak its pipes. */
	o.cwd = NULL;
	o.stdin_path = NULL;
	o.argv = noexec;
	assert_int_equal(arl_spawn_run(&o, &r, &err), -1);
	assert_int_equal(count_fds(), before);
	/* And no child of ours is left unreaped. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* Fds inherited from whoever started us are not ours to pass on; the fd checks need that. */
static void cloexec_inherited_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int64_t fd;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (arl_parse_i64(e->d_name, 3, INT_MAX, &fd) == 0 && fd != dirfd(d))
			fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	closedir(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_memory_bounded),
	    cmocka_unit_test(test_exit_codes),
	    cmocka_unit_test(test_env_and_cwd),
	    cmocka_unit_test(test_path_search),
	    cmocka_unit_test(test_start_errors),
	    cmocka_unit_test(test_stdin),
	    cmocka_unit_test(test_ident),
	    cmocka_unit_test(test_large_output),
	    cmocka_unit_test(test_capture_boundaries),
	    cmocka_unit_test(test_ring_wrap),
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_stall),
	    cmocka_unit_test(test_stall_reset_by_output),
	    cmocka_unit_test(test_term_ignored),
	    cmocka_unit_test(test_background_grandchild),
	    cmocka_unit_test(test_escaped_grandchild),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_no_fd_leak),
	};

	cloexec_inherited_fds();
	setenv("ARL_TEST_INHERITED", "yes", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
