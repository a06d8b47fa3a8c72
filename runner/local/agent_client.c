/*
 * The runner's end of the sandbox agent's socket. Frames are read whole (SOCK_SEQPACKET):
 * a frame larger than ARL_PROTO_FRAME_MAX arrives truncated with MSG_TRUNC and is refused, so
 * an agent taken over by a step can neither make the runner allocate nor desynchronise it.
 */
#include "local/agent_client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/protocol.h"
#include "buf.h"
#include "util.h"
#include "banned.h"

#define AGENT_NAME "arl-batch-agent"

enum request { REQ_NONE, REQ_EXEC, REQ_WRITE };

struct arl_agent {
	int fd;
	bool broken; /* a protocol error or EOF: every later call fails */
	uint32_t pid;
	uint32_t last_id;
	uint32_t busy_id; /* the outstanding request, with busy_kind */
	enum request busy_kind;
	unsigned char frame[ARL_PROTO_FRAME_MAX + 1]; /* +1: a NUL after the payload */
};

int arl_agent_path(char **out, struct arl_err *err)
{
	char exe[PATH_MAX], ebuf[128];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash, *path;

	if (n < 0)
		return arl_error_errno(err, errno,
		                       "cannot find the sandbox agent: '/proc/self/exe'");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	path = arl_xasprintf("%s/" AGENT_NAME, exe);
	if (access(path, X_OK) < 0) {
		arl_error(
		    err, ARL_E_IO,
		    "cannot find the sandbox agent '%s' (it is installed beside arl-batch): %s",
		    path, arl_strerror(errno, ebuf, sizeof(ebuf)));
		free(path);
		return -1;
	}
	*out = path;
	return 0;
}

static int malformed(struct arl_err *err, const char *what, unsigned type)
{
	const char *name = arl_proto_type_name(type);

	if (name)
		return arl_error(err, ARL_E_PROTO, "sandbox agent sent a malformed %s frame: %s",
		                 name, what);
	return arl_error(err, ARL_E_PROTO, "sandbox agent sent a malformed frame: %s", what);
}

int arl_agent_decode(const void *buf, size_t len, struct arl_agent_event *ev, struct arl_err *err)
{
	struct arl_proto_frame f;
	const char *why;
	uint32_t how, value;

	if (arl_proto_parse(buf, len, &f, &why) < 0)
		return malformed(err, why, 0);
	if (f.flags)
		return malformed(err, "header flags set", f.type);
	memset(ev, 0, sizeof(*ev));
	ev->id = f.id;
	ev->data = (const char *)f.payload;
	ev->len = f.len;
	switch (f.type) {
	case ARL_PROTO_HELLO:
		if (f.len != 8 || f.id)
			return malformed(err, "wrong size or id", f.type);
		ev->kind = ARL_AGENT_HELLO;
		ev->version = arl_proto_get_u32(f.payload);
		ev->pid = arl_proto_get_u32(f.payload + 4);
		break;
	case ARL_PROTO_STDOUT:
	case ARL_PROTO_STDERR:
		if (!f.len || !f.id)
			return malformed(err, "no data or no id", f.type);
		ev->kind = f.type == ARL_PROTO_STDOUT ? ARL_AGENT_STDOUT : ARL_AGENT_STDERR;
		break;
	case ARL_PROTO_EXIT:
		if (f.len != 8 || !f.id)
			return malformed(err, "wrong size or no id", f.type);
		how = arl_proto_get_u32(f.payload);
		value = arl_proto_get_u32(f.payload + 4);
		if (how == ARL_PROTO_EXITED && value <= 255) {
			ev->exit_code = (int)value;
		} else if (how == ARL_PROTO_SIGNALED && value >= 1 && value <= 64) {
			ev->signal = (int)value;
			ev->exit_code = 128 + (int)value;
		} else {
			return malformed(err, "status out of range", f.type);
		}
		ev->kind = ARL_AGENT_EXIT;
		break;
	case ARL_PROTO_OK:
		if (f.len || !f.id)
			return malformed(err, "payload or no id", f.type);
		ev->kind = ARL_AGENT_OK;
		break;
	case ARL_PROTO_ERROR:
		if (f.len < 4 || f.len - 4 > ARL_PROTO_TEXT_MAX)
			return malformed(err, "wrong size", f.type);
		value = arl_proto_get_u32(f.payload);
		if (value > INT_MAX)
			return malformed(err, "errno out of range", f.type);
		ev->kind = ARL_AGENT_ERROR;
		ev->errnum = (int)value;
		ev->data = (const char *)f.payload + 4;
		ev->len = f.len - 4;
		break;
	default:
		if (arl_proto_type_name(f.type))
			return arl_error(
			    err, ARL_E_PROTO,
			    "sandbox agent sent a %s frame, which only the runner sends",
			    arl_proto_type_name(f.type));
		return arl_error(err, ARL_E_PROTO, "sandbox agent sent a frame of unknown type %u",
		                 f.type);
	}
	return 0;
}

