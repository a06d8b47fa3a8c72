#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

int arl_buf_add(struct arl_buf *b, const void *data, size_t n)
{
	if (b->max && b->len + n > b->max)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = arl_xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int arl_buf_addstr(struct arl_buf *b, const char *s)
{
	return arl_buf_add(b, s, strlen(s));
}

int arl_buf_addf(struct arl_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	int n;
	int ret;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return arl_buf_add(b, small, (size_t)n);
	char *big = arl_xmalloc((size_t)n + 1);

	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ret = arl_buf_add(b, big, (size_t)n);
	free(big);
	return ret;
}

void arl_buf_reset(struct arl_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void arl_buf_release(struct arl_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *arl_buf_detach(struct arl_buf *b, size_t *len)
{
	/* Detached strings live long (job fields): give back the doubling slack. */
	char *p = b->p ? arl_xrealloc(b->p, b->len + 1) : arl_xstrdup("");

	if (len)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

int arl_buf_read_file(struct arl_buf *b, const char *path, size_t max, struct arl_err *err)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret = -1;
	size_t saved = b->max;

	if (fd < 0)
		return arl_error_errno(err, errno, "cannot open '%s'", path);
	b->max = max;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			arl_error_errno(err, errno, "cannot read '%s'", path);
			goto out;
		}
		if (n == 0)
			break;
		if (arl_buf_add(b, chunk, (size_t)n) < 0) {
			arl_error(err, ARL_E_LIMIT, "'%s' is larger than the limit of %zu bytes",
			          path, max);
			goto out;
		}
	}
	if (!b->p)
		arl_buf_add(b, "", 0);
	ret = 0;
out:
	b->max = saved;
	close(fd);
	return ret;
}
