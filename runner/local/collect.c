/*
 * A job's artifacts out of a local sandbox (agent/collect.h has the walk and its rules).
 * bwrap pools: the agent's child for a step runs the walk instead of a program (an EXEC of
 * ARL_COLLECT_ARGV0: same uid, same view of the file system, an image's root too) and streams
 * the files on its stdout, which is parsed here as untrusted input. isolation none: the walk runs here, rooted at the sandbox
 * directory (only /workspace patterns), never following a symlink out of it.
 */
#include "local/collect.h"
#include "local/collect_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/collect.h"
#include "agent/protocol.h"
#include "local/agent_client.h"
#include "local/local.h"
#include "local/local_pool.h"
#include "util.h"
#include "banned.h"

/* ---- isolation none: in the runner ---- */

struct direct {
	const struct local *L;
	const struct arl_artifact_sink *sink;
	const struct arl_artifact_spec *specs;
	int64_t deadline_ms;
	int cancel_fd;
	bool stopped;
};

static int read_file(void *arg, size_t spec, int dirfd, const char *name, const char *path)
{
	struct direct *d = arg;
	const struct arl_artifact_sink *s = d->sink;
	static _Thread_local char buf[ARL_COLLECT_CHUNK];
	const char *why;
	int fd;

	char msg[128];
	int64_t size = -1;
	struct stat st;

	if ((fd = arl_collect_open(dirfd, name, &size, &why)) < 0 && !why)
		return 0;
	if (s->begin(s->arg, spec, path, size) < 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (fd < 0) {
		s->end(s->arg, why);
		return 0;
	}
	if (arl_collect_too_large(size, d->specs[spec].max_size, msg, sizeof(msg))) {
		s->end(s->arg, msg);
		close(fd);
		return 0;
	}
	/*
	 * We read as root, the step ran as none_uid: a hard link it made to a file of someone
	 * else's must not be read with our rights. (Its workspace is a bind mount at ROOT_MNT,
	 * which link(2) cannot cross, and protected_hardlinks stops the rest: this is the last
	 * line, should either change.)
	 */
	if (d->L->drop &&
	    (fstat(fd, &st) < 0 || (st.st_nlink > 1 && st.st_uid != d->L->none_uid))) {
		s->end(s->arg, "a hard link to a file the sandbox's user does not own: not read");
		close(fd);
		return 0;
	}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			s->end(s->arg, "cannot be read");
			break;
		}
		if (r == 0) {
			s->end(s->arg, NULL);
			break;
		}
		if (s->data(s->arg, buf, (size_t)r) < 0) {
			s->end(s->arg, "refused");
			break;
		}
		if ((d->deadline_ms && arl_now_ms() >= d->deadline_ms) ||
		    arl_fd_readable(d->cancel_fd)) {
			s->end(s->arg, "collection cut short (time limit or interrupt)");
			d->stopped = true;
			break;
		}
	}
	close(fd);
	return d->stopped ? -1 : 0;
}

static int collect_none(struct local *L, struct arl_sandbox *sb,
                        const struct arl_artifact_spec *specs, size_t nspecs,
                        const struct arl_artifact_sink *sink, int64_t deadline_ms,
                        struct arl_err *err)
{
	struct direct d = {.L = L,
	                   .sink = sink,
	                   .specs = specs,
	                   .deadline_ms = deadline_ms,
	                   .cancel_fd = L->cancel_fd};
	size_t ws = strlen(WS_INSIDE);
	int root;

