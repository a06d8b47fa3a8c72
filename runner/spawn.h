/*
 * Running one program to completion: posix_spawn in its own process group, stdout and stderr
 * captured concurrently through CLOEXEC pipes with a per-stream cap (head and tail kept), a
 * deadline enforced through a pidfd (SIGTERM to the group, SIGKILL after a grace), and
 * cancellation through a caller's fd. Thread-safe: many workers spawn at once.
 */
#ifndef ARL_SPAWN_H
#define ARL_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "result.h"
#include "util.h"

#define ARL_SPAWN_DEFAULT_CAPTURE (1024 * 1024)
#define ARL_KILL_GRACE_MS         2000

/*
 * What the child becomes before exec, beside its fds and directory. Setting any of this
 * replaces posix_spawn by our own vfork-like child (clone with CLONE_VM | CLONE_VFORK, raw
 * system calls only), since posix_spawn cannot change ids or namespaces.
 */
struct arl_spawn_ident {
	bool set_ids; /* setgroups(0), setresgid(gid), setresuid(uid): needs root */
	uid_t uid;
	gid_t gid;
	bool new_keyring; /* joins a fresh anonymous session keyring: none of ours is possessed */
	const char *bind_src; /* with bind_dst, before the ids change: in a private mount */
	const char *bind_dst; /* namespace (nothing propagates back), bind_src is bound here */
	int bind_fd;          /* > 2: bound instead of bind_src (no path resolved as root) */
	int bind2_fd;         /* > 2, with bind2_dst: a second O_PATH fd bound there alike */
	const char *bind2_dst;
	int bind3_fd; /* > 2, with bind3_dst: a third alike */
	const char *bind3_dst;
	const char *cwd_path; /* entered by path after the ids change (with opts.cwd NULL) */
	int fd3;              /* > 2: becomes the child's fd 3; 0: none */
	/* cgroup.procs files (open for writing) the child joins first, so all it starts is in. */
	const int *cgroup_fds;
	size_t ncgroup_fds;
};

struct arl_spawn_opts {
	char *const *argv;      /* argv[0] is searched in PATH when it has no '/' */
	char *const *envp;      /* the child's whole environment; NULL: inherit */
	const char *cwd;        /* NULL: inherit */
	int64_t deadline_ms;    /* absolute, on @clock; 0: none */
	size_t capture_max;     /* per stream; 0: ARL_SPAWN_DEFAULT_CAPTURE */
	int64_t grace_ms;       /* SIGTERM -> SIGKILL; 0: ARL_KILL_GRACE_MS */
	int cancel_fd;          /* when readable, the child is killed as on timeout; -1: none */
	const char *stdin_path; /* NULL: /dev/null */
	const struct arl_spawn_ident *ident; /* NULL: the child is what we are */
	/* The clock of the deadline, the grace and the drain; zeroed: arl_now_ms(). */
	struct arl_clock clock;
	/*
	 * Killed as on timeout (timed_out and stalled set) once neither stdout nor stderr got a
	 * byte for this long, from the start or the last byte (on @clock); 0: never.
	 */
	int64_t stall_ms;
	/* Optional: every chunk read, as it comes (@stream 0 stdout, 1 stderr), beside the capture. */
	void (*on_output)(void *arg, int stream, const char *p, size_t n);
	void *output_arg;
};
/* Start from this rather than {0}: a cancel_fd of 0 would watch stdin. */
#define ARL_SPAWN_OPTS_INIT                                                                        \
	{                                                                                          \
		.cancel_fd = -1                                                                    \
	}

struct arl_spawn_result {
	int exit_code; /* exit status, or 128+signal */
	bool timed_out;
	bool stalled; /* the timeout was stall_ms of silence */
	bool cancelled;
	/*
	 * A process that left the group (setsid) still held stdout or stderr when we stopped
	 * reading, DRAIN_MS after the exit: something of the program may still be running.
	 */
	bool lingering;
	struct arl_output out, err;
	int64_t duration_ms;
};

/*
 * Runs the program and waits for it and its process group. Returns -1 only when it could not
 * be started (the error says why, e.g. "cannot run 'x': No such file or directory"); a
 * program that ran and failed is a 0 return with exit_code set. @res is filled on success
 * and must be released with arl_spawn_result_release().
 */
int arl_spawn_run(const struct arl_spawn_opts *o, struct arl_spawn_result *res,
                  struct arl_err *err);
void arl_spawn_result_release(struct arl_spawn_result *res);

/*
 * Starts a long-lived program (@o's argv, envp, cwd and ident; stdin /dev/null) with stdout
 * and stderr on @out_fd, in its own process group, and returns at once: *@pid and a pidfd
 * *@pidfd of it. The caller ends it with arl_spawn_stop(). -1 when it could not be started.
 */
int arl_spawn_start(const struct arl_spawn_opts *o, int out_fd, pid_t *pid, int *pidfd,
                    struct arl_err *err);
/*
 * Waits up to @wait_ms (0: not at all) for a started program to exit, then SIGKILLs its
 * process group, reaps it and closes @pidfd. Returns its exit status (128 + signal).
 */
int arl_spawn_stop(pid_t pid, int pidfd, int64_t wait_ms);

/*
 * Finds program @name as execvp() does, in the ':'-separated @path, relative entries (and an
 * empty one, the current directory) against @dirfd; with @dirfd -1 only absolute entries
 * count. Returns 0 with *@out (malloc'd; relative when its entry is), or ENOENT, or EACCES when
 * found but not executable.
 */
int arl_spawn_search_path(const char *name, const char *path, int dirfd, char **out);

#endif
