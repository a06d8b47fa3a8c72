/*
 * Preparing a local sandbox with a copy-on-write root (issue 14), measured through the code
 * the runner uses (local/cow_root.c): make the sandbox directory and its upper and work
 * directories, start bwrap with the agent mounting the overlays, wait for its HELLO. With
 * --copy, today's preparation instead: the workspace copied into the sandbox directory
 * (local/tree.c). Prints one figure in milliseconds per round (wall, monotonic clock). Built and run by
 * bench/cow_prepare.sh.
 * Usage: cow_prepare AGENT STATE_DIR WORKSPACE ROUNDS [--copy]
 */
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "local/agent_client.h"
#include "local/cow_root.h"
#include "local/strvec.h"
#include "local/tree.h"
#include "util.h"

static uid_t uid;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static gid_t gid;

static void die(const char *what, const struct arl_err *err)
{
	fprintf(stderr, "cow_prepare: %s: %s\n", what, err ? err->msg : "failed");
	exit(1);
}

/* One sandbox made, started until its agent answers, and ended. */
static void one(const struct cow_root *c, const char *agent, const char *dir, const char *ws)
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
	                                   "--dev",
	                                   "/dev",
	                                   "--tmpfs",
	                                   "/tmp",
	                                   "--ro-bind"};
	static const char *const masks[] = {"/etc/shadow"};
	struct strvec argv = {0};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_agent *a;
	int fd, sv[2], status;
	pid_t pid;

	if (mkdir(dir, 0700) < 0 || chown(dir, uid, gid) < 0 ||
	    (fd = open(dir, O_RDONLY | O_DIRECTORY)) < 0)
		die(dir, NULL);
	if (arl_cow_root_make_uppers(c, fd, &err) < 0)
		die("uppers", &err);
	close(fd);
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		arl_local_sv_push(&argv, head[i]);
	arl_local_sv_push(&argv, agent);
	arl_local_sv_push(&argv, "/.arl-batch-agent");
	arl_cow_root_bwrap_args(c, &argv, dir, ws);
	arl_local_sv_push(&argv, "--");
	arl_local_sv_push(&argv, "/.arl-batch-agent");
	arl_local_sv_push(&argv, "--fd");
	arl_local_sv_push(&argv, "3");
	arl_cow_root_plan(c, &argv, masks, 1, NULL);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || (pid = fork()) < 0)
		die("fork", NULL);
	if (pid == 0) {
		if (dup2(sv[1], 3) < 0 ||
		    (geteuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		                        setresuid(uid, uid, uid) < 0)))
			_exit(127);
		execvp("bwrap", argv.v);
		_exit(127);
	}
	close(sv[1]);
	arl_local_sv_release(&argv);
	if (arl_agent_open(&a, sv[0], 0, &err) < 0)
		die("sandbox", &err);
	arl_agent_free(a);
	waitpid(pid, &status, 0);
}

int main(int argc, char **argv)
{
	static const char *const trees[] = {"/usr", "/etc"};
	struct cow_root c;
	struct arl_err err = ARL_ERR_INIT;
	bool copy = argc == 6 && !strcmp(argv[5], "--copy");
	char skel[4096], dir[4096];
	double t0;

	if (argc != 5 && !copy) {
		fputs("usage: cow_prepare AGENT STATE_DIR WORKSPACE ROUNDS [--copy]\n", stderr);
		return 2;
	}
	uid = geteuid() == 0 ? 65530 : geteuid();
	gid = geteuid() == 0 ? 65530 : getegid();
	/* On a tmpfs, as the runner keeps it: 17,000 mkdirs take ~0.2 s there, ~2.5 s on ext4. */
	snprintf(skel, sizeof(skel), "/dev/shm/arl-bench-skel-XXXXXX");
	if (!copy && (!mkdtemp(skel) || chmod(skel, 0755) < 0))
		die(skel, NULL);
	strcat(skel, "/skel");
	t0 = now_ms();
	if (!copy && arl_cow_root_open(&c, skel, trees, 2, uid, gid, &err) < 0)
		die("skeleton", &err);
	if (!copy)
		fprintf(stderr, "skeleton of /usr and /etc (once per run): %.1f ms\n",
		        now_ms() - t0);
	for (int r = 0; r < atoi(argv[4]); r++) {
		snprintf(dir, sizeof(dir), "%s/sb-%d", argv[2], r);
		t0 = now_ms();
		if (copy) {
			struct arl_buf rel = ARL_BUF_INIT;
			struct copy_bound b = {arl_now_ms() + 3600 * 1000, -1, uid, gid,
			                       geteuid() == 0};
			int sfd = open(argv[3], O_RDONLY | O_DIRECTORY), dfd;

			if (sfd < 0 || mkdir(dir, 0700) < 0 ||
			    (dfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0)
				die(dir, NULL);
			if (arl_local_copy_tree(sfd, dfd, &rel, 0, &b, &err) < 0)
				die("copy", &err);
			close(sfd);
			close(dfd);
			arl_buf_release(&rel);
		} else {
			one(&c, argv[1], dir, argv[3]);
		}
		printf("%.2f\n", now_ms() - t0);
		fflush(stdout);
		if (arl_local_rm_tree(AT_FDCWD, dir, &err) < 0)
			die("rm", &err);
	}
	if (!copy) {
		arl_cow_root_close(&c);
		*strrchr(skel, '/') = '\0';
		rmdir(skel);
	}
	return 0;
}
