/*
 * An image as a sandbox's root (local/image_root.c, agent/mounts.c's --layers and --pivot),
 * before the local backend uses it: layers made by hand as the image store unpacks them
 * (directories owned by the sandbox's host uid), a bwrap sandbox started as the runner starts
 * one, whose agent mounts the layers' overlay and pivots into it. A step sees the image's
 * files (the top layer's over the bottom's) and none of the host's /usr or /etc, runs as the
 * image's User, writes over the image's /usr without changing the layer, and keeps /proc,
 * /dev, /tmp and /workspace; 500 layers fit in one mount. The User lookup in the image's own
 * /etc/passwd and /etc/group, and that it never follows a layer's links.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_sandbox.h"
#include "static_elf.h"

#include "buf.h"
#include "err.h"
#include "image/image.h"
#include "local/agent_client.h"
#include "local/image_root.h"
#include "local/local.h"
#include "local/strvec.h"
#include "local/tree.h"
#include "util.h"

#define SANDBOX_UID 65530 /* who bwrap runs as when we are root (ARL_SANDBOX_UID's default) */
#define MANY        500

static char state[] = "/var/tmp/arl-img-XXXXXX";
static uid_t sb_uid;
static gid_t sb_gid;
static char *step_env[] = {"PATH=/bin", NULL};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("'%s' failed", cmd);
}

/* An image of @n layers under the state dir's @name/: 0 and 1 hold files, the rest are empty. */
static struct arl_image *make_image(const char *name, size_t n)
{
	struct arl_image *im = arl_xcalloc(1, sizeof(*im));

	im->ref = arl_xstrdup(name);
	im->id = arl_xstrdup("sha256:0");
	im->layers = arl_xcalloc(n, sizeof(*im->layers));
	im->nlayers = n;
	for (size_t i = 0; i < n; i++) {
		im->layers[i] = arl_xasprintf("%s/%s/%zu", state, name, i);
		sh("mkdir -p %s", im->layers[i]);
	}
	sh("cd %s && mkdir -p bin etc usr/share && cp /usr/bin/busybox bin/ && "
	   "for c in sh id cat echo test ls unshare; do ln -s busybox bin/$c; done && "
	   "printf 'root:x:0:0::/root:/bin/sh\\napp:x:1000:1001::/home/app:/bin/sh\\n' > "
	   "etc/passwd && printf 'root:x:0:\\nstaff:x:50:\\n' > etc/group && "
	   "echo bottom > usr/share/which && echo kept > usr/share/kept",
	   im->layers[0]);
	if (n > 1)
		sh("cd %s && mkdir -p usr/share && echo top > usr/share/which", im->layers[1]);
	sh("chown -R %u:%u %s/%s", (unsigned)sb_uid, (unsigned)sb_gid, state, name);
	return im;
}

static void free_image(struct arl_image *im)
{
	for (size_t i = 0; i < im->nlayers; i++)
		free(im->layers[i]);
	free(im->layers);
	free(im->ref);
	free(im->id);
	free(im);
}

