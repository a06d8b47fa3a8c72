/*
 * The copy-on-write root as a mechanism (local/skeleton.c, agent/mounts.c), before the local
 * backend starts its containers with it: a bwrap sandbox made by hand as the runner will make
 * it (run as the sandbox uid when we are root, as ourselves otherwise), whose first process
 * is the agent mounting /usr, /etc and /workspace as overlays [skeleton, host tree] + an
 * upper in the sandbox's directory. Writes to /usr/local and /etc succeed and persist across
 * steps, the host and the pool's workspace are unchanged, /etc/shadow stays unreadable,
 * two sandboxes do not see each other's writes, the upper layer outlives the sandbox (what
 * keepAlive keeps) and is deleted with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_sandbox.h"
#include "static_elf.h"

#include "buf.h"
#include "err.h"
#include "local/agent_client.h"
#include "local/cow_root.h"
#include "local/strvec.h"
#include "local/tree.h"

#define SANDBOX_UID 65530 /* who bwrap runs as when we are root (ARL_SANDBOX_UID's default) */

/* Not /tmp: the sandbox uid must reach it, and /tmp may be root's alone. */
static char state[] = "/var/tmp/arl-cow-XXXXXX";
static uid_t sb_uid;
static gid_t sb_gid;
static struct cow_root cow;
static char *step_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("'%s' failed", cmd);
}

/* Makes @path (under the state dir) owned by the sandbox's uid, as the runner would. */
static void mkdir_sb(const char *path)
{
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(chown(path, sb_uid, sb_gid), 0);
}

/*
 * Starts a sandbox over directory @name of the state dir, as a container will be started
 * (/etc's upper in memory unless @all_on_disk, as for a sandbox to keep).
 */
static void start_as(struct sandbox *sb, const char *name, bool all_on_disk)
{
	static const char *const head[] = {"bwrap",
	                                   "--unshare-user",
	                                   "--uid",
	                                   "0",
	                                   "--gid",
	                                   "0",
	                                   "--die-with-parent",
	                                   "--unshare-pid",
	                                   "--as-pid-1",
	                                   "--unshare-net",
	                                   "--unshare-ipc",
	                                   "--new-session",
	                                   "--symlink",
	                                   "usr/bin",
	                                   "/bin",
	                                   "--symlink",
	                                   "usr/lib",
	                                   "/lib",
	                                   "--symlink",
	                                   "usr/lib64",
	                                   "/lib64",
	                                   "--proc",
	                                   "/proc",
	                                   "--ro-bind", /* as containers have it */
	                                   "/proc/sys",
	                                   "/proc/sys",
	                                   "--dev",
	                                   "/dev",
	                                   "--tmpfs",
	                                   "/tmp",
	                                   "--ro-bind",
	                                   ARL_AGENT_BIN,
	                                   "/.arl-batch-agent"};
	static const char *const masks[] = {"/etc/shadow", "/etc/no-such-file"};
	struct strvec argv = {0};
	struct arl_err err = ARL_ERR_INIT;
	char ws[300];
	int fd;

	snprintf(sb->dir, sizeof(sb->dir), "%s/%s", state, name);
	mkdir_sb(sb->dir);
	assert_true((fd = open(sb->dir, O_RDONLY | O_DIRECTORY)) >= 0);
	if (arl_cow_root_make_uppers(&cow, fd, &err) < 0)
		fail_msg("%s", err.msg);
	close(fd);
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		arl_local_sv_push(&argv, head[i]);
	if (!is_static_elf(ARL_AGENT_BIN)) { /* a sanitizer build's agent needs the host's loader */
		arl_local_sv_push(&argv, "--ro-bind");
		arl_local_sv_push(&argv, "/usr");
		arl_local_sv_push(&argv, "/usr");
	}
	snprintf(ws, sizeof(ws), "%s/pool-workspace", state);
	arl_cow_root_bwrap_args(&cow, &argv, sb->dir, ws);
	arl_local_sv_push(&argv, "--");
	arl_local_sv_push(&argv, "/.arl-batch-agent");
	arl_local_sv_push(&argv, "--fd");
	arl_local_sv_push(&argv, "3");
	arl_cow_root_plan(&cow, &argv, masks, 2, NULL, all_on_disk);

	sandbox_spawn(sb, argv.v, sb_uid, sb_gid);
	arl_local_sv_release(&argv);
}

