/*
 * DESIGN: one mutex (lock order: log_mu, then the sink's own locks) guards the sink and is
 * held while a message goes out, so messages never interleave and a sink being replaced is
 * never running. Messages are formatted before the lock is taken, into a stack buffer that
 * grows on the heap only for long ones; out of memory they are cut, never lost.
 * arl_log_fatal() takes no lock at all: util's out-of-memory abort may come from a thread
 * that holds the sink's lock.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static arl_log_sink_fn *log_sink;
static void *log_sink_arg;

static void write_fd2(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(STDERR_FILENO, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere left to say it */
		s += w;
		n -= (size_t)w;
	}
}

void arl_log_write(const char *text, size_t len)
{
	if (!len)
		return;
	pthread_mutex_lock(&log_mu);
	if (log_sink)
		log_sink(log_sink_arg, text, len);
	else
		write_fd2(text, len);
	pthread_mutex_unlock(&log_mu);
}

void arl_log_puts(const char *text)
{
	arl_log_write(text, strlen(text));
}

int arl_log_fd(void)
{
	return STDERR_FILENO;
}

void arl_log_set_sink(arl_log_sink_fn *fn, void *arg)
{
	pthread_mutex_lock(&log_mu);
	log_sink = fn;
	log_sink_arg = fn ? arg : NULL;
	pthread_mutex_unlock(&log_mu);
}

/* "arl-batch[ CMD]: " + the escaped message + "\n" into @stack, or the heap when longer. */
static void emit(const char *cmd, const char *fmt, va_list ap) ARL_PRINTF(2, 0);
static void emit(const char *cmd, const char *fmt, va_list ap)
{
	char raw[1024], stack[4096];
	char *msg = raw, *out = stack, *heap_raw = NULL, *heap_out = NULL;
	size_t cap = sizeof(stack), o;
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(raw, sizeof(raw), fmt, aq);
	va_end(aq);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(raw) && (heap_raw = malloc((size_t)n + 1))) {
		vsnprintf(heap_raw, (size_t)n + 1, fmt, ap);
		msg = heap_raw;
	}
	/* An escaped byte takes up to 4; the prefix, the command and the newline the rest. */
	o = strlen(msg) * 4 + (cmd ? strlen(cmd) : 0) + 32;
	if (o > cap && (heap_out = malloc(o))) {
		out = heap_out;
		cap = o;
	}
	if (cmd)
		o = (size_t)snprintf(out, cap, "arl-batch %.*s: ", (int)(cap / 2), cmd);
	else
		o = (size_t)snprintf(out, cap, "%s", ARL_LOG_PREFIX);
	if (o >= cap)
		o = cap - 1;
	o += arl_term_escape(out + o, cap - o - 1, msg, true);
	if (o == 0 || out[o - 1] != '\n')
		out[o++] = '\n';
	arl_log_write(out, o);
	free(heap_raw);
	free(heap_out);
}

void arl_log_verror(const char *cmd, const char *fmt, va_list ap)
{
	emit(cmd, fmt, ap);
}

void arl_log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(NULL, fmt, ap);
	va_end(ap);
}

void arl_log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(NULL, fmt, ap);
	va_end(ap);
}

void arl_log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(NULL, fmt, ap);
	va_end(ap);
}

void arl_log_cmd_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(cmd, fmt, ap);
	va_end(ap);
}

void arl_log_err(const char *cmd, const struct arl_err *err)
{
	arl_log_cmd_error(cmd, "%s", err && err->msg[0] ? err->msg : "unknown error");
}

void arl_log_fatal(const char *fmt, ...)
{
	char buf[512];
	size_t n = sizeof(ARL_LOG_PREFIX) - 1;
	va_list ap;
	int m;

	memcpy(buf, ARL_LOG_PREFIX, n);
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m < sizeof(buf) - n - 1 ? (size_t)m : sizeof(buf) - n - 2;
	buf[n++] = '\n';
	write_fd2(buf, n);
}

FILE *arl_log_begin(struct arl_log_blob *b)
{
	b->p = NULL;
	b->len = 0;
	if (!(b->f = open_memstream(&b->p, &b->len)))
		b->f = stderr; /* out of memory: straight out rather than lost */
	return b->f;
}

void arl_log_end(struct arl_log_blob *b)
{
	if (b->f == stderr) {
		fflush(stderr);
		return;
	}
	if (fclose(b->f) == 0)
		arl_log_write(b->p, b->len);
	free(b->p);
	b->f = NULL;
	b->p = NULL;
	b->len = 0;
}
