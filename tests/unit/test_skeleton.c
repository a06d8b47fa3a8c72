/*
 * Unit tests for the skeleton layer of a copy-on-write root (local/skeleton.c) and the agent's
 * mount plan check (agent/mounts.c): directories only, with their modes and the sandbox's
 * owner, symlinked directories never followed, a tree changing underneath never followed
 * out of it; a manifest that sees any change to the directories; plans with what the overlay option string cannot carry refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/mounts.h"
#include "err.h"
#include "local/skeleton.h"
#include "local/tree.h"

static char tmp[] = "/tmp/arl-skeleton-XXXXXX";

static void path_of(char *out, size_t len, const char *rel)
{
	snprintf(out, len, "%s/%s", tmp, rel);
}

static void mk(const char *rel, mode_t mode)
{
	char p[512];

	path_of(p, sizeof(p), rel);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, mode), 0);
}

static void expect_dir(const char *rel, mode_t mode, uid_t uid, gid_t gid)
{
	char p[512];
	struct stat st;

	path_of(p, sizeof(p), rel);
	if (lstat(p, &st) < 0)
		fail_msg("'%s' missing: %s", rel, strerror(errno));
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
}

static void expect_absent(const char *rel)
{
	char p[512];
	struct stat st;

	path_of(p, sizeof(p), rel);
	if (lstat(p, &st) == 0)
		fail_msg("'%s' should not be in the skeleton", rel);
}

/* Who the skeleton is for: the sandbox uid as root, ourselves otherwise. */
static void owner(uid_t *uid, gid_t *gid)
{
	*uid = geteuid() == 0 ? 65530 : geteuid();
	*gid = geteuid() == 0 ? 65530 : getegid();
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	arl_local_rm_tree(AT_FDCWD, tmp, &err);
	strcpy(tmp, "/tmp/arl-skeleton-XXXXXX");
	return 0;
}

