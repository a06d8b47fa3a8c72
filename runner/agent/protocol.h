/*
 * The sandbox agent's wire protocol, shared by the agent (agent_main.c, a static program that
 * runs inside the sandbox) and the runner's client (local/agent_client.c). This folder
 * includes nothing of the rest of runner/: the agent links only libc.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET socketpair. Every message is one frame, so the kernel
 * keeps the boundaries (no partial frames to reassemble, no length prefix to trust), a frame
 * larger than the reader's buffer is reported (MSG_TRUNC) instead of being read as two, and
 * the peer's close reads as EOF. A message cannot exceed the socket's send buffer (about
 * 200 KiB by default), so frames are at most ARL_PROTO_FRAME_MAX and longer requests are split:
 * EXEC carries ARL_PROTO_MORE on all but its last frame, WRITE streams WRITE_DATA frames.
 *
 * Frame: an 8-byte header (type, flags, two zero bytes, request id; little endian) and a
 * payload whose layout the type fixes:
 *   runner -> agent
 *     EXEC        u32 argc, u32 envc, then workDir, argv[0..argc), env[0..envc), each NUL-ended
 *     SIGNAL      u32 signal: sent to the step's process group
 *     WRITE       u32 mode, path NUL-ended: opens the file (creating parents)
 *     WRITE_DATA  bytes appended to the file WRITE opened under the same id
 *     WRITE_END   empty: closes it; the agent answers OK or ERROR
 *   agent -> runner
 *     HELLO       u32 protocol version, u32 the agent's pid (1 in its own PID namespace); id 0
 *     STDOUT      bytes, as the step wrote them (no line framing)
 *     STDERR      bytes
 *     EXIT        u32 how (0 exited, 1 killed by a signal), u32 exit status or signal
 *     OK          empty: a WRITE succeeded
 *     ERROR       u32 errno, message text (no NUL): the request failed before a step ran, or a
 *                 WRITE failed; with id 0 the agent itself failed and exits
 * The runner has at most one EXEC or WRITE outstanding at a time (SIGNAL may be sent while an
 * EXEC runs): then neither side can block sending while the other does.
 */
#ifndef ARL_AGENT_PROTOCOL_H
#define ARL_AGENT_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define ARL_PROTO_VERSION   1
#define ARL_PROTO_HEADER    8
#define ARL_PROTO_FRAME_MAX 65536 /* header included */
#define ARL_PROTO_DATA_MAX  (ARL_PROTO_FRAME_MAX - ARL_PROTO_HEADER)
/* An EXEC's whole payload (argv, env, workDir), its frames joined; beyond ARG_MAX anyway. */
#define ARL_PROTO_EXEC_MAX (16u << 20)
#define ARL_PROTO_TEXT_MAX 1024 /* an ERROR's message */

/* Header flags. */
#define ARL_PROTO_MORE 0x01 /* EXEC only: the payload continues in the next frame */

enum arl_proto_type {
	ARL_PROTO_EXEC = 1,
	ARL_PROTO_SIGNAL = 2,
	ARL_PROTO_WRITE = 3,
	ARL_PROTO_WRITE_DATA = 4,
	ARL_PROTO_WRITE_END = 5,
	ARL_PROTO_HELLO = 16,
	ARL_PROTO_STDOUT = 17,
	ARL_PROTO_STDERR = 18,
	ARL_PROTO_EXIT = 19,
	ARL_PROTO_OK = 20,
	ARL_PROTO_ERROR = 21,
};

enum { ARL_PROTO_EXITED = 0, ARL_PROTO_SIGNALED = 1 };

/* A frame as read: @payload points into the caller's buffer. */
struct arl_proto_frame {
	unsigned type;
	unsigned flags;
	uint32_t id;
	const unsigned char *payload;
	size_t len;
};

void arl_proto_put_u32(unsigned char *p, uint32_t v);
uint32_t arl_proto_get_u32(const unsigned char *p);

/* Writes a header into the first ARL_PROTO_HEADER bytes of @p. */
void arl_proto_put_header(unsigned char *p, unsigned type, unsigned flags, uint32_t id);

/*
 * Splits the @len bytes of @buf into header and payload. Returns 0, or -1 with *@why (static
 * text) when the frame is shorter than a header, longer than ARL_PROTO_FRAME_MAX, or has a
 * reserved bit set. Types are the caller's to check: each side accepts different ones.
 */
int arl_proto_parse(const void *buf, size_t len, struct arl_proto_frame *f, const char **why);

/*
 * Counts the NUL-ended strings filling @len bytes of @p exactly; -1 when the last one has no
 * NUL (or @len is 0). Used on EXEC payloads, whose strings are then walked with strlen.
 */
long arl_proto_count_strings(const unsigned char *p, size_t len);

/* Name of a frame type for messages ("EXEC", "STDOUT"), or NULL when unknown. */
const char *arl_proto_type_name(unsigned type);

#endif
