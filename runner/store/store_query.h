/*
 * One SQL statement the user wrote (the `query` command), run over the store's connection:
 * a cursor that hands out the column names and each row's typed values. On a store opened
 * ARL_STORE_READONLY the authorizer refuses every statement that could write.
 */
#ifndef ARL_STORE_QUERY_H
#define ARL_STORE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct arl_store;
struct arl_query;

enum arl_value_type {
	ARL_VALUE_NULL,
	ARL_VALUE_INT,
	ARL_VALUE_REAL,
	ARL_VALUE_TEXT,
	ARL_VALUE_BLOB
};

/* A value of the current row, borrowed until the next arl_query_next() or arl_query_free(). */
struct arl_value {
	enum arl_value_type type;
	int64_t i; /* INT */
	double d;  /* REAL */
	/* TEXT, and SQLite's rendering of an INT or a REAL (NUL-terminated); BLOB: its bytes.
	 * NULL for NULL. */
	const char *p;
	size_t len;
};

/*
 * Compiles @sql, which must hold exactly one statement. Fails with ARL_E_USAGE for a
 * statement a READONLY store refuses ("read-only query: ..."), for SQL holding no statement
 * ("the SQL holds no statement") or more than one ("give one SQL statement at a time"), and
 * with ARL_E_DB for any other error (SQLite's message). *out: arl_query_free().
 */
int arl_query_prepare(struct arl_store *s, const char *sql, struct arl_query **out,
                      struct arl_err *err);
void arl_query_free(struct arl_query *q); /* NULL is a no-op */

size_t arl_query_columns(const struct arl_query *q);
/* Column @i's name (its AS alias, if any), borrowed from @q. */
const char *arl_query_column_name(const struct arl_query *q, size_t i);

/* Steps to the next row: 1, 0 when done, -1 on error (ARL_E_DB). */
int arl_query_next(struct arl_query *q, struct arl_err *err);
/* Column @i of the current row. */
void arl_query_value(struct arl_query *q, size_t i, struct arl_value *out);

#endif
