/* The user's SQL (store_query.h). */
#include "store/store_query.h"

#include <sqlite3.h>
#include <stdlib.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "util.h"
#include "banned.h"

struct arl_query {
	struct arl_store *store;
	sqlite3_stmt *st;
	size_t ncols;
	char **names;
};

int arl_query_prepare(struct arl_store *s, const char *sql, struct arl_query **out,
                      struct arl_err *err)
{
	sqlite3_stmt *st = NULL, *more = NULL;
	const char *tail = NULL;
	struct arl_query *q;
	struct arl_err second = {0};

	if (arl_store_prepare(s, sql, &st, &tail, err) < 0)
		return -1;
	if (!st)
		return arl_error(err, ARL_E_USAGE, "the SQL holds no statement");
	/* Anything but blanks and comments after the first statement is a second one; its own
	 * prepare error is only a sign of that, so it goes to a local error. */
	if (tail && *tail && (arl_store_prepare(s, tail, &more, NULL, &second) < 0 || more)) {
		sqlite3_finalize(more);
		sqlite3_finalize(st);
		arl_err_clear(&second);
		return arl_error(err, ARL_E_USAGE, "give one SQL statement at a time");
	}
	q = arl_xcalloc(1, sizeof(*q));
	q->store = s;
	q->st = st;
	q->ncols = (size_t)sqlite3_column_count(st);
	q->names = arl_xcalloc(q->ncols + 1, sizeof(*q->names));
	/* Copied: the first step may re-prepare the statement, which frees the names. */
	for (size_t i = 0; i < q->ncols; i++)
		q->names[i] = arl_xstrdup(sqlite3_column_name(st, (int)i));
	*out = q;
	return 0;
}

void arl_query_free(struct arl_query *q)
{
	if (!q)
		return;
	sqlite3_finalize(q->st);
	for (size_t i = 0; i < q->ncols; i++)
		free(q->names[i]);
	free(q->names);
	free(q);
}

size_t arl_query_columns(const struct arl_query *q)
{
	return q->ncols;
}

const char *arl_query_column_name(const struct arl_query *q, size_t i)
{
	return q->names[i];
}

int arl_query_next(struct arl_query *q, struct arl_err *err)
{
	return arl_store_step(q->store, q->st, err);
}

void arl_query_value(struct arl_query *q, size_t i, struct arl_value *out)
{
	int col = (int)i;

	*out = (struct arl_value){ARL_VALUE_NULL, 0, 0, NULL, 0};
	/* The type first: reading a number as text converts the value, not its type. */
	switch (sqlite3_column_type(q->st, col)) {
	case SQLITE_NULL:
		return;
	case SQLITE_BLOB:
		out->type = ARL_VALUE_BLOB;
		out->p = sqlite3_column_blob(q->st, col);
		out->len = (size_t)sqlite3_column_bytes(q->st, col);
		return;
	case SQLITE_INTEGER:
		out->type = ARL_VALUE_INT;
		out->i = sqlite3_column_int64(q->st, col);
		break;
	case SQLITE_FLOAT:
		out->type = ARL_VALUE_REAL;
		out->d = sqlite3_column_double(q->st, col);
		break;
	default:
		out->type = ARL_VALUE_TEXT;
		break;
	}
	out->p = (const char *)sqlite3_column_text(q->st, col);
	out->len = (size_t)sqlite3_column_bytes(q->st, col);
}