static void test_dirs_modes_owners(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	char src[512], dst[512], p[512];
	uid_t uid;
	gid_t gid;
	int fd;

	(void)state;
	owner(&uid, &gid);
	mk("src", 0775);
	mk("src/a", 0755);
	mk("src/a/ro", 0755);
	mk("src/a/ro/deep", 0700);
	path_of(p, sizeof(p), "src/a/ro"); /* read-only: the skeleton must still fill it */
	assert_int_equal(chmod(p, 0555), 0);
	mk("src/sticky", 01777);
	mk("src/setgid", 02750);
	mk("outside", 0755);
	mk("outside/secret", 0755);
	path_of(p, sizeof(p), "src/a/file");
	assert_true((fd = open(p, O_CREAT | O_WRONLY, 0600)) >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	path_of(p, sizeof(p), "src/link");
	assert_int_equal(symlink("../outside", p), 0);
	path_of(p, sizeof(p), "src/a/fifo");
	assert_int_equal(mkfifo(p, 0644), 0);

	path_of(src, sizeof(src), "src");
	path_of(dst, sizeof(dst), "skel");
	if (arl_local_skeleton_build(src, dst, uid, gid, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	expect_dir("skel", 0775, uid, gid);
	expect_dir("skel/a", 0755, uid, gid);
	expect_dir("skel/a/ro", 0555, uid, gid);
	expect_dir("skel/a/ro/deep", 0700, uid, gid);
	expect_dir("skel/sticky", 01777, uid, gid);
	expect_dir("skel/setgid", 02750, uid, gid);
	expect_absent("skel/a/file"); /* no file's data is ever copied */
	expect_absent("skel/a/fifo");
	expect_absent("skel/link"); /* a symlinked directory is not followed */
	expect_absent("skel/link/secret");
}

/*
 * As root, for the sandbox's uid: a directory that uid could not list (root's 0700, or 0750
 * of a group it is not in) is made, empty; one it could list is filled.
 */
static void test_closed_to_owner_made_empty(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	char src[512], dst[512];
	uid_t uid;
	gid_t gid;

	(void)state;
	if (geteuid() != 0)
		skip(); /* building for another uid takes root */
	owner(&uid, &gid);
	mk("src", 0755);
	mk("src/private", 0700);
	mk("src/private/secret-name", 0755);
	mk("src/group", 0750);
	mk("src/group/inner", 0755);
	mk("src/open", 0705);
	mk("src/open/inner", 0755);
	path_of(src, sizeof(src), "src");
	path_of(dst, sizeof(dst), "skel");
	if (arl_local_skeleton_build(src, dst, uid, gid, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	expect_dir("skel/private", 0700, uid, gid);
	expect_absent("skel/private/secret-name");
	expect_dir("skel/group", 0750, uid, gid);
	expect_absent("skel/group/inner");
	expect_dir("skel/open/inner", 0755, uid, gid);
}

/* A directory we may not read (as an ordinary user: mode 0 on our own) is made, empty. */
static void test_unreadable_made_empty(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	char src[512], dst[512], p[512];
	uid_t uid;
	gid_t gid;

	(void)state;
	if (geteuid() == 0)
		skip(); /* root reads everything */
	owner(&uid, &gid);
	mk("src", 0755);
	mk("src/private", 0755);
	mk("src/private/inner", 0755);
	path_of(p, sizeof(p), "src/private");
	assert_int_equal(chmod(p, 0), 0);
	path_of(src, sizeof(src), "src");
	path_of(dst, sizeof(dst), "skel");
	if (arl_local_skeleton_build(src, dst, uid, gid, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	expect_dir("skel/private", 0, uid, gid);
	assert_int_equal(chmod(p, 0755), 0);
	path_of(p, sizeof(p), "skel/private");
	assert_int_equal(chmod(p, 0755), 0);
	expect_absent("skel/private/inner");
}

static void test_refusals(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	char src[512], dst[512], p[512];
	uid_t uid;
	gid_t gid;

	(void)state;
	owner(&uid, &gid);
	mk("real", 0755);
	path_of(src, sizeof(src), "link");
	path_of(p, sizeof(p), "real");
	assert_int_equal(symlink(p, src), 0);
	path_of(dst, sizeof(dst), "skel");
	/* The tree itself a symlink: refused, not followed. */
	assert_int_equal(arl_local_skeleton_build(src, dst, uid, gid, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "cannot open"));
	assert_non_null(strstr(err.msg, "link"));
	/* An existing destination is never built into. */
	arl_err_clear(&err);
	assert_int_equal(arl_local_skeleton_build(p, p, uid, gid, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "cannot make skeleton directory"));
}

/*
 * A directory swapped for a symlink to another tree while the skeleton is built, over and
 * over: whatever the interleaving, nothing of the other tree ever appears in a skeleton.
 */
static void test_tree_changing_underneath(void **state)
{
	struct arl_err err = ARL_ERR_INIT;
	char src[512], dst[512], d[512], l[512], t[512], out[512];
	uid_t uid;
	gid_t gid;
	pid_t pid;

	(void)state;
	owner(&uid, &gid);
	mk("src", 0755);
	mk("src/d", 0755);
	mk("src/d/inner", 0755);
	mk("outside", 0755);
	mk("outside/secret", 0755);
	path_of(d, sizeof(d), "src/d");
	path_of(t, sizeof(t), "src/tmp");
	path_of(l, sizeof(l), "src/l");
	path_of(out, sizeof(out), "outside");
	assert_int_equal(symlink(out, l), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Swap the directory and the symlink back and forth until killed. */
		for (;;) {
			rename(d, t);
			rename(l, d);
			rename(d, l);
			rename(t, d);
		}
	}
	path_of(src, sizeof(src), "src");
	for (int i = 0; i < 300; i++) {
		struct stat st;
		char p[600];

		snprintf(dst, sizeof(dst), "%s/skel%d", tmp, i);
		if (arl_local_skeleton_build(src, dst, uid, gid, NULL, &err) < 0)
			fail_msg("%s", err.msg);
		snprintf(p, sizeof(p), "%s/d/secret", dst);
		assert_int_equal(lstat(p, &st), -1);
		snprintf(p, sizeof(p), "%s/l/secret", dst);
		assert_int_equal(lstat(p, &st), -1);
		snprintf(p, sizeof(p), "%s/tmp/secret", dst);
		assert_int_equal(lstat(p, &st), -1);
		assert_int_equal(arl_local_rm_tree(AT_FDCWD, dst, &err), 0);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * File timestamps come from the coarse clock: waits for it to move on, so a change made next
 * shows in the timestamps a manifest recorded (on any kernel; multigrain ones need not).
 */
static void next_tick(void)
{
	struct timespec t0, t, ms = {0, 1000000};

	clock_gettime(CLOCK_REALTIME_COARSE, &t0);
	do {
		nanosleep(&ms, NULL);
		clock_gettime(CLOCK_REALTIME_COARSE, &t);
	} while (t.tv_sec == t0.tv_sec && t.tv_nsec == t0.tv_nsec);
}

/* A manifest of src (built into a fresh skel@n), @want current after @change ran. */
static void expect_current_after(int n, void (*change)(void), bool want)
{
	struct arl_skel_manifest m = {ARL_BUF_INIT, {0, 0}, NULL};
	struct arl_err err = ARL_ERR_INIT;
	char src[512], dst[512];
	uid_t uid;
	gid_t gid;

	owner(&uid, &gid);
	path_of(src, sizeof(src), "src");
	snprintf(dst, sizeof(dst), "%s/skel%d", tmp, n);
	if (arl_local_skeleton_build(src, dst, uid, gid, &m, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(arl_local_skeleton_current(m.buf.p, m.buf.len));
	next_tick();
	if (change)
		change();
	if (arl_local_skeleton_current(m.buf.p, m.buf.len) != want)
		fail_msg("skel%d: the manifest should be %s", n, want ? "current" : "stale");
	arl_skel_manifest_release(&m);
}

static void add_deep_dir(void)
{
	mk("src/a/b/c/new", 0755);
}

static void add_file(void)
{
	char p[512];
	int fd;

	path_of(p, sizeof(p), "src/a/b/file");
	assert_true((fd = open(p, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
}

static void chmod_dir(void)
{
	char p[512];

	path_of(p, sizeof(p), "src/a/b/c");
	assert_int_equal(chmod(p, 0700), 0);
}

static void rename_dir(void)
{
	char p[512], q[512];

	path_of(p, sizeof(p), "src/a/b/c");
	path_of(q, sizeof(q), "src/a/c2");
	assert_int_equal(rename(p, q), 0);
}

static void dir_to_symlink(void)
{
	char p[512];

	path_of(p, sizeof(p), "src/x");
	assert_int_equal(rmdir(p), 0);
	assert_int_equal(symlink("a", p), 0);
}

static void change_file_data(void)
{
	char p[512];
	int fd;

	path_of(p, sizeof(p), "src/a/data");
	assert_true((fd = open(p, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, "more", 4), 4);
	close(fd);
}

/*
 * A manifest says whether a skeleton built then is still the one a build would make now: any
 * directory added, removed, renamed, chmod'ed or replaced anywhere makes it stale; a file's
 * data changing in place does not (no directory changes).
 */
static void test_manifest(void **state)
{
	char p[512];
	int fd;

	(void)state;
	mk("src", 0755);
	mk("src/a", 0755);
	mk("src/a/b", 0755);
	mk("src/a/b/c", 0755);
	mk("src/x", 0755);
	path_of(p, sizeof(p), "src/a/data");
	assert_true((fd = open(p, O_CREAT | O_WRONLY, 0644)) >= 0);
	close(fd);
	expect_current_after(0, NULL, true);
	expect_current_after(1, change_file_data, true);
	expect_current_after(2, add_deep_dir, false);
	expect_current_after(3, add_file, false);
	expect_current_after(4, chmod_dir, false);
	expect_current_after(5, rename_dir, false);
	expect_current_after(6, dir_to_symlink, false);
	path_of(p, sizeof(p), "src");
	assert_false(arl_local_skeleton_current(p, 3)); /* malformed: cut short */
	assert_false(arl_local_skeleton_current("", 0));
}

static void expect_plan(int ok, const char *needle, int n, ...)
{
	char *args[16], msg[256] = "";
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		args[i] = va_arg(ap, char *);
	va_end(ap);
	assert_int_equal(arl_agent_plan_check(args, n, msg, sizeof(msg)), ok ? 0 : -1);
	if (needle && !strstr(msg, needle))
		fail_msg("message '%s' lacks '%s'", msg, needle);
}

static void test_plan_check(void **state)
{
	(void)state;
	expect_plan(1, NULL, 0);
	expect_plan(1, NULL, 9, "--overlay", "/usr", "/s/skel/usr:/s/low/usr", "/s/sb/u/usr",
	            "/s/sb/w/usr", "--mask", "/etc/shadow", "--detach", "/s");
	expect_plan(1, NULL, 4, "--tmpfs", "/etc/ssh", "--no-userns", "/s/proc");
	expect_plan(0, "'--no-userns' needs 1 operand", 1, "--no-userns");
	expect_plan(0, "unknown mount plan option '--bind'", 3, "--bind", "/a", "/b");
	expect_plan(0, "'--overlay' needs 4 operands", 4, "--overlay", "/usr", "/l", "/u");
	expect_plan(0, "'--mask' needs 1 operand", 1, "--mask");
	expect_plan(0, "'--mask': 'etc/shadow' is not an absolute path", 2, "--mask", "etc/shadow");
	/* What would change the overlay's option string. */
	expect_plan(0, "'/u,lowerdir=/'", 5, "--overlay", "/usr", "/l", "/u,lowerdir=/", "/w");
	expect_plan(0, "'/u:x'", 5, "--overlay", "/usr", "/l", "/u:x", "/w");
	expect_plan(0, "'/a::/b'", 5, "--overlay", "/usr", "/a::/b", "/u", "/w");
	expect_plan(0, "'/a:b'", 5, "--overlay", "/usr", "/a:b", "/u", "/w");
	expect_plan(0, "'/a\\b'", 5, "--overlay", "/usr", "/a\\b", "/u", "/w");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dirs_modes_owners, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_made_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_closed_to_owner_made_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tree_changing_underneath, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_manifest, setup, teardown),
	    cmocka_unit_test(test_plan_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
