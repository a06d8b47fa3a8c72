/* A local sandbox's container: bwrap with the agent as its first process (see container.h). */
#include "local/container.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "local/agent_client.h"
#include "local/bwrap.h"
#include "local/identity.h"
#include "local/limits.h"
#include "local/local.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

/* Waits until @fd is readable: 0, or -1 with ARL_E_TIMEOUT / ARL_E_CANCELLED. */
static int wait_readable(int fd, int cancel_fd, int64_t deadline_ms, struct arl_err *err)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
		                      {.fd = cancel_fd, .events = POLLIN}};
		int64_t left = deadline_ms ? deadline_ms - arl_now_ms() : -1;
		int n;

		if (deadline_ms && left <= 0)
			return arl_error(err, ARL_E_TIMEOUT, "the sandbox did not start in time");
		n = poll(p, cancel_fd >= 0 ? 2 : 1,
		         left < 0         ? -1
		         : left > INT_MAX ? INT_MAX
		                          : (int)left);
		if (n < 0 && errno != EINTR)
			return arl_error_errno(err, errno, "cannot wait for the sandbox");
		if (n > 0 && p[0].revents)
			return 0;
		if (n > 0 && cancel_fd >= 0 && p[1].revents)
			return arl_error(err, ARL_E_CANCELLED,
			                 "cancelled while starting the sandbox");
	}
}

/* The first line bwrap (or the agent before its socket) wrote to @fd, for a message. */
static void first_line(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

int arl_local_container_spawn(struct local *L, struct arl_sandbox *sb, bool network,
                              struct arl_err *err)
{
	struct strvec argv = {0};
	struct arl_spawn_opts so = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_ident id;
	int sv[2] = {-1, -1}, out_fd = -1, ws_fd = -1, agent_fd = -1, lower_fd = -1, ret = -1;
	const char *lower = arl_local_ws_lower(L, sb->pool);
	int cg_fds[ARL_CGROUP_MAX_FDS], ncg = 0;

	sb->bwrap_pid = -1;
	sb->bwrap_pidfd = -1;
	if (!L->bwrap || !L->agent)
		return arl_error(err, ARL_E_BACKEND,
		                 "pool '%s' uses bwrap, which open() did not check",
		                 sb->pool ? sb->pool->name : "?");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    (out_fd = memfd_create("arl-bwrap-stderr", MFD_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot start the sandbox");
		goto out;
	}
	if (L->drop) {
		if ((ws_fd = arl_local_sandbox_fd(L, sb->dir.name, err)) < 0)
			goto out;
		if ((agent_fd = open(L->agent, O_PATH | O_CLOEXEC)) < 0) {
			arl_error_errno(err, errno, "cannot open the sandbox agent '%s'", L->agent);
			goto out;
		}
		if (lower && (lower_fd = arl_local_ws_lower_fd(L, sb->pool, err)) < 0)
			goto out;
	}
	/* As root the child binds both where the sandbox uid can reach them (see identity.h). */
	arl_local_bwrap_argv(L, &argv, L->drop ? ROOT_MNT : sb->path, lower,
	                     L->drop ? ROOT_AGENT : L->agent, network, sb->image, sb->keep_alive);
	arl_local_step_ident(L, false, &id, ws_fd, sv[1]);
	if (L->drop) {
		id.bind2_fd = agent_fd;
		id.bind2_dst = ROOT_AGENT;
		id.bind3_fd = lower_fd;
		id.bind3_dst = ROOT_LOWER;
	}
	/* Everything of the container, bwrap first, is in the sandbox's cgroup (local/limits.h). */
	if ((ncg = arl_local_limits_join(sb, &id, cg_fds, err)) < 0)
		goto out;
	so.ident = &id;
	so.argv = argv.v;
	so.envp = arl_local_no_env;
	if (arl_spawn_start(&so, out_fd, &sb->bwrap_pid, &sb->bwrap_pidfd, err) < 0)
		goto out;
	sb->start_fd = sv[0];
	sb->start_out = out_fd;
	sb->starting = true;
	sv[0] = out_fd = -1;
	ret = 0;
out:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	if (out_fd >= 0)
		close(out_fd);
	if (ws_fd >= 0)
		close(ws_fd);
	if (agent_fd >= 0)
		close(agent_fd);
	if (lower_fd >= 0)
		close(lower_fd);
	arl_local_limits_join_done(cg_fds, ncg);
	arl_local_sv_release(&argv);
	return ret;
}

int arl_local_container_ready(struct local *L, struct arl_sandbox *sb, int64_t deadline_ms,
                              struct arl_err *err)
{
	struct arl_err why = ARL_ERR_INIT;
	char line[256];
	int ret = -1, fd = sb->start_fd;

	if (!sb->starting)
		return sb->agent ? 0 : arl_error(err, ARL_E_BACKEND, "the sandbox was not started");
	sb->starting = false;
	if (wait_readable(fd, L->cancel_fd, deadline_ms, err) < 0) {
		close(fd);
		goto out;
	}
	ret = arl_agent_open(&sb->agent, fd, deadline_ms, &why);
	if (ret < 0) {
		sb->agent = NULL;
		/* bwrap's reason, once it is gone (it writes before it exits). */
		arl_spawn_stop(sb->bwrap_pid, sb->bwrap_pidfd, ARL_LOCAL_STOP_WAIT_MS);
		sb->bwrap_pid = sb->bwrap_pidfd = -1;
		first_line(sb->start_out, line, sizeof(line));
		arl_error(err, why.code == ARL_E_PROTO ? ARL_E_BACKEND : why.code, "%s",
		          line[0] ? line : why.msg);
	}
out:
	if (ret < 0)
		arl_local_container_stop(sb);
	close(sb->start_out);
	return ret;
}

int arl_local_container_start(struct local *L, struct arl_sandbox *sb, bool network,
                              int64_t deadline_ms, struct arl_err *err)
{
	if (arl_local_container_spawn(L, sb, network, err) < 0)
		return -1;
	return arl_local_container_ready(L, sb, deadline_ms, err);
}

void arl_local_container_close(struct arl_sandbox *sb)
{
	arl_agent_free(sb->agent);
	sb->agent = NULL;
	/* Not yet HELLOed: closing our end is the agent's EOF alike. */
	if (sb->starting) {
		close(sb->start_fd);
		close(sb->start_out);
		sb->starting = false;
	}
}

void arl_local_container_stop(struct arl_sandbox *sb)
{
	int64_t now = arl_now_ms();
	/* A released one had its time since release (reaper.c). */
	int64_t wait = !sb->stop_by        ? ARL_LOCAL_STOP_WAIT_MS
	               : sb->stop_by > now ? sb->stop_by - now
	                                   : 0;

	arl_local_container_close(sb);
	if (sb->bwrap_pid > 0)
		arl_spawn_stop(sb->bwrap_pid, sb->bwrap_pidfd, wait);
	sb->bwrap_pid = sb->bwrap_pidfd = -1;
}
