/*
 * Reading result rows into structs by column name (after FreeBSD pkg's column_mapping).
 * Internal to runner/store/: the store's typed readers use it; nothing outside includes it.
 *
 * A reader describes its struct once, as a table of columns:
 *
 *	static const struct arl_col job_cols[] = {
 *		ARL_COL(struct arl_job_view, id, ARL_COL_INT64),
 *		ARL_COL_N(struct arl_job_view, exit_code, ARL_COL_INT, exit_null),
 *		ARL_COL_AS(struct arl_job_view, cls, "error_class", ARL_COL_CLASS),
 *	};
 *
 * binds it to a prepared statement once (arl_rows_bind() finds each name among the result
 * columns), then fills the struct from every row (arl_rows_read()). A column renamed or
 * dropped from the query fails at bind time, naming the column, instead of shifting reads.
 */
#ifndef ARL_STORE_ROWS_H
#define ARL_STORE_ROWS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum arl_col_type {
	ARL_COL_INT64,  /* int64_t; NULL reads 0 */
	ARL_COL_INT,    /* int; NULL reads 0 */
	ARL_COL_DOUBLE, /* double; NULL reads 0 */
	ARL_COL_TEXT,   /* char *, an owned copy (arl_rows_free()); NULL stays NULL */
	ARL_COL_STATE,  /* enum arl_state from its name; NULL or unknown reads ARL_STATE_PENDING */
	ARL_COL_CLASS,  /* enum arl_class from its name; NULL or unknown reads ARL_CLASS_NONE */
};

/* null_off of a column whose NULL needs no flag of its own. */
#define ARL_COL_NO_NULL ((size_t)-1)

struct arl_col {
	const char *name; /* the result column's name (its AS alias, if any) */
	enum arl_col_type type;
	size_t off; /* offset of the field in the struct */
	size_t
	    null_off; /* offset of a bool set to whether the column is NULL, or ARL_COL_NO_NULL */
};

/* A field read from the result column of the same name. */
#define ARL_COL(T, field, type)                                                                    \
	{                                                                                          \
#field, (type), offsetof(T, field), ARL_COL_NO_NULL                                \
	}
/* The same, with @nullflag (a bool field) telling whether the column was NULL. */
#define ARL_COL_N(T, field, type, nullflag)                                                        \
	{                                                                                          \
#field, (type), offsetof(T, field), offsetof(T, nullflag)                          \
	}
/* A field read from the result column @colname. */
#define ARL_COL_AS(T, field, colname, type)                                                        \
	{                                                                                          \
		(colname), (type), offsetof(T, field), ARL_COL_NO_NULL                             \
	}

/*
 * Resolves each of @cols (@n of them) among the result columns of @st and writes their
 * indexes to idx[0..n-1] (caller-allocated). A name that is missing, or that names two
 * result columns, fails with ARL_E_DB: "column 'x' missing from query '...'" (the query
 * shown by the start of its SQL). Call once per prepared statement.
 */
int arl_rows_bind(sqlite3_stmt *st, const struct arl_col *cols, size_t n, int *idx,
                  struct arl_err *err);

/* Fills @out from the current row of @st (after a step that returned a row). */
void arl_rows_read(sqlite3_stmt *st, const struct arl_col *cols, size_t n, const int *idx,
                   void *out);

/*
 * The same without copies: TEXT fields point into @st, valid until it is stepped, reset or
 * finalized. For readers that hand each row to a callback; never arl_rows_free() such a row.
 */
void arl_rows_read_borrowed(sqlite3_stmt *st, const struct arl_col *cols, size_t n, const int *idx,
                            void *out);

/* Frees the TEXT fields of @out and sets them to NULL; @out may then be read into again. */
void arl_rows_free(const struct arl_col *cols, size_t n, void *out);

/* ---- a statement with its column table: how every reader of the store runs its SQL ---- */

#define ARL_NCOLS(cols)   (sizeof(cols) / sizeof((cols)[0]))
#define ARL_ROWS_MAX_COLS 32 /* the widest column table (a job's, 29) */
#define ARL_COLS_FIT(cols)                                                                         \
	_Static_assert(ARL_NCOLS(cols) <= ARL_ROWS_MAX_COLS, #cols " fits struct arl_rows_query")

struct arl_store;

struct arl_rows_query {
	sqlite3_stmt *st;
	const struct arl_col *cols;
	size_t n;
	bool borrowed; /* rows' TEXT point into st, valid until the next step (no copy per row) */
	bool owns;     /* arl_rows_close() finalizes st */
	int idx[ARL_ROWS_MAX_COLS];
};

/*
 * Binds @cols (@n of them) to @st, a statement the caller keeps (a cached one: reset, never
 * finalized, by arl_rows_close()). @borrowed: rows borrow their text from @st.
 */
int arl_rows_attach(struct arl_rows_query *q, sqlite3_stmt *st, const struct arl_col *cols,
                    size_t n, bool borrowed, struct arl_err *err);
/* Compiles @sql on @s and binds @cols; the query owns the statement. Rows are copies. */
int arl_rows_open(struct arl_rows_query *q, struct arl_store *s, const char *sql,
                  const struct arl_col *cols, size_t n, struct arl_err *err);
/* The current row (after a step that returned one) into @row, for a caller that steps. */
void arl_rows_get(const struct arl_rows_query *q, void *row);
/* The next row into @row: 1, 0 when done, -1 on error. A copied row is the caller's to free
 * (arl_rows_free()) before it is read into again. */
int arl_rows_next(struct arl_store *s, struct arl_rows_query *q, void *row, struct arl_err *err);

/* Calls the typed callback *@fn (a pointer to it) with @row: see ARL_ROWS_CALLER. */
typedef int (*arl_rows_call_fn)(const void *fn, void *arg, const void *row, struct arl_err *err);
#define ARL_ROWS_CALLER(name, fn_type, row_type)                                                   \
	static int name(const void *fn, void *arg, const void *row, struct arl_err *err)           \
	{                                                                                          \
		return (*(const fn_type *)fn)(arg, (const row_type *)row, err);                    \
	}

/* Hands every row, read into @row, to @call until it returns < 0 (a copied row is freed after
 * each call), then closes @q: 0 or -1. */
int arl_rows_each(struct arl_store *s, struct arl_rows_query *q, void *row, arl_rows_call_fn call,
                  const void *fn, void *arg, struct arl_err *err);
/* The first row into @row (1; a copied row is the caller's to free), or 0; then closes @q. */
int arl_rows_one(struct arl_store *s, struct arl_rows_query *q, void *row, struct arl_err *err);
/* Finalizes an owned statement, resets a kept one (no bound value or read transaction held). */
void arl_rows_close(struct arl_rows_query *q);

#endif