static void start(struct sandbox *sb, const char *name)
{
	start_as(sb, name, false);
}

/*
 * Whether tmpfs holds user.* xattrs here (Linux >= 6.6), so the agent puts /etc's upper in
 * memory; before, it uses the disk (mounts.c).
 */
static bool etc_in_memory(void)
{
	int fd = memfd_create("arl-xattr-probe", MFD_CLOEXEC); /* tmpfs, in no mount's space */
	bool ok = fd >= 0 && fsetxattr(fd, "user.arl-batch", "", 0, 0) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int setup(void **st)
{
	struct arl_err err = ARL_ERR_INIT;
	char p[300];

	(void)st;
	if (system("bwrap --unshare-user --ro-bind / / true 2>/dev/null") != 0 ||
	    system("unshare -Urm sh -c 'd=$(mktemp -d -p /var/tmp) && mkdir $d/l $d/u $d/w $d/m && "
	           "mount -t overlay -o lowerdir=$d/l,upperdir=$d/u,workdir=$d/w,userxattr x $d/m; "
	           "r=$?; umount $d/m 2>/dev/null; rm -rf $d; exit $r' 2>/dev/null") != 0) {
		fprintf(stderr, "no bwrap user namespace or no overlay in one here\n");
		exit(77);
	}
	sb_uid = geteuid() == 0 ? SANDBOX_UID : geteuid();
	sb_gid = geteuid() == 0 ? SANDBOX_UID : getegid();
	if (!mkdtemp(state))
		return -1;
	chmod(state, 0755);
	{
		static const char *const trees[] = {"/usr", "/etc"};

		snprintf(p, sizeof(p), "%s/skel", state);
		if (arl_cow_root_open(&cow, p, trees, 2, sb_uid, sb_gid, &err) < 0)
			fail_msg("%s", err.msg);
	}
	/* The pool's workspace as a lower: owned by the mapped uid, so writable in place. */
	snprintf(p, sizeof(p), "%s/pool-workspace", state);
	mkdir_sb(p);
	sh("echo orig > %s/pool-workspace/src.txt && mkdir %s/pool-workspace/pkg && "
	   "chown -R %u:%u %s/pool-workspace",
	   state, state, (unsigned)sb_uid, (unsigned)sb_gid, state);
	return 0;
}

static int teardown(void **st)
{
	struct arl_err err = ARL_ERR_INIT;

	(void)st;
	arl_cow_root_close(&cow);
	if (arl_local_rm_tree(AT_FDCWD, state, &err) < 0)
		fprintf(stderr, "%s\n", err.msg);
	return 0;
}

static void test_writable_root(void **st)
{
	struct sandbox a, b;
	char p[400];

	(void)st;
	start(&a, "sb-a");
	sandbox_expect_sh(&a, step_env, "id -u", "0\n", 0);
	/* /usr/local and /etc are the sandbox's own, and stay so across steps. */
	sandbox_expect_sh(&a, step_env,
	                  "echo hi > /usr/local/arl-cow && mkdir -p /usr/local/lib/arl-cow/pkg && "
	                  "echo y > /etc/arl-cow && echo z > /usr/local/lib/arl-cow/pkg/m.py",
	                  "", 0);
	sandbox_expect_sh(&a, step_env,
	                  "cat /usr/local/arl-cow /etc/arl-cow /usr/local/lib/arl-cow/pkg/m.py",
	                  "hi\ny\nz\n", 0);
	/* Host files: readable as the host allows, replaced only by a rename. */
	sandbox_expect_sh(&a, step_env,
	                  "test -s /etc/passwd && ! (echo x >> /etc/passwd) 2>/dev/null", "", 0);
	sandbox_expect_sh(
	    &a, step_env,
	    "cp /etc/passwd /etc/p.new && echo x >> /etc/p.new && mv /etc/p.new /etc/passwd "
	    "&& tail -n1 /etc/passwd",
	    "x\n", 0);
	sandbox_expect_sh(&a, step_env, "cat /etc/shadow | wc -c", "0\n", 0); /* masked */
	sandbox_expect_sh(&a, step_env, "! cat /etc/gshadow 2>/dev/null", "",
	                  0); /* root's 0640: not ours */
	/* The staging place is gone, and the capabilities the agent had with it. */
	sandbox_expect_sh(&a, step_env, "ls -A " COW_STAGING, "", 0);
	sandbox_expect_sh(&a, step_env, "grep -E '^Cap(Eff|Bnd)' /proc/self/status",
	                  "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n", 0);
	/* No nested user namespace (what bwrap's --disable-userns did). */
	sandbox_expect_sh(&a, step_env,
	                  "cat /proc/sys/user/max_user_namespaces; unshare -U true 2>/dev/null",
	                  "0\n", 1);
	/* The workspace is written in place through its overlay. */
	sandbox_expect_sh(&a, step_env,
	                  "echo changed > /workspace/src.txt && echo n > /workspace/pkg/new && "
	                  "cat /workspace/src.txt",
	                  "changed\n", 0);

	/* Nothing reached the host or the pool's workspace; the upper took it all. */
	assert_false(exists("/usr/local/arl-cow"));
	assert_false(exists("/etc/arl-cow"));
	assert_false(exists("/etc/p.new"));
	sh("tail -n1 /etc/passwd | grep -qvx x");
	sh("grep -qx orig %s/pool-workspace/src.txt && test ! -e %s/pool-workspace/pkg/new", state,
	   state);
	snprintf(p, sizeof(p), "%s/upper/usr/local/arl-cow", a.dir);
	assert_true(exists(p));
	/* /etc's upper is in memory: nothing of it on disk. */
	{
		char etc[400];
		bool mem = etc_in_memory();

		snprintf(etc, sizeof(etc), "%s/upper/etc/arl-cow", a.dir);
		assert_int_equal(exists(etc), !mem);
		/* and the sandbox's own mount table agrees with this probe of the kernel */
		sandbox_expect_sh(&a, step_env,
		                  "grep -c 'upperdir=" COW_STAGING
		                  "/mem-etc/' /proc/self/mountinfo",
		                  mem ? "1\n" : "0\n", mem ? 0 : 1);
	}

	/* A second sandbox over the same layers sees none of it. */
	start(&b, "sb-b");
	sandbox_expect_sh(
	    &b, step_env,
	    "test ! -e /usr/local/arl-cow && test ! -e /etc/arl-cow && cat /workspace/src.txt",
	    "orig\n", 0);
	sandbox_stop(&b);

	/* The upper layer outlives the sandbox (what keepAlive keeps) and goes with its directory. */
	sandbox_stop(&a);
	assert_true(exists(p));
	{
		struct arl_err err = ARL_ERR_INIT;

		if (arl_local_rm_tree(AT_FDCWD, a.dir, &err) < 0)
			fail_msg("%s", err.msg);
		assert_false(exists(a.dir));
	}
}

/*
 * /etc in memory behaves as on disk: a directory removed and made again is empty (an opaque
 * directory: the overlay's xattrs on tmpfs); a sandbox to keep has its /etc upper on disk.
 */
static void test_etc_upper(void **st)
{
	struct sandbox m, k;
	char p[400];

	(void)st;
	start(&m, "sb-m");
	sandbox_expect_sh(&m, step_env,
	                  "test -n \"$(ls -A /etc/apt)\" && rm -rf /etc/apt && mkdir /etc/apt && "
	                  "ls -A /etc/apt && echo k > /etc/apt/kept && cat /etc/apt/kept",
	                  "k\n", 0);
	sandbox_stop(&m);
	snprintf(p, sizeof(p), "%s/upper/etc/apt", m.dir);
	assert_int_equal(exists(p), !etc_in_memory());
	assert_true(exists("/etc/apt/sources.list") || exists("/etc/apt/sources.list.d"));

	start_as(&k, "sb-k", true);
	sandbox_expect_sh(&k, step_env, "echo kept > /etc/arl-kept && rm -rf /etc/apt", "", 0);
	sandbox_stop(&k);
	snprintf(p, sizeof(p), "%s/upper/etc/arl-kept", k.dir);
	assert_true(exists(p));
	assert_false(exists("/etc/arl-kept"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_writable_root),
	    cmocka_unit_test(test_etc_upper),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
