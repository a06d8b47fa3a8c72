/*
 * libFuzzer target: frames a sandbox agent taken over by a step could send the runner. The
 * input is a sequence of frames, each after a 2-byte little-endian length. Each goes through
 * arl_agent_decode() alone, then all of them, as one agent's messages on a SOCK_SEQPACKET
 * socketpair, through a client (local/agent_client.c) that opens the connection and keeps
 * starting requests (EXEC and WRITE in turn) and reading their events until it refuses one.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/protocol.h"
#include "local/agent_client.h"
#include "err.h"

#define REQUESTS_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Discards what the client sent, so its socket buffer never fills. */
static void drain(int fd)
{
	static unsigned char sink[ARL_PROTO_FRAME_MAX];

	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

static void run_client(int fd, int agent_end)
{
	static char *const argv[] = {"sh", "-c", "true", NULL};
	static char *const envp[] = {"PATH=/bin", NULL};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_agent_event ev;
	struct arl_agent *a;
	uint32_t id;

	if (arl_agent_open(&a, fd, 0, &err) < 0)
		return;
	for (int i = 0; i < REQUESTS_MAX; i++) {
		int rc = i % 2 ? arl_agent_write(a, "/workspace/f", 0644, "x", 1, &id, &err)
		               : arl_agent_exec(a, argv, envp, "/workspace", &id, &err);

		drain(agent_end);
		if (rc < 0)
			break;
		do {
			if (arl_agent_next(a, 0, -1, &ev, &err) < 0)
				goto out;
			if (ev.kind == ARL_AGENT_STDOUT && arl_agent_signal(a, id, 9, &err) < 0)
				goto out;
			drain(agent_end);
		} while (ev.kind == ARL_AGENT_STDOUT || ev.kind == ARL_AGENT_STDERR);
	}
out:
	arl_agent_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arl_err err = ARL_ERR_INIT;
	struct arl_agent_event ev;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		memset(&err, 0, sizeof(err));
		(void)arl_agent_decode(data, len, &ev, &err);
		/* A full socket only ends the input early. */
		if (len && send(sv[1], data, len, MSG_DONTWAIT) < 0)
			break;
		data += len;
		size -= len;
	}
	shutdown(sv[1], SHUT_WR); /* then EOF: the client must end, never hang */
	run_client(sv[0], sv[1]);
	close(sv[1]);
	return 0;
}
