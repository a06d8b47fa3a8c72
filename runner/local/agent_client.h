/*
 * The runner's side of the sandbox agent (runner/agent/, protocol in agent/protocol.h): start
 * a step or a file write in a sandbox, read what comes back, signal a step. Everything the
 * agent sends is untrusted (a step runs with the agent's uid): frames are bounded, their ids
 * and types checked, and a malformed frame, a frame the request cannot have, or EOF is an
 * infra error of the sandbox, after which the connection refuses every call.
 *
 * One request (EXEC or WRITE) is outstanding at a time; arl_agent_next() is called until its
 * last event (EXIT, OK or ERROR), even past a capture limit: the agent waits while its frames
 * go unread, and so would a SIGNAL. A connection is used by one thread at a time.
 */
#ifndef ARL_LOCAL_AGENT_CLIENT_H
#define ARL_LOCAL_AGENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct arl_agent;

enum arl_agent_kind {
	ARL_AGENT_HELLO,  /* the agent is ready (only ever seen by arl_agent_decode()) */
	ARL_AGENT_STDOUT, /* @data/@len: bytes of the step's stdout, as written */
	ARL_AGENT_STDERR,
	ARL_AGENT_EXIT, /* the step ended: @exit_code, @signal */
	ARL_AGENT_OK,   /* the file was written */
	ARL_AGENT_ERROR, /* the request failed before a step ran, or the write failed: @errnum, @data */
};

struct arl_agent_event {
	enum arl_agent_kind kind;
	uint32_t id;
	const char *data; /* borrowed until the next call; NUL-terminated (may hold NULs) */
	size_t len;
	int exit_code;         /* EXIT: the exit status, or 128 + @signal */
	int signal;            /* EXIT: the signal that ended the step, 0 when it exited */
	int errnum;            /* ERROR: the agent's errno (untrusted: for display) */
	uint32_t version, pid; /* HELLO */
};

/*
 * The agent program beside this executable (/proc/self/exe's directory), where `install`
 * puts it. Returns 0 with *@out malloc()ed, or -1 naming the path it looked for.
 */
int arl_agent_path(char **out, struct arl_err *err);

/*
 * Decodes one frame the agent sent (@len bytes) into @ev, borrowing @buf. Checks only what one
 * frame shows: the header, a type the agent may send and its payload's shape. -1 with a
 * message (ARL_E_PROTO) on anything else.
 */
int arl_agent_decode(const void *buf, size_t len, struct arl_agent_event *ev, struct arl_err *err);

/*
 * Takes ownership of @fd (the runner's end of a SOCK_SEQPACKET socketpair whose other end the
 * agent serves), even on failure, and waits for the agent's HELLO until @deadline_ms
 * (arl_now_ms() time; 0: none). An agent that failed to start reports why.
 */
int arl_agent_open(struct arl_agent **out, int fd, int64_t deadline_ms, struct arl_err *err);
/* Closes the connection: the agent exits, and with it the sandbox's processes. NULL: no-op. */
void arl_agent_free(struct arl_agent *a);
/* The agent's pid as it sees itself (1 when it is the first process of a PID namespace). */
uint32_t arl_agent_pid(const struct arl_agent *a);

/*
 * Starts @argv (argv[0] searched in @envp's PATH) with exactly the environment @envp, in
 * @workdir, in its own process group. *@id names it in the events that follow.
 */
int arl_agent_exec(struct arl_agent *a, char *const argv[], char *const envp[], const char *workdir,
                   uint32_t *id, struct arl_err *err);

/*
 * Sends @sig to the process group of step @id, and has whatever is left in that group killed
 * when the step's first process ends. A step that already ended is ignored.
 */
int arl_agent_signal(struct arl_agent *a, uint32_t id, int sig, struct arl_err *err);

/*
 * Writes @len bytes to absolute @path in the sandbox as its steps see it, with permissions
 * @mode, creating parent directories; a symlink as the last component is refused. Its outcome
 * is an OK or ERROR event.
 */
int arl_agent_write(struct arl_agent *a, const char *path, unsigned mode, const void *data,
                    size_t len, uint32_t *id, struct arl_err *err);

/*
 * The next event of the outstanding request, waiting until @deadline_ms (0: none) or until
 * @cancel_fd (-1: none) is readable: then -1 with ARL_E_TIMEOUT or ARL_E_CANCELLED, and the
 * request is still outstanding (signal it and keep reading). Any other -1 is fatal to the
 * connection. The event's data is valid until the next call.
 */
int arl_agent_next(struct arl_agent *a, int64_t deadline_ms, int cancel_fd,
                   struct arl_agent_event *ev, struct arl_err *err);

#endif
