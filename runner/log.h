/*
 * The one writer of stderr. Messages, usage text and diagnostics go through here; only the
 * progress bar draws on its own, and while it draws it takes the output over with a sink
 * (git's set_error_routine), so a line from a worker never lands in the middle of the bar.
 *
 * Thread-safety: every function may be called from any thread. Each message goes out whole:
 * to the sink when one is set, else in one write() to fd 2. Lock order: the log's own mutex,
 * then whatever the sink takes; a sink must not call arl_log_*() itself.
 */
#ifndef ARL_LOG_H
#define ARL_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* Every message starts with it; step output the runner writes itself spells it too. */
#define ARL_LOG_PREFIX "arl-batch: "

/*
 * "arl-batch: MSG\n" (a newline is added when missing). The message is escaped for the
 * terminal (arl_term_escape, newlines kept): it may quote file names and server replies.
 */
void arl_log_error(const char *fmt, ...) ARL_PRINTF(1, 2);
/* Warnings and news (a sandbox kept, a window shrunk) have the same form; a later -q tells. */
void arl_log_warn(const char *fmt, ...) ARL_PRINTF(1, 2);
void arl_log_info(const char *fmt, ...) ARL_PRINTF(1, 2);
/* A command's message: "arl-batch CMD: MSG\n"; @cmd NULL is arl_log_error(). */
void arl_log_cmd_error(const char *cmd, const char *fmt, ...) ARL_PRINTF(2, 3);
void arl_log_verror(const char *cmd, const char *fmt, va_list ap) ARL_PRINTF(2, 0);
/* @err's message in arl_log_cmd_error()'s form; "unknown error" when it has none. */
void arl_log_err(const char *cmd, const struct arl_err *err);

/*
 * Last words before abort() (out of memory): "arl-batch: MSG\n" straight to fd 2, taking no
 * lock and skipping the sink, whose lock the dying thread may hold. Not escaped.
 */
void arl_log_fatal(const char *fmt, ...) ARL_PRINTF(1, 2);

/* Pre-formatted text (whole lines, escaped by the caller where it must be), as is. */
void arl_log_write(const char *text, size_t len);
void arl_log_puts(const char *text);

/*
 * For printers that take a FILE * (usage text, caret diagnostics): what is written to the
 * stream arl_log_begin() returns (never NULL) goes out as one blob at arl_log_end(), which
 * closes it:  struct arl_log_blob b; usage(arl_log_begin(&b)); arl_log_end(&b);
 */
struct arl_log_blob {
	FILE *f;
	char *p;
	size_t len;
};
FILE *arl_log_begin(struct arl_log_blob *b);
void arl_log_end(struct arl_log_blob *b);

/* The descriptor behind it all (2), for the progress bar, which draws there itself. */
int arl_log_fd(void);

/*
 * Where messages go instead of fd 2: @fn gets each message whole (@text ends with '\n', is
 * not NUL-terminated). NULL restores fd 2. Once arl_log_set_sink() returns, the sink it
 * replaced is not running and will not be called again.
 */
typedef void arl_log_sink_fn(void *arg, const char *text, size_t len);
void arl_log_set_sink(arl_log_sink_fn *fn, void *arg);

#endif
