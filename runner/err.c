#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

/*
 * How many bytes at @s (@len > 0) a terminal may get as they are: 0 when s[0] must be escaped
 * (a C0 control but tab and, with @lines, newline; DEL; a C1 control, which some terminals
 * obey in UTF-8 too; a byte of invalid UTF-8, which 8-bit terminals may read as C1).
 */
static size_t term_safe(const unsigned char *s, size_t len, bool lines)
{
	unsigned c = s[0];
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

	if (c < 0x80)
		return (c >= 0x20 && c != 0x7f) || c == '\t' || (lines && c == '\n');
	if (n > len || !arl_utf8_valid((const char *)s, n) || (c == 0xc2 && s[1] < 0xa0))
		return 0;
	return n;
}

void arl_term_write(FILE *out, const char *s, size_t len, bool lines)
{
	const unsigned char *p = (const unsigned char *)s;

	while (len) {
		size_t run = 0, n;

		while (run < len && (n = term_safe(p + run, len - run, lines)))
			run += n;
		fwrite(p, 1, run, out);
		p += run;
		len -= run;
		if (len) {
			fprintf(out, "\\x%02x", *p);
			p++;
			len--;
		}
	}
}

size_t arl_term_escape(char *dst, size_t cap, const char *s, bool lines)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), o = 0, n;

	if (!cap)
		return 0;
	for (; len; p += n, len -= n) {
		if ((n = term_safe(p, len, lines))) {
			if (o + n >= cap)
				break;
			memcpy(dst + o, p, n);
			o += n;
		} else {
			if (o + 4 >= cap)
				break;
			snprintf(dst + o, 5, "\\x%02x", *p);
			o += 4;
			n = 1;
		}
	}
	dst[o] = '\0';
	return o;
}

char *arl_term_str(const char *s)
{
	size_t cap = 4 * strlen(s) + 1;
	char *d = arl_xmalloc(cap);

	arl_term_escape(d, cap, s, false);
	return d;
}

static int verror(struct arl_err *err, enum arl_errc code, struct arl_loc loc, const char *fmt,
                  va_list ap) ARL_PRINTF(4, 0);
static int verror(struct arl_err *err, enum arl_errc code, struct arl_loc loc, const char *fmt,
                  va_list ap)
{
	char raw[sizeof(err->msg)];

	if (!err || err->code != ARL_E_OK)
		return -1;
	err->code = code;
	err->loc = loc;
	/* Messages quote step output, server replies and file names: none may drive a terminal. */
	vsnprintf(raw, sizeof(raw), fmt, ap);
	arl_term_escape(err->msg, sizeof(err->msg), raw, true);
	return -1;
}

int arl_error(struct arl_err *err, enum arl_errc code, const char *fmt, ...)
{
	va_list ap;
	struct arl_loc none = {0};

	va_start(ap, fmt);
	verror(err, code, none, fmt, ap);
	va_end(ap);
	return -1;
}

int arl_error_at(struct arl_err *err, enum arl_errc code, struct arl_loc loc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(err, code, loc, fmt, ap);
	va_end(ap);
	return -1;
}

int arl_error_errno(struct arl_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	char msg[400], ebuf[128];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return arl_error(err, errnum == ENOMEM ? ARL_E_NOMEM : ARL_E_SYS, "%s: %s", msg,
	                 arl_strerror(errnum, ebuf, sizeof(ebuf)));
}

void arl_err_prefix(struct arl_err *err, const char *fmt, ...)
{
	va_list ap;
	char pre[256];
	size_t np, nm, room = sizeof(err->msg) - 1;

	if (!err || err->code == ARL_E_OK)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre) - 2, fmt, ap);
	va_end(ap);
	memcpy(pre + strlen(pre), ": ", 3);
	np = strlen(pre);
	nm = strlen(err->msg);
	if (np + nm > room)
		nm = room - np;
	memmove(err->msg + np, err->msg, nm);
	memcpy(err->msg, pre, np);
	err->msg[np + nm] = '\0';
}

void arl_err_clear(struct arl_err *err)
{
	memset(err, 0, sizeof(*err));
}

const char *arl_strerror(int errnum, char *buf, size_t len)
{
	/* GNU strerror_r may return a static string instead of filling buf. */
	const char *s = strerror_r(errnum, buf, len);

	if (s != buf)
		snprintf(buf, len, "%s", s);
	return buf;
}

