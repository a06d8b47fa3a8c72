/* Framing shared by the sandbox agent and the runner's client (see protocol.h). */
#include "agent/protocol.h"

#include <string.h>

void arl_proto_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

uint32_t arl_proto_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void arl_proto_put_header(unsigned char *p, unsigned type, unsigned flags, uint32_t id)
{
	p[0] = (unsigned char)type;
	p[1] = (unsigned char)flags;
	p[2] = 0;
	p[3] = 0;
	arl_proto_put_u32(p + 4, id);
}

int arl_proto_parse(const void *buf, size_t len, struct arl_proto_frame *f, const char **why)
{
	const unsigned char *p = buf;

	if (len < ARL_PROTO_HEADER) {
		*why = "frame shorter than its header";
		return -1;
	}
	if (len > ARL_PROTO_FRAME_MAX) {
		*why = "frame larger than the protocol allows";
		return -1;
	}
	if (p[1] & ~ARL_PROTO_MORE || p[2] || p[3]) {
		*why = "reserved header bits set";
		return -1;
	}
	f->type = p[0];
	f->flags = p[1];
	f->id = arl_proto_get_u32(p + 4);
	f->payload = p + ARL_PROTO_HEADER;
	f->len = len - ARL_PROTO_HEADER;
	return 0;
}

long arl_proto_count_strings(const unsigned char *p, size_t len)
{
	long n = 0;

	if (!len || p[len - 1])
		return -1;
	for (const unsigned char *end = p + len; p < end; p++)
		n += !*p;
	return n;
}

const char *arl_proto_type_name(unsigned type)
{
	static const char *const names[] = {
	    [ARL_PROTO_EXEC] = "EXEC",           [ARL_PROTO_SIGNAL] = "SIGNAL",
	    [ARL_PROTO_WRITE] = "WRITE",         [ARL_PROTO_WRITE_DATA] = "WRITE_DATA",
	    [ARL_PROTO_WRITE_END] = "WRITE_END", [ARL_PROTO_HELLO] = "HELLO",
	    [ARL_PROTO_STDOUT] = "STDOUT",       [ARL_PROTO_STDERR] = "STDERR",
	    [ARL_PROTO_EXIT] = "EXIT",           [ARL_PROTO_OK] = "OK",
	    [ARL_PROTO_ERROR] = "ERROR",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}
