/*
 * A container as the local backend starts one, for tests that build its bwrap argv themselves
 * (test_cow_root, test_image_root): bwrap run as the sandbox's uid with the agent on fd 3, and
 * shell steps run through the agent. Include after <cmocka.h>.
 */
#ifndef ARL_TEST_AGENT_SANDBOX_H
#define ARL_TEST_AGENT_SANDBOX_H

#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "local/agent_client.h"

struct sandbox {
	pid_t pid; /* bwrap */
	struct arl_agent *a;
	char dir[256]; /* the sandbox's own directory: uppers and work dirs */
};

struct step_out {
	struct arl_buf out, err;
	int exit_code;
};

/* Starts bwrap with @argv (the agent told "--fd 3") as @uid/@gid when root; waits for HELLO. */
static inline void sandbox_spawn(struct sandbox *sb, char **argv, uid_t uid, gid_t gid)
{
	struct arl_err err = ARL_ERR_INIT;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	sb->pid = fork();
	assert_true(sb->pid >= 0);
	if (sb->pid == 0) {
		if (dup2(sv[1], 3) < 0)
			_exit(127);
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		                       setresuid(uid, uid, uid) < 0))
			_exit(127);
		execvp("bwrap", argv);
		_exit(127);
	}
	close(sv[1]);
	if (arl_agent_open(&sb->a, sv[0], 0, &err) < 0)
		fail_msg("the sandbox did not start: %s", err.msg);
}

/* Ends the sandbox (the agent exits, and bwrap with it), keeping its directory. */
static inline void sandbox_stop(struct sandbox *sb)
{
	int status;

	arl_agent_free(sb->a);
	sb->a = NULL;
	assert_int_equal(waitpid(sb->pid, &status, 0), sb->pid);
}

/* Runs `sh -c @script` in / with @env; its output and exit status into @o (caller releases). */
static inline void sandbox_run_sh(struct sandbox *sb, char **env, const char *script,
                                  struct step_out *o)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_agent_event ev;
	uint32_t id;

	memset(o, 0, sizeof(*o));
	if (arl_agent_exec(sb->a, argv, env, "/", &id, &err) < 0)
		fail_msg("arl_agent_exec: %s", err.msg);
	for (;;) {
		if (arl_agent_next(sb->a, 0, -1, &ev, &err) < 0)
			fail_msg("arl_agent_next: %s", err.msg);
		if (ev.kind == ARL_AGENT_STDOUT)
			arl_buf_add(&o->out, ev.data, ev.len);
		else if (ev.kind == ARL_AGENT_STDERR)
			arl_buf_add(&o->err, ev.data, ev.len);
		else if (ev.kind == ARL_AGENT_EXIT)
			break;
		else
			fail_msg("'%s': %.*s", script, (int)ev.len, ev.data);
	}
	o->exit_code = ev.exit_code;
}

/* Runs @script and expects its stdout to be @out and its exit status @code. */
static inline void sandbox_expect_sh(struct sandbox *sb, char **env, const char *script,
                                     const char *out, int code)
{
	struct step_out o;

	sandbox_run_sh(sb, env, script, &o);
	if (o.exit_code != code || strcmp(o.out.len ? o.out.p : "", out))
		fail_msg("'%s': exit %d, stdout '%s' (wanted %d, '%s'), stderr '%s'", script,
		         o.exit_code, o.out.len ? o.out.p : "", code, out,
		         o.err.len ? o.err.p : "");
	arl_buf_release(&o.out);
	arl_buf_release(&o.err);
}

#endif
