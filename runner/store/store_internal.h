/*
 * What the store's own modules share (runner/store/ only: tools/check_layers.sh refuses it
 * elsewhere, as it refuses <sqlite3.h>): the connection, one-off statements, and SQL
 * fragments. Everything outside reads through the typed readers (store_jobs.h, store_runs.h,
 * store_diff.h, store_report.h, store_query.h, store_prune.h).
 */
#ifndef ARL_STORE_INTERNAL_H
#define ARL_STORE_INTERNAL_H

#include <sqlite3.h>

#include "err.h"

struct arl_store;

/*
 * SQL for the read commands: how many Skipped jobs of the run in the enclosing query's
 * `runs` row stand for a result of @state, i.e. count as one (docs/database.md, 'States and
 * failure classes').
 */
#define ARL_SQL_RUN_CARRIED(state)                                                                 \
	"(SELECT count(*) FROM jobs k JOIN jobs f ON f.id = k.skipped_from"                        \
	" WHERE k.run_id = runs.id AND k.state = 'Skipped' AND f.state = '" state "')"

/*
 * For the store's readers. The connection is borrowed and stays the store's.
 * arl_store_prepare() compiles the first statement of @sql (*tail: the text after it; @tail
 * may be NULL); *out is NULL when @sql holds only blanks and comments. A statement a
 * READONLY store refuses fails with ARL_E_USAGE, any other error with ARL_E_DB. The caller
 * finalizes *out. arl_store_step() returns 1 for a row, 0 when done, -1 on error.
 */
sqlite3 *arl_store_db(struct arl_store *s);
int arl_store_prepare(struct arl_store *s, const char *sql, sqlite3_stmt **out, const char **tail,
                      struct arl_err *err);
int arl_store_step(struct arl_store *s, sqlite3_stmt *st, struct arl_err *err);

#endif
