/* A growable byte buffer with a hard size limit, for input we did not write. */
#ifndef ARL_BUF_H
#define ARL_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct arl_buf {
	char *p;    /* NUL-terminated when non-NULL */
	size_t len; /* bytes in use, excluding the NUL */
	size_t cap;
	size_t max; /* 0: unlimited */
};
#define ARL_BUF_INIT                                                                               \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}

/* Appends; returns -1 (without appending) when max would be exceeded. */
int arl_buf_add(struct arl_buf *b, const void *data, size_t n);
int arl_buf_addf(struct arl_buf *b, const char *fmt, ...) ARL_PRINTF(2, 3);
int arl_buf_addstr(struct arl_buf *b, const char *s);
void arl_buf_reset(struct arl_buf *b);
void arl_buf_release(struct arl_buf *b);
/* Returns the contents (never NULL) and leaves @b empty; the caller frees the result. */
char *arl_buf_detach(struct arl_buf *b, size_t *len);

/* Reads a whole file of at most @max bytes into @b; the error names the limit. */
int arl_buf_read_file(struct arl_buf *b, const char *path, size_t max, struct arl_err *err);

#endif