	root = openat(L->state_fd, sb->dir.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		return arl_error_errno(err, errno, "cannot open the sandbox directory '%s'",
		                       sb->path);
	for (size_t i = 0; i < nspecs && !d.stopped; i++) {
		const char *p = specs[i].path;

		if (strncmp(p, WS_INSIDE, ws) || (p[ws] != '/' && p[ws] != '\0')) {
			if (sink->begin(sink->arg, i, p, -1) == 0)
				sink->end(sink->arg, "outside /workspace (an isolation: none "
				                     "sandbox has nothing else)");
			continue;
		}
		arl_collect_glob(root, p, ws, i, ARL_ARTIFACTS_MAX_FILES + 1, read_file, &d);
	}
	close(root);
	return 0;
}

/* ---- bwrap: through the agent ---- */

static int collect_bwrap(struct local *L, struct arl_sandbox *sb,
                         const struct arl_artifact_spec *specs, size_t nspecs,
                         const struct arl_artifact_sink *sink, int64_t deadline_ms,
                         struct arl_err *err)
{
	struct arl_collect_stream st;
	char **argv = arl_xcalloc(2 * nspecs + 5, sizeof(*argv));
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct arl_agent_event ev;
	int cancel_fd = L->cancel_fd, ret = -1;
	bool killed = false;
	uint32_t id;
	size_t k = 0;

	arl_collect_stream_init(&st, sink, nspecs);
	if (!sb->agent) {
		arl_error(err, ARL_E_BACKEND, "the sandbox's container is not running");
		goto out;
	}
	argv[k++] = arl_xstrdup(ARL_COLLECT_ARGV0);
	argv[k++] = arl_xstrdup("--collect");
	argv[k++] = arl_xasprintf("%lld", (long long)ARL_ARTIFACTS_MAX_TOTAL);
	argv[k++] = arl_xasprintf("%d", ARL_ARTIFACTS_MAX_FILES);
	for (size_t i = 0; i < nspecs; i++) {
		argv[k++] = arl_xasprintf("%lld", (long long)specs[i].max_size);
		argv[k++] = arl_xstrdup(specs[i].path);
	}
	if (arl_agent_exec(sb->agent, argv, envp, "/", &id, err) < 0)
		goto out;
	for (;;) {
		struct arl_err e = ARL_ERR_INIT;

		if (arl_agent_next(sb->agent, killed ? 0 : deadline_ms, cancel_fd, &ev, &e) < 0) {
			if (e.code != ARL_E_TIMEOUT && e.code != ARL_E_CANCELLED) {
				arl_error(err, e.code, "%s", e.msg);
				sb->tainted = true;
				goto out;
			}
			arl_collect_stream_cut(&st,
			                       "collection cut short (time limit or interrupt)");
			cancel_fd = -1;
			killed = true;
			if (arl_agent_signal(sb->agent, id, SIGKILL, err) < 0)
				goto out;
			continue;
		}
		if (ev.kind == ARL_AGENT_STDOUT)
			arl_collect_stream_feed(&st, ev.data, ev.len);
		else if (ev.kind == ARL_AGENT_EXIT)
			break;
		else if (ev.kind == ARL_AGENT_ERROR) {
			arl_error(err, ARL_E_BACKEND, "the sandbox could not run the collector: %s",
			          ev.data);
			goto out;
		}
	}
	if (!killed && arl_collect_stream_finish(&st) == 0 && ev.exit_code != 0) {
		arl_error(err, ARL_E_BACKEND, "the collector exited with %d", ev.exit_code);
		goto out;
	}
	ret = 0;
out:
	arl_collect_stream_release(&st, "collection failed");
	for (size_t i = 0; i < k; i++)
		free(argv[i]);
	free(argv);
	return ret;
}

int arl_local_collect(void *state, struct arl_sandbox *sb, const struct arl_artifact_spec *specs,
                      size_t nspecs, const struct arl_artifact_sink *sink, int64_t deadline_ms,
                      struct arl_err *err)
{
	struct local *L = state;

	if (arl_local_pool(sb->pool)->isolation == ARL_ISO_NONE)
		return collect_none(L, sb, specs, nspecs, sink, deadline_ms, err);
	return collect_bwrap(L, sb, specs, nspecs, sink, deadline_ms, err);
}
