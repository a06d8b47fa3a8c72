/*
 * Output helpers shared by the read commands (runs, results, show, query): aligned tables
 * that fit the terminal, CSV fields, colours, Go-style durations and option errors. Only the
 * main thread prints, so nothing here locks.
 */
#ifndef ARL_STORE_VIEW_H
#define ARL_STORE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "err.h"
#include "store/store_jobs.h"
#include "store/store_query.h"

#define ARL_VIEW_BOLD   "\033[1m"
#define ARL_VIEW_DIM    "\033[2m"
#define ARL_VIEW_RED    "\033[31m"
#define ARL_VIEW_GREEN  "\033[32m"
#define ARL_VIEW_YELLOW "\033[33m"
#define ARL_VIEW_CYAN   "\033[36m"
#define ARL_VIEW_RESET  "\033[0m"

struct arl_view_col {
	const char *title;
	bool right;  /* right-aligned (numbers) */
	bool shrink; /* may be cut (with an ellipsis) to fit the terminal */
};

/* Rows are copied in; tabs and newlines in cells print as spaces, other controls as \xNN. */
struct arl_view_table {
	const struct arl_view_col *cols; /* borrowed */
	size_t ncols;
	char **cells;        /* nrows * ncols, owned */
	const char **colors; /* nrows * ncols SGR strings or NULL, static */
	size_t nrows, cap;
};
#define ARL_VIEW_TABLE_INIT(cols, n)                                                               \
	{                                                                                          \
		(cols), (n), NULL, NULL, 0, 0                                                      \
	}

/* Adds a row of ncols cells (NULL prints as "-"); @colors may be NULL. */
void arl_view_table_add(struct arl_view_table *t, const char *const *cells,
                        const char *const *colors);
/*
 * Prints the header and rows, two spaces between columns and no trailing blanks. When @width
 * is non-zero and the table is wider, the widest shrinkable columns are cut first, down to
 * their title's width.
 */
void arl_view_table_print(const struct arl_view_table *t, FILE *out, unsigned width, bool color);
void arl_view_table_release(struct arl_view_table *t);

/* The terminal's width when @fd is one (else $COLUMNS, else 80); 0 when @fd is not a tty. */
unsigned arl_view_width(int fd);

/*
 * Writes one RFC 4180 field, quoted when it must be, then ',' or (when @last) CRLF. A field a
 * spreadsheet would take for a formula (= + - @ tab CR first, not a plain number) gets a
 * leading '.
 */
void arl_view_csv(FILE *out, const char *s, size_t len, bool last);

/* Go's time.Duration.String() of @ms: "0s", "250ms", "1.234s", "2m3.5s", "1h0m0s". */
const char *arl_view_go_duration(int64_t ms, char *buf, size_t len);
/* A stored RFC 3339 time shortened for a table ("2026-01-02 03:04:05"); NULL gives "-". */
const char *arl_view_time(const char *rfc3339, char buf[24]);
/* The colour of a job state or run status, or NULL. */
const char *arl_view_state_color(const char *state);

/*
 * JSON. arl_view_json_value() adds @v to @obj as @name: integers and reals as numbers, text
 * as a string, NULL as null, a BLOB as a hex string. arl_view_json_int() adds an integer or,
 * when @null, null. arl_view_json_raw() adds stored JSON text parsed (null when NULL; the
 * text itself when it does not parse). arl_view_json_str() adds a string or, for NULL, null.
 */
void arl_view_json_value(cJSON *obj, const char *name, const struct arl_value *v);
void arl_view_json_int(cJSON *obj, const char *name, bool null, int64_t v);
void arl_view_json_raw(cJSON *obj, const char *name, const char *json);
void arl_view_json_str(cJSON *obj, const char *name, const char *s);

/*
 * Streams a JSON array of objects: each element is printed (indented) as soon as it is
 * complete, so a run of 10 000 jobs is never one tree in memory.
 */
struct arl_view_json_array {
	FILE *out;
	size_t n;
};
/* Prints and frees @item (takes ownership). */
void arl_view_json_item(struct arl_view_json_array *a, cJSON *item);
/* Closes the array ("[]" when empty). */
void arl_view_json_end(struct arl_view_json_array *a);

/*
 * The output of a job's last attempt as an ARL Task reports it: the concatenated stdout and
 * stderr of its main steps (callbacks, which the SDK runs as separate Tasks, are left out).
 */
struct arl_view_output {
	struct arl_buf out, err;
	bool out_trunc, err_trunc; /* a step's stored output was itself truncated */
};
#define ARL_VIEW_OUTPUT_INIT                                                                       \
	{                                                                                          \
		ARL_BUF_INIT, ARL_BUF_INIT, false, false                                           \
	}
void arl_view_output_add(struct arl_view_output *o, const struct arl_step_view *st);
/* arl_view_output_add() as an arl_step_fn for arl_job_last_steps(): @arg is the output. */
int arl_view_output_step(void *arg, const struct arl_step_view *st, struct arl_err *err);
void arl_view_output_release(struct arl_view_output *o);

/* Prints "arl-batch: MESSAGE" on stderr (arl_log_err). */
void arl_view_error(const struct arl_err *err);

/* A reason's detail is cut to this many columns (an ellipsis marks the cut). */
#define ARL_VIEW_REASON_COLS 200
/*
 * Why a job did not succeed, in one line: "STEP: CLASS: DETAIL". DETAIL is the last non-empty
 * line of the failing step's stderr (@err_tail, its end) for class failed, else the job's
 * @error (a timeout's, an infra failure's message) without its "step 'STEP'" prefix. @step
 * NULL: no step failed (a sandbox that never came). NULL when @cls is NULL. Owned.
 */
char *arl_view_reason(const char *step, const char *cls, const char *error, const char *err_tail);

#endif
