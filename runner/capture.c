/* A captured output stream: head and tail kept within a cap, the middle counted (see capture.h). */
#include "capture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Grows *p to hold @need bytes, doubling but never past @max (need <= max). */
static void grow_to(char **p, size_t *alloc, size_t need, size_t max)
{
	size_t n = *alloc ? *alloc : 4096;

	if (need <= *alloc)
		return;
	while (n < need)
		n = n > max / 2 ? max : n * 2;
	n = min_size(n, max);
	*p = arl_xrealloc(*p, n);
	*alloc = n;
}

void arl_capture_init(struct arl_capture *c, size_t max)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->head_max = max / 2;
	c->ring_max = max - c->head_max;
}

void arl_capture_add(struct arl_capture *c, const char *p, size_t n)
{
	size_t take, end, first;

	c->total += n;
	take = min_size(n, c->head_max - c->head_len);
	if (take) {
		grow_to(&c->head, &c->head_alloc, c->head_len + take, c->head_max);
		memcpy(c->head + c->head_len, p, take);
		c->head_len += take;
		p += take;
		n -= take;
	}
	if (!n)
		return;
	if (n > c->ring_max) {
		p += n - c->ring_max;
		n = c->ring_max;
	}
	/*
	 * The ring grows lazily so small outputs stay small. It can only wrap once it is fully
	 * allocated: until then ring_start is 0 and ring_len + n fits in what grow_to() gave us.
	 */
	grow_to(&c->ring, &c->ring_alloc, min_size(c->ring_len + n, c->ring_max), c->ring_max);
	end = (c->ring_start + c->ring_len) % c->ring_max;
	first = min_size(n, c->ring_max - end);
	memcpy(c->ring + end, p, first);
	memcpy(c->ring, p + first, n - first);
	if (c->ring_len + n > c->ring_max) {
		c->ring_start = (c->ring_start + c->ring_len + n - c->ring_max) % c->ring_max;
		c->ring_len = c->ring_max;
	} else {
		c->ring_len += n;
	}
}

/* Moves the captured bytes into @out as head + marker + tail and frees the capture. */
void arl_capture_finish(struct arl_capture *c, struct arl_output *out)
{
	char marker[80];
	size_t mlen = 0, len, first;
	uint64_t dropped = c->total - c->head_len - c->ring_len;
	char *d;

	if (dropped)
		mlen = (size_t)snprintf(marker, sizeof(marker), ARL_OUTPUT_ELIDED, dropped);
	len = c->head_len + mlen + c->ring_len;
	d = arl_xmalloc(len + 1);
	if (c->head_len)
		memcpy(d, c->head, c->head_len);
	memcpy(d + c->head_len, marker, mlen);
	if (c->ring_len) {
		first = min_size(c->ring_len, c->ring_max - c->ring_start);
		memcpy(d + c->head_len + mlen, c->ring + c->ring_start, first);
		memcpy(d + c->head_len + mlen + first, c->ring, c->ring_len - first);
	}
	d[len] = '\0';
	out->data = d;
	out->len = len;
	out->truncated = dropped != 0;
	free(c->head);
	free(c->ring);
	c->head = c->ring = NULL;
}

void arl_capture_release(struct arl_capture *c)
{
	free(c->head);
	free(c->ring);
	if (c->fd >= 0)
		close(c->fd);
	arl_capture_init(c, 0);
}
