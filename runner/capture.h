/*
 * One captured output stream, capped: the first half of the cap kept in a linear buffer, the
 * last half in a ring, and what fell between counted and marked (ARL_OUTPUT_ELIDED), so memory
 * stays within the cap however much a program prints. Used by spawn and the local sandbox agent.
 */
#ifndef ARL_CAPTURE_H
#define ARL_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

/* One captured stream: the first head_max bytes as they came, the last ring_max in a ring. */
struct arl_capture {
	int fd; /* read end of the pipe; -1 once at EOF */
	char *head;
	size_t head_len, head_alloc, head_max;
	char *ring;
	size_t ring_start, ring_len, ring_alloc, ring_max;
	uint64_t total; /* everything read, kept or not */
};

/* Empty, with cap @max (bytes); fd -1. */
void arl_capture_init(struct arl_capture *c, size_t max);
void arl_capture_add(struct arl_capture *c, const char *p, size_t n);
/* Moves the captured bytes into @out as head + marker + tail and frees the buffers. */
void arl_capture_finish(struct arl_capture *c, struct arl_output *out);
/* Frees the buffers and closes fd; the capture is empty again. */
void arl_capture_release(struct arl_capture *c);

#endif
