/*
 * The stream the agent's collecting child writes (agent/collect.h), parsed into a sink
 * (backend.h) as it arrives in chunks. It is untrusted: record sizes are bounded, a record in
 * the wrong place or a bad pattern index breaks the stream (the file open ends with "the
 * collector's output is malformed" and the rest is ignored), and a path must have no NUL.
 */
#ifndef ARL_LOCAL_COLLECT_STREAM_H
#define ARL_LOCAL_COLLECT_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"

struct arl_collect_stream { /* as the functions below leave it: read none of it */
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

void arl_collect_stream_init(struct arl_collect_stream *st, const struct arl_artifact_sink *sink,
                             size_t nspecs);
/* @n more bytes of the stream, in any split. */
void arl_collect_stream_feed(struct arl_collect_stream *st, const char *p, size_t n);
/* The collector was stopped: the file open ends with @why, and what comes after is ignored. */
void arl_collect_stream_cut(struct arl_collect_stream *st, const char *why);
/* The stream ended: 0 when it ended between files and was well formed, else -1. */
int arl_collect_stream_finish(struct arl_collect_stream *st);
/* Ends a file still open with @why and frees what @st holds. */
void arl_collect_stream_release(struct arl_collect_stream *st, const char *why);

#endif