void arl_diags_vadd(struct arl_diags *d, enum arl_severity sev, struct arl_loc loc, unsigned width,
                    const char *fmt, va_list ap)
{
	char raw[1024], msg[1024];
	struct arl_diag *g;

	vsnprintf(raw, sizeof(raw), fmt, ap);
	arl_term_escape(msg, sizeof(msg), raw, false);
	for (size_t i = 0; i < d->n; i++) {
		g = &d->v[i];
		/* The same node seen through defaults or a second dataset record. */
		if (g->line == loc.line && g->col == loc.col && !strcmp(g->msg, msg) &&
		    !strcmp(g->path, loc.path ? loc.path : ""))
			return;
	}
	if (sev == ARL_SEV_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->n >= ARL_DIAGS_MAX) {
		d->dropped++;
		return;
	}
	if (!d->v)
		d->v = arl_xcalloc(ARL_DIAGS_MAX, sizeof(*d->v));
	g = &d->v[d->n];
	g->sev = sev;
	g->path = arl_xstrdup(loc.path ? loc.path : "");
	g->line = loc.line;
	g->col = loc.col;
	g->width = width;
	g->msg = arl_xstrdup(msg);
	g->seq = d->n++;
}

void arl_diags_add(struct arl_diags *d, enum arl_severity sev, struct arl_loc loc, unsigned width,
                   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	arl_diags_vadd(d, sev, loc, width, fmt, ap);
	va_end(ap);
}

static int diag_cmp(const void *a, const void *b)
{
	const struct arl_diag *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Finds line @line (1-based) of @src; returns its start and sets *len. */
static const char *source_line(const char *src, size_t n, unsigned line, size_t *len)
{
	const char *p = src, *end = src + n, *nl;

	for (unsigned l = 1; l < line; l++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return NULL;
		p = nl + 1;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	*len = (size_t)((nl ? nl : end) - p);
	if (*len && p[*len - 1] == '\r')
		(*len)--;
	return p;
}

static void print_snippet(FILE *out, const struct arl_diag *g, const char *src, size_t n)
{
	size_t len, from = 0, shown;
	const char *line = source_line(src, n, g->line, &len);
	unsigned width = g->width ? g->width : 1, col;

	if (!line || g->col == 0)
		return;
	/* A long line is shown as a window around the column, so the caret stays visible. */
	if (g->col > 120 && g->col - 1 < len)
		from = g->col - 60;
	shown = len - from > 160 ? 160 : len - from;
	col = g->col - (unsigned)from;
	fprintf(out, "%5u | %s", g->line, from ? "..." : "");
	/* Control bytes (NUL, ESC, ...) of a hostile file never reach the terminal. */
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)line[from + i];

		fputc(c == '\t' ? ' ' : c < 0x20 || c == 0x7f ? '?' : c, out);
	}
	fprintf(out, "%s\n      | %s", from + shown < len ? "..." : "", from ? "   " : "");
	if (col - 1 > shown) {
		fputc('\n', out);
		return;
	}
	for (unsigned i = 1; i < col; i++)
		fputc(' ', out);
	fputc('^', out);
	for (unsigned i = 1; i < width && col + i - 1 < shown; i++)
		fputc('~', out);
	fputc('\n', out);
}

void arl_diags_print(struct arl_diags *d, FILE *out, const char *src_path, const char *src,
                     size_t len)
{
	if (d->n)
		qsort(d->v, d->n, sizeof(*d->v), diag_cmp);
	for (size_t i = 0; i < d->n; i++) {
		const struct arl_diag *g = &d->v[i];
		const char *sev = g->sev == ARL_SEV_ERROR ? "error" : "warning";

		if (g->line)
			fprintf(out, "%s:%u:%u: %s: %s\n", g->path, g->line, g->col, sev, g->msg);
		else
			fprintf(out, "%s: %s: %s\n", g->path, sev, g->msg);
		if (src && src_path && g->line && !strcmp(g->path, src_path))
			print_snippet(out, g, src, len);
	}
	if (d->dropped)
		fprintf(out, "(%zu more diagnostics not shown)\n", d->dropped);
}

void arl_diags_release(struct arl_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].path);
		free(d->v[i].msg);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}