static void start(struct sandbox *sb, const char *name, const struct local_image *img)
{
	static const char *const head[] = {"--die-with-parent",
	                                   "--unshare-pid",
	                                   "--as-pid-1",
	                                   "--unshare-net",
	                                   "--unshare-ipc",
	                                   "--new-session",
	                                   "--proc",
	                                   "/proc",
	                                   "--ro-bind",
	                                   "/proc/sys",
	                                   "/proc/sys",
	                                   "--dev",
	                                   "/dev",
	                                   "--tmpfs",
	                                   "/tmp",
	                                   "--ro-bind",
	                                   ARL_AGENT_BIN,
	                                   "/.arl-batch-agent"};
	struct strvec argv = {0};
	struct arl_err err = ARL_ERR_INIT;
	char ws[300];
	int fd;

	snprintf(sb->dir, sizeof(sb->dir), "%s/%s", state, name);
	sh("mkdir -p %s/upper/workspace %s/work/workspace && chown -R %u:%u %s", sb->dir, sb->dir,
	   (unsigned)sb_uid, (unsigned)sb_gid, sb->dir);
	assert_true((fd = open(sb->dir, O_RDONLY | O_DIRECTORY)) >= 0);
	{
		struct local L = {.drop = geteuid() == 0, .sb_uid = sb_uid, .sb_gid = sb_gid};

		if (arl_local_image_uppers(&L, fd, &err) < 0)
			fail_msg("%s", err.msg);
	}
	close(fd);
	arl_local_sv_push(&argv, "bwrap");
	arl_local_sv_push(&argv, "--unshare-user");
	arl_local_sv_push(&argv, "--uid");
	arl_local_sv_push(&argv, "0");
	arl_local_sv_push(&argv, "--gid");
	arl_local_sv_push(&argv, "0");
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		arl_local_sv_push(&argv, head[i]);
	if (!is_static_elf(ARL_AGENT_BIN)) {
		arl_local_sv_push(&argv, "--ro-bind");
		arl_local_sv_push(&argv, "/usr");
		arl_local_sv_push(&argv, "/usr");
	}
	snprintf(ws, sizeof(ws), "%s/pool-workspace", state);
	arl_local_image_bwrap_args(img, &argv, sb->dir, ws);
	arl_local_sv_push(&argv, "--");
	arl_local_sv_push(&argv, "/.arl-batch-agent");
	arl_local_sv_push(&argv, "--fd");
	arl_local_sv_push(&argv, "3");
	arl_local_image_plan(img, &argv);

	sandbox_spawn(sb, argv.v, sb_uid, sb_gid);
	arl_local_sv_release(&argv);
}

static int setup(void **st)
{
	(void)st;
	if (access("/usr/bin/busybox", X_OK) != 0 || !is_static_elf("/usr/bin/busybox") ||
	    !is_static_elf(ARL_AGENT_BIN) ||
	    system("bwrap --unshare-user --ro-bind / / true 2>/dev/null") != 0) {
		fprintf(stderr, "no static busybox (busybox-static), no static agent (a sanitizer "
		                "build) or no bwrap user namespace here\n");
		exit(77);
	}
	sb_uid = geteuid() == 0 ? SANDBOX_UID : geteuid();
	sb_gid = geteuid() == 0 ? SANDBOX_UID : getegid();
	if (!mkdtemp(state))
		return -1;
	chmod(state, 0755);
	sh("mkdir %s/pool-workspace && echo orig > %s/pool-workspace/src.txt && chown -R %u:%u "
	   "%s/pool-workspace",
	   state, state, (unsigned)sb_uid, (unsigned)sb_gid, state);
	return 0;
}

static int teardown(void **st)
{
	struct arl_err err = ARL_ERR_INIT;

	(void)st;
	if (arl_local_rm_tree(AT_FDCWD, state, &err) < 0)
		fprintf(stderr, "%s\n", err.msg);
	return 0;
}

