/*
 * The row mapper: result columns found by name once per statement, then copied into a
 * struct at the offsets its column table gives.
 */
#include "store/store_rows.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"
#include "store/store_internal.h"
#include "util.h"
#include "banned.h"

/* How much of a query's SQL an error shows: enough to recognise it on one line. */
#define QUERY_SHOWN 60

static int col_error(sqlite3_stmt *st, const char *name, const char *what, struct arl_err *err)
{
	const char *sql = sqlite3_sql(st);
	size_t len = 0;

	if (!sql)
		sql = "";
	while (sql[len] && sql[len] != '\n' && len < QUERY_SHOWN)
		len++;
	return arl_error(err, ARL_E_DB, "column '%s' %s query '%.*s%s'", name, what, (int)len, sql,
	                 sql[len] ? "..." : "");
}

int arl_rows_bind(sqlite3_stmt *st, const struct arl_col *cols, size_t n, int *idx,
                  struct arl_err *err)
{
	int ncols = sqlite3_column_count(st);

	for (size_t i = 0; i < n; i++) {
		idx[i] = -1;
		for (int c = 0; c < ncols; c++) {
			const char *name = sqlite3_column_name(st, c);

			if (!name || strcmp(name, cols[i].name) != 0)
				continue;
			if (idx[i] >= 0)
				return col_error(st, cols[i].name, "is ambiguous in", err);
			idx[i] = c;
		}
		if (idx[i] < 0)
			return col_error(st, cols[i].name, "missing from", err);
	}
	return 0;
}

static enum arl_state state_of(const char *s)
{
	for (int i = ARL_STATE_PENDING; i <= ARL_STATE_CANCELLED; i++)
		if (!strcmp(s, arl_state_name((enum arl_state)i)))
			return (enum arl_state)i;
	return ARL_STATE_PENDING;
}

static enum arl_class class_of(const char *s)
{
	enum arl_class cls = ARL_CLASS_NONE;

	if (!s || arl_class_parse(s, &cls) < 0)
		return ARL_CLASS_NONE;
	return cls;
}

static char *text_copy(sqlite3_stmt *st, int c)
{
	const unsigned char *p = sqlite3_column_text(st, c);

	/* column_bytes after column_text: the length of the text just converted */
	return p ? arl_xstrndup((const char *)p, (size_t)sqlite3_column_bytes(st, c)) : NULL;
}

static void read_row(sqlite3_stmt *st, const struct arl_col *cols, size_t n, const int *idx,
                     void *out, bool copy)
{
	char *base = out;

	for (size_t i = 0; i < n; i++) {
		void *field = base + cols[i].off;
		bool *null = cols[i].null_off == ARL_COL_NO_NULL
		                 ? NULL
		                 : (bool *)(void *)(base + cols[i].null_off);
		int c = idx[i];
		const char *text;

		/* Each sqlite3_column_*() call costs (100 000 rows of 25 columns): the type is
		 * asked only of a number with a NULL flag; text is NULL for NULL. */
		switch (cols[i].type) {
		case ARL_COL_INT64:
			*(int64_t *)field = sqlite3_column_int64(st, c);
			break;
		case ARL_COL_INT:
			*(int *)field = sqlite3_column_int(st, c);
			break;
		case ARL_COL_DOUBLE:
			*(double *)field = sqlite3_column_double(st, c);
			break;
		default:
			text = (const char *)sqlite3_column_text(st, c);
			if (null)
				*null = !text;
			if (cols[i].type == ARL_COL_TEXT && copy)
				*(char **)field = text ? text_copy(st, c) : NULL;
			else if (cols[i].type == ARL_COL_TEXT) /* borrowed: the pointer as is */
				memcpy(field, &text, sizeof(text));
			else if (cols[i].type == ARL_COL_STATE)
				*(enum arl_state *)field =
				    text ? state_of(text) : ARL_STATE_PENDING;
			else
				*(enum arl_class *)field = class_of(text);
			continue;
		}
		if (null)
			*null = sqlite3_column_type(st, c) == SQLITE_NULL;
	}
}

void arl_rows_read(sqlite3_stmt *st, const struct arl_col *cols, size_t n, const int *idx,
                   void *out)
{
	read_row(st, cols, n, idx, out, true);
}

void arl_rows_read_borrowed(sqlite3_stmt *st, const struct arl_col *cols, size_t n, const int *idx,
                            void *out)
{
	read_row(st, cols, n, idx, out, false);
}

void arl_rows_free(const struct arl_col *cols, size_t n, void *out)
{
	char *base = out;

	for (size_t i = 0; i < n; i++) {
		if (cols[i].type != ARL_COL_TEXT)
			continue;
		char **field = (char **)(void *)(base + cols[i].off);

		free(*field);
		*field = NULL;
	}
}

int arl_rows_attach(struct arl_rows_query *q, sqlite3_stmt *st, const struct arl_col *cols,
                    size_t n, bool borrowed, struct arl_err *err)
{
	q->st = st;
	q->cols = cols;
	q->n = n;
	q->borrowed = borrowed;
	q->owns = false;
	if (n > ARL_ROWS_MAX_COLS) /* the tables are checked at compile time (ARL_COLS_FIT) */
		return arl_error(err, ARL_E_DB, "a query reads more than %d columns",
		                 ARL_ROWS_MAX_COLS);
	return arl_rows_bind(st, cols, n, q->idx, err);
}

int arl_rows_open(struct arl_rows_query *q, struct arl_store *s, const char *sql,
                  const struct arl_col *cols, size_t n, struct arl_err *err)
{
	sqlite3_stmt *st = NULL;

	q->st = NULL;
	if (arl_store_prepare(s, sql, &st, NULL, err) < 0)
		return -1;
	if (arl_rows_attach(q, st, cols, n, false, err) < 0) {
		sqlite3_finalize(st);
		q->st = NULL;
		return -1;
	}
	q->owns = true;
	return 0;
}

void arl_rows_get(const struct arl_rows_query *q, void *row)
{
	read_row(q->st, q->cols, q->n, q->idx, row, !q->borrowed);
}

int arl_rows_next(struct arl_store *s, struct arl_rows_query *q, void *row, struct arl_err *err)
{
	int rc = arl_store_step(s, q->st, err);

	if (rc == 1)
		arl_rows_get(q, row);
	return rc;
}

int arl_rows_each(struct arl_store *s, struct arl_rows_query *q, void *row, arl_rows_call_fn call,
                  const void *fn, void *arg, struct arl_err *err)
{
	int rc;

	while ((rc = arl_rows_next(s, q, row, err)) == 1) {
		rc = call(fn, arg, row, err);
		if (!q->borrowed)
			arl_rows_free(q->cols, q->n, row);
		if (rc < 0)
			break;
	}
	arl_rows_close(q);
	return rc < 0 ? -1 : 0;
}

int arl_rows_one(struct arl_store *s, struct arl_rows_query *q, void *row, struct arl_err *err)
{
	int rc = arl_rows_next(s, q, row, err);

	arl_rows_close(q);
	return rc;
}

void arl_rows_close(struct arl_rows_query *q)
{
	if (!q->st)
		return;
	if (q->owns) {
		sqlite3_finalize(q->st);
		q->st = NULL;
	} else {
		sqlite3_reset(q->st);
		sqlite3_clear_bindings(q->st);
	}
}