/* Marks @a unusable and returns -1: after one bad frame nothing it says can be trusted. */
static int broken(struct arl_agent *a)
{
	a->broken = true;
	return -1;
}

/* The agent's own failure (an ERROR with id 0): its text is untrusted, shown escaped. */
static int agent_failed(struct arl_agent *a, const struct arl_agent_event *ev, struct arl_err *err)
{
	char text[256];

	arl_term_escape(text, sizeof(text), ev->data, false);
	arl_error(err, ARL_E_BACKEND, "sandbox agent failed: %s", text);
	return broken(a);
}

/*
 * Waits for and reads one frame into @ev. -1 with ARL_E_TIMEOUT or ARL_E_CANCELLED leaves the
 * connection usable; any other failure breaks it.
 */
static int read_frame(struct arl_agent *a, int64_t deadline_ms, int cancel_fd,
                      struct arl_agent_event *ev, struct arl_err *err)
{
	struct iovec iov = {a->frame, ARL_PROTO_FRAME_MAX};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	struct pollfd pfd[2] = {{a->fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
	ssize_t n;

	for (;;) {
		int64_t left = deadline_ms ? deadline_ms - arl_now_ms() : -1;
		int r;

		if (deadline_ms && left <= 0)
			return arl_error(err, ARL_E_TIMEOUT, "sandbox agent: deadline passed");
		r = poll(pfd, 2, left < 0 ? -1 : left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno != EINTR) {
			arl_error_errno(err, errno, "sandbox agent: poll");
			return broken(a);
		}
		if (r > 0 && pfd[1].revents)
			return arl_error(err, ARL_E_CANCELLED, "cancelled");
		if (r > 0 && pfd[0].revents)
			break;
	}
	while ((n = recvmsg(a->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0 && errno != ECONNRESET) {
		arl_error_errno(err, errno, "cannot read from the sandbox agent");
		return broken(a);
	}
	if (n <= 0) {
		arl_error(err, ARL_E_BACKEND,
		          "sandbox agent closed the connection (the sandbox ended)");
		return broken(a);
	}
	/* MSG_CTRUNC: it tried to pass fds, which the kernel closed since we gave no room. */
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		arl_error(err, ARL_E_PROTO, "sandbox agent sent a frame over %d bytes or with fds",
		          ARL_PROTO_FRAME_MAX);
		return broken(a);
	}
	a->frame[n] = '\0';
	if (arl_agent_decode(a->frame, (size_t)n, ev, err) < 0)
		return broken(a);
	if (ev->kind == ARL_AGENT_ERROR && !ev->id)
		return agent_failed(a, ev, err);
	return 0;
}

int arl_agent_open(struct arl_agent **out, int fd, int64_t deadline_ms, struct arl_err *err)
{
	struct arl_agent *a = arl_xcalloc(1, sizeof(*a));
	struct arl_agent_event ev;

	a->fd = fd;
	if (read_frame(a, deadline_ms, -1, &ev, err) < 0) {
		arl_err_prefix(err, "starting the sandbox");
		goto fail;
	}
	if (ev.kind != ARL_AGENT_HELLO) {
		arl_error(err, ARL_E_PROTO, "sandbox agent did not start with HELLO");
		goto fail;
	}
	if (ev.version != ARL_PROTO_VERSION) {
		arl_error(err, ARL_E_PROTO,
		          "sandbox agent speaks protocol %u, this arl-batch protocol %d (install "
		          "arl-batch and arl-batch-agent together)",
		          ev.version, ARL_PROTO_VERSION);
		goto fail;
	}
	a->pid = ev.pid;
	*out = a;
	return 0;
fail:
	arl_agent_free(a);
	return -1;
}

void arl_agent_free(struct arl_agent *a)
{
	if (!a)
		return;
	close(a->fd);
	free(a);
}

uint32_t arl_agent_pid(const struct arl_agent *a)
{
	return a->pid;
}

static int send_frame(struct arl_agent *a, unsigned type, unsigned flags, uint32_t id,
                      const void *p1, size_t n1, const void *p2, size_t n2, struct arl_err *err)
{
	unsigned char hdr[ARL_PROTO_HEADER];
	struct iovec iov[3] = {{hdr, sizeof(hdr)}, {(void *)p1, n1}, {(void *)p2, n2}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};

	arl_proto_put_header(hdr, type, flags, id);
	while (sendmsg(a->fd, &m, MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			arl_error(err, ARL_E_BACKEND,
			          "sandbox agent closed the connection (the sandbox ended)");
		else
			arl_error_errno(err, errno, "cannot write to the sandbox agent");
		return broken(a);
	}
	return 0;
}

/* Checks that a new request may start, and names it. */
static int begin(struct arl_agent *a, enum request kind, uint32_t *id, struct arl_err *err)
{
	if (a->broken)
		return arl_error(err, ARL_E_BACKEND, "sandbox agent connection is broken");
	if (a->busy_kind != REQ_NONE)
		return arl_error(err, ARL_E_INVALID,
		                 "sandbox agent: request %u still outstanding (one at a time)",
		                 a->busy_id);
	if (++a->last_id == 0)
		a->last_id = 1;
	a->busy_id = *id = a->last_id;
	a->busy_kind = kind;
	return 0;
}

static int add_string(struct arl_buf *b, const char *s)
{
	return arl_buf_add(b, s, strlen(s) + 1);
}

int arl_agent_exec(struct arl_agent *a, char *const argv[], char *const envp[], const char *workdir,
                   uint32_t *id, struct arl_err *err)
{
	struct arl_buf p = ARL_BUF_INIT;
	unsigned char counts[8];
	size_t argc = 0, envc = 0, off = 0;
	uint32_t rid = 0; /* set by begin(); -O3 cannot see that through its early returns */
	int ret = -1, rc;

	while (argv[argc])
		argc++;
	while (envp[envc])
		envc++;
	if (!argc)
		return arl_error(err, ARL_E_INVALID, "sandbox agent: empty command");
	p.max = ARL_PROTO_EXEC_MAX;
	arl_proto_put_u32(counts, (uint32_t)argc);
	arl_proto_put_u32(counts + 4, (uint32_t)envc);
	rc = arl_buf_add(&p, counts, sizeof(counts)) | add_string(&p, workdir);
	for (size_t i = 0; i < argc; i++)
		rc |= add_string(&p, argv[i]);
	for (size_t i = 0; i < envc; i++)
		rc |= add_string(&p, envp[i]);
	if (rc < 0) {
		arl_error(err, ARL_E_LIMIT,
		          "command '%s': its arguments, environment and workDir exceed %u MiB",
		          argv[0], ARL_PROTO_EXEC_MAX >> 20);
		goto out;
	}
	if (begin(a, REQ_EXEC, &rid, err) < 0)
		goto out;
	do {
		size_t n = p.len - off < ARL_PROTO_DATA_MAX ? p.len - off : ARL_PROTO_DATA_MAX;
		unsigned flags = off + n < p.len ? ARL_PROTO_MORE : 0;

		if (send_frame(a, ARL_PROTO_EXEC, flags, rid, p.p + off, n, NULL, 0, err) < 0)
			goto out;
		off += n;
	} while (off < p.len);
	*id = rid;
	ret = 0;
out:
	arl_buf_release(&p);
	return ret;
}

int arl_agent_signal(struct arl_agent *a, uint32_t id, int sig, struct arl_err *err)
{
	unsigned char p[4];

	if (a->broken)
		return arl_error(err, ARL_E_BACKEND, "sandbox agent connection is broken");
	if (sig < 1 || sig > 64)
		return arl_error(err, ARL_E_INVALID, "sandbox agent: no signal %d", sig);
	if (a->busy_kind != REQ_EXEC || a->busy_id != id)
		return 0; /* ended already (or never ran): nothing left to signal */
	arl_proto_put_u32(p, (uint32_t)sig);
	return send_frame(a, ARL_PROTO_SIGNAL, 0, id, p, sizeof(p), NULL, 0, err);
}

int arl_agent_write(struct arl_agent *a, const char *path, unsigned mode, const void *data,
                    size_t len, uint32_t *id, struct arl_err *err)
{
	const char *d = data;
	unsigned char m[4];
	uint32_t rid = 0; /* set by begin(); -O3 cannot see that through its early returns */

	if (path[0] != '/' || strlen(path) + 1 > ARL_PROTO_DATA_MAX - sizeof(m) || mode & ~0777u)
		return arl_error(
		    err, ARL_E_INVALID,
		    "sandbox agent: cannot write '%s': not an absolute path of at most "
		    "%d bytes, or mode %o",
		    path, ARL_PROTO_DATA_MAX - 5, mode);
	if (begin(a, REQ_WRITE, &rid, err) < 0)
		return -1;
	arl_proto_put_u32(m, mode);
	if (send_frame(a, ARL_PROTO_WRITE, 0, rid, m, sizeof(m), path, strlen(path) + 1, err) < 0)
		return -1;
	for (size_t off = 0; off < len;) {
		size_t n = len - off < ARL_PROTO_DATA_MAX ? len - off : ARL_PROTO_DATA_MAX;

		if (send_frame(a, ARL_PROTO_WRITE_DATA, 0, rid, d + off, n, NULL, 0, err) < 0)
			return -1;
		off += n;
	}
	if (send_frame(a, ARL_PROTO_WRITE_END, 0, rid, NULL, 0, NULL, 0, err) < 0)
		return -1;
	*id = rid;
	return 0;
}

int arl_agent_next(struct arl_agent *a, int64_t deadline_ms, int cancel_fd,
                   struct arl_agent_event *ev, struct arl_err *err)
{
	bool fits;

	if (a->broken)
		return arl_error(err, ARL_E_BACKEND, "sandbox agent connection is broken");
	if (a->busy_kind == REQ_NONE)
		return arl_error(err, ARL_E_INVALID, "sandbox agent: no request outstanding");
	if (read_frame(a, deadline_ms, cancel_fd, ev, err) < 0)
		return -1;
	if (ev->id != a->busy_id) {
		arl_error(err, ARL_E_PROTO, "sandbox agent answered request %u, expected %u",
		          ev->id, a->busy_id);
		return broken(a);
	}
	switch (ev->kind) {
	case ARL_AGENT_STDOUT:
	case ARL_AGENT_STDERR:
	case ARL_AGENT_EXIT:
		fits = a->busy_kind == REQ_EXEC;
		break;
	case ARL_AGENT_OK:
		fits = a->busy_kind == REQ_WRITE;
		break;
	case ARL_AGENT_ERROR:
		fits = true;
		break;
	default:
		fits = false;
	}
	if (!fits) {
		arl_error(err, ARL_E_PROTO, "sandbox agent sent a frame request %u cannot have",
		          ev->id);
		return broken(a);
	}
	if (ev->kind == ARL_AGENT_EXIT || ev->kind == ARL_AGENT_OK || ev->kind == ARL_AGENT_ERROR)
		a->busy_kind = REQ_NONE;
	return 0;
}
