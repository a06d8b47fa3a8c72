/*
 * A job's artifacts out of a local sandbox (agent/collect.h has the walk and its rules).
 * bwrap pools: the agent's child for a step runs the walk instead of a program (an EXEC of
 * ARL_COLLECT_ARGV0: same uid, same view of the file system, an image's root too) and streams
 * the files on its stdout, which is parsed here as untrusted input. isolation none: the walk runs here, rooted at the sandbox
 * directory (only /workspace patterns), never following a symlink out of it.
 */
#include "local/collect.h"

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

/* ---- bwrap: the agent's --collect stream ---- */

struct stream {
	const struct arl_artifact_sink *sink;
	size_t nspecs;
	unsigned char hdr[17]; /* the record being read: type, then its u32s */
	size_t nhdr, want;     /* header bytes held; body bytes still to come */
	char *path;            /* 'B': the path being read */
	size_t npath;
	char text[256]; /* 'E' */
	size_t ntext;
	bool body;   /* the header is read: @want bytes of body to come */
	bool open;   /* a file was begun and the sink took it */
	bool begun;  /* a file was begun (taken or not) */
	bool broken; /* the stream is malformed: everything after is ignored */
};

static size_t header_len(unsigned char type)
{
	return type == 'B' ? 17 : 5;
}

static void stream_end(struct stream *st, const char *why)
{
	if (st->open)
		st->sink->end(st->sink->arg, why);
	st->open = st->begun = false;
}

static void stream_break(struct stream *st)
{
	stream_end(st, "the collector's output is malformed");
	st->broken = true;
}

/* Body bytes of the current record. */
static void stream_body(struct stream *st, const char *p, size_t n)
{
	unsigned char type = st->hdr[0];

	if (type == 'D') {
		if (st->open && st->sink->data(st->sink->arg, p, n) < 0) {
			st->sink->end(st->sink->arg, "refused");
			st->open = false;
		}
	} else if (type == 'B') {
		memcpy(st->path + st->npath, p, n);
		st->npath += n;
	} else {
		size_t take =
		    n < sizeof(st->text) - 1 - st->ntext ? n : sizeof(st->text) - 1 - st->ntext;

		memcpy(st->text + st->ntext, p, take);
		st->ntext += take;
	}
}

/* The current record is complete. */
static void stream_done(struct stream *st)
{
	unsigned char type = st->hdr[0];

	if (type == 'B') {
		uint32_t spec = arl_proto_get_u32(st->hdr + 1);
		int64_t size = (int64_t)((uint64_t)arl_proto_get_u32(st->hdr + 9) << 32 |
		                         arl_proto_get_u32(st->hdr + 5));

		st->path[st->npath] = '\0';
		if (spec >= st->nspecs || strlen(st->path) != st->npath) {
			stream_break(st);
		} else {
			st->begun = true;
			st->open = st->sink->begin(st->sink->arg, spec, st->path,
			                           size < 0 ? -1 : size) == 0;
		}
		free(st->path);
		st->path = NULL;
	} else if (type == 'E') {
		st->text[st->ntext] = '\0';
		for (size_t i = 0; i < st->ntext; i++)
			if ((unsigned char)st->text[i] < 0x20)
				st->text[i] = '?';
		stream_end(st, st->ntext ? st->text : NULL);
	}
	st->nhdr = 0;
}

static void stream_feed(struct stream *st, const char *p, size_t n)
{
	while (n && !st->broken) {
		if (!st->body) {
			if (st->nhdr == 0) {
				unsigned char t = (unsigned char)*p;

				/* A file's records need its 'B' first; a 'B' inside one is bad. */
				if ((t != 'B' && t != 'D' && t != 'E') || (t != 'B') != st->begun) {
					stream_break(st);
					return;
				}
			}
			st->hdr[st->nhdr++] = (unsigned char)*p++;
			n--;
			if (st->nhdr < header_len(st->hdr[0]))
				continue;
			st->want = arl_proto_get_u32(st->hdr + header_len(st->hdr[0]) - 4);
			if ((st->hdr[0] == 'B' && st->want >= 4096) ||
			    (st->hdr[0] == 'D' && st->want > ARL_COLLECT_CHUNK) ||
			    (st->hdr[0] == 'E' && st->want > 4096)) {
				stream_break(st);
				return;
			}
			if (st->hdr[0] == 'B') {
				st->path = arl_xmalloc(st->want + 1);
				st->npath = 0;
			}
			st->ntext = 0;
			st->body = true;
		} else {
			size_t take = n < st->want ? n : st->want;

			stream_body(st, p, take);
			p += take, n -= take, st->want -= take;
		}
		if (st->body && !st->want) {
			st->body = false;
			stream_done(st);
		}
	}
}

static int collect_bwrap(struct local *L, struct arl_sandbox *sb,
                         const struct arl_artifact_spec *specs, size_t nspecs,
                         const struct arl_artifact_sink *sink, int64_t deadline_ms,
                         struct arl_err *err)
{
	struct stream st = {.sink = sink, .nspecs = nspecs};
	char **argv = arl_xcalloc(2 * nspecs + 5, sizeof(*argv));
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct arl_agent_event ev;
	int cancel_fd = L->cancel_fd, ret = -1;
	bool killed = false;
	uint32_t id;
	size_t k = 0;

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
			stream_end(&st, "collection cut short (time limit or interrupt)");
			st.broken = true;
			cancel_fd = -1;
			killed = true;
			if (arl_agent_signal(sb->agent, id, SIGKILL, err) < 0)
				goto out;
			continue;
		}
		if (ev.kind == ARL_AGENT_STDOUT)
			stream_feed(&st, ev.data, ev.len);
		else if (ev.kind == ARL_AGENT_EXIT)
			break;
		else if (ev.kind == ARL_AGENT_ERROR) {
			arl_error(err, ARL_E_BACKEND, "the sandbox could not run the collector: %s",
			          ev.data);
			goto out;
		}
	}
	if (!killed && !st.broken && (st.nhdr || st.body || st.begun))
		stream_break(&st); /* ended mid-record */
	if (!killed && ev.exit_code != 0 && !st.broken) {
		arl_error(err, ARL_E_BACKEND, "the collector exited with %d", ev.exit_code);
		goto out;
	}
	ret = 0;
out:
	stream_end(&st, "collection failed");
	free(st.path);
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
