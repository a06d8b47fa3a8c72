/* Errors, source locations, validation diagnostics and the exit codes (docs/cli.md). */
#ifndef ARL_ERR_H
#define ARL_ERR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define ARL_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Exit codes of `run` (docs/cli.md, 'Exit codes of run'); other commands use 0, 1, 2 and 3. */
enum {
	ARL_EXIT_OK = 0,
	ARL_EXIT_FAILED = 1,     /* a job failed after its retries */
	ARL_EXIT_USAGE = 2,      /* usage error or invalid job file: nothing ran */
	ARL_EXIT_INCOMPLETE = 3, /* infra failures, or the run could not be carried out */
	ARL_EXIT_HALTED = 4,     /* --deadline, --fail-fast or --max-failures */
	ARL_EXIT_LOCKED = 75,    /* EX_TEMPFAIL: another run of the same name holds the lock */
	ARL_EXIT_SIGINT = 130,
	ARL_EXIT_SIGTERM = 143,
};

enum arl_errc {
	ARL_E_OK = 0,
	ARL_E_USAGE,
	ARL_E_IO,
	ARL_E_PARSE,
	ARL_E_INVALID,
	ARL_E_LIMIT,
	ARL_E_NOMEM,
	ARL_E_SYS,
	ARL_E_DB,
	ARL_E_BACKEND,
	ARL_E_PROTO,
	ARL_E_CANCELLED, /* the run's cancel fd fired: not a failure of the job or the backend */
	ARL_E_TIMEOUT,   /* a deadline the caller gave passed (e.g. getting a sandbox) */
};

/* 1-based; 0 means unknown. @path is borrowed. */
struct arl_loc {
	const char *path;
	unsigned line, col;
};

/* The first error wins: later arl_error() calls keep the stored message. */
struct arl_err {
	enum arl_errc code;
	struct arl_loc loc;
	char msg[512];
};
#define ARL_ERR_INIT                                                                               \
	{                                                                                          \
		0                                                                                  \
	}

/* Records the error unless one is already set; always returns -1. */
int arl_error(struct arl_err *err, enum arl_errc code, const char *fmt, ...) ARL_PRINTF(3, 4);
int arl_error_at(struct arl_err *err, enum arl_errc code, struct arl_loc loc, const char *fmt, ...)
    ARL_PRINTF(4, 5);
/* Records errno's text after the message: "...: No such file or directory". */
int arl_error_errno(struct arl_err *err, int errnum, const char *fmt, ...) ARL_PRINTF(3, 4);
/* Prepends "context: " to a stored message. */
void arl_err_prefix(struct arl_err *err, const char *fmt, ...) ARL_PRINTF(2, 3);
void arl_err_clear(struct arl_err *err);

/* Thread-safe strerror into a caller buffer; returns @buf. */
const char *arl_strerror(int errnum, char *buf, size_t len);

/*
 * Text for a terminal (error messages and every human-readable output): control characters
 * (but tab, and newline when @lines), C1 controls and bytes of invalid UTF-8 become a visible
 * \xNN, so stored step output cannot retitle the window, clear the screen or move the cursor.
 */
void arl_term_write(FILE *out, const char *s, size_t len, bool lines);
/* Into @dst (@cap bytes, NUL-terminated, cut at a whole unit); returns the length. */
size_t arl_term_escape(char *dst, size_t cap, const char *s, bool lines);
/* A malloc()ed escaped copy of @s (newlines escaped too). */
char *arl_term_str(const char *s);

/*
 * Validation diagnostics: collected (first ARL_DIAGS_MAX kept, identical ones once),
 * sorted by position and printed GNU-style with the source line and a caret.
 */
#define ARL_DIAGS_MAX 50

enum arl_severity { ARL_SEV_ERROR, ARL_SEV_WARNING };

struct arl_diag {
	enum arl_severity sev;
	char *path; /* owned */
	unsigned line, col, width;
	char *msg; /* owned */
	size_t seq;
};

struct arl_diags {
	struct arl_diag *v;
	size_t n;
	size_t errors, warnings; /* counted, including the ones not kept */
	size_t dropped;
};
#define ARL_DIAGS_INIT                                                                             \
	{                                                                                          \
		0                                                                                  \
	}

void arl_diags_add(struct arl_diags *d, enum arl_severity sev, struct arl_loc loc, unsigned width,
                   const char *fmt, ...) ARL_PRINTF(5, 6);
void arl_diags_vadd(struct arl_diags *d, enum arl_severity sev, struct arl_loc loc, unsigned width,
                    const char *fmt, va_list ap) ARL_PRINTF(5, 0);
/*
 * Prints all diagnostics to @out. @src/@len is the text of @src_path (may be NULL), used to show
 * the offending line under each diagnostic of that file.
 */
void arl_diags_print(struct arl_diags *d, FILE *out, const char *src_path, const char *src,
                     size_t len);
void arl_diags_release(struct arl_diags *d);

#endif