static void test_image_root(void **st)
{
	struct arl_image *im = make_image("img", 2);
	struct local_image li = {.im = im};
	struct arl_err err = ARL_ERR_INIT;
	struct sandbox a;
	char p[512];
	FILE *f;

	(void)st;
	if (arl_local_image_user(im->layers, im->nlayers, "app", &li.uid, &li.gid, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(li.uid, 1000);
	assert_int_equal(li.gid, 1001);
	start(&a, "sb-a", &li);
	/* The image's files, the top layer's over the bottom's; none of the host's. */
	sandbox_expect_sh(&a, step_env, "cat /usr/share/which /usr/share/kept", "top\nkept\n", 0);
	sandbox_expect_sh(&a, step_env,
	                  "test -e /usr/bin/env || test -e /etc/debian_version || echo none",
	                  "none\n", 0);
	/* The image's User, owning the image's files; /proc, /dev, /tmp and /workspace kept. */
	sandbox_expect_sh(&a, step_env,
	                  "id -u; id -g; ls -ln /usr/share/kept | (read m l u g r; echo $u)",
	                  "1000\n1001\n1000\n", 0);
	sandbox_expect_sh(&a, step_env,
	                  "test -e /proc/1/status && test -c /dev/null && echo t > /tmp/t && cat "
	                  "/tmp/t /workspace/src.txt",
	                  "t\norig\n", 0);
	/* Writes over the image's /usr and /workspace stay in the sandbox's upper. */
	sandbox_expect_sh(&a, step_env,
	                  "echo changed > /usr/share/which && echo new > /workspace/src.txt && cat "
	                  "/usr/share/which",
	                  "changed\n", 0);
	/* No user namespace of the step's own (the User's is the last one allowed). */
	sandbox_expect_sh(&a, step_env, "unshare -U true 2>/dev/null || echo refused", "refused\n",
	                  0);
	/* Nothing of the staging place is left in sight. */
	sandbox_expect_sh(&a, step_env,
	                  "test -e /.arl-layers || test -e /.arl-batch-agent || echo gone",
	                  "gone\n", 0);
	sandbox_stop(&a);
	snprintf(p, sizeof(p), "%s/usr/share/which", im->layers[1]);
	assert_non_null(f = fopen(p, "r"));
	assert_non_null(fgets(p, sizeof(p), f));
	fclose(f);
	assert_string_equal(p, "top\n");
	sh("grep -qx orig %s/pool-workspace/src.txt", state);
	sh("grep -qx changed %s/sb-a/upper/.image/usr/share/which", state);
	free_image(im);
}

/* 500 layers (overlayfs's most) in one mount: relative names fit the options' page. */
static void test_many_layers(void **st)
{
	struct arl_image *im = make_image("many", MANY);
	struct local_image li = {.im = im};
	struct sandbox a;

	(void)st;
	sh("echo last > %s/many/%d/top-file && chown %u:%u %s/many/%d/top-file", state, MANY - 1,
	   (unsigned)sb_uid, (unsigned)sb_gid, state, MANY - 1);
	start(&a, "sb-many", &li);
	sandbox_expect_sh(&a, step_env, "cat /top-file /usr/share/which; id -u", "last\ntop\n0\n",
	                  0);
	sandbox_stop(&a);
	free_image(im);
}

static void test_image_user(void **st)
{
	struct arl_image *im = make_image("users", 2);
	struct arl_err err = ARL_ERR_INIT;
	uid_t u;
	gid_t g;

	(void)st;
	assert_int_equal(arl_local_image_user(im->layers, 2, "", &u, &g, &err), 0);
	assert_true(u == 0 && g == 0);
	assert_int_equal(arl_local_image_user(im->layers, 2, "1000", &u, &g, &err), 0);
	assert_true(u == 1000 && g == 1001);
	assert_int_equal(arl_local_image_user(im->layers, 2, "4242", &u, &g, &err), 0);
	assert_true(u == 4242 && g == 0);
	assert_int_equal(arl_local_image_user(im->layers, 2, "app:staff", &u, &g, &err), 0);
	assert_true(u == 1000 && g == 50);
	assert_int_equal(arl_local_image_user(im->layers, 2, "app:7", &u, &g, &err), 0);
	assert_true(u == 1000 && g == 7);
	assert_int_equal(arl_local_image_user(im->layers, 2, "nobody", &u, &g, &err), -1);
	assert_non_null(strstr(err.msg, "'nobody' is not a user of the image's /etc/passwd"));
	err = (struct arl_err)ARL_ERR_INIT;
	assert_int_equal(arl_local_image_user(im->layers, 2, "app:wheel", &u, &g, &err), -1);
	assert_non_null(strstr(err.msg, "group 'wheel'"));
	/* A top layer whose /etc/passwd or /etc is a link to the host's: the image has no
	 * passwd, and the host's is never read. */
	sh("mkdir -p %s/users/1/etc && ln -s /etc/passwd %s/users/1/etc/passwd", state, state);
	err = (struct arl_err)ARL_ERR_INIT;
	assert_int_equal(arl_local_image_user(im->layers, 2, "root", &u, &g, &err), -1);
	sh("rm -r %s/users/1/etc && ln -s /etc %s/users/1/etc", state, state);
	err = (struct arl_err)ARL_ERR_INIT;
	assert_int_equal(arl_local_image_user(im->layers, 2, "root", &u, &g, &err), -1);
	sh("rm %s/users/1/etc", state);
	assert_int_equal(arl_local_image_user(im->layers, 2, "root", &u, &g, &err), 0);
	free_image(im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_image_root),
	    cmocka_unit_test(test_many_layers),
	    cmocka_unit_test(test_image_user),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
