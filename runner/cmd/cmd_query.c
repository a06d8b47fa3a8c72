/*
 * `arl-batch query SQL`: read-only SQL over the results database.
 *
 * The database is opened with SQLITE_OPEN_READONLY and an authorizer that admits only
 * statements that read (store.c), so a typo cannot damage the results and an ATTACH cannot
 * reach another file. One statement per call keeps the output one table.
 *
 * Exit: 0 printed, 1 the SQL failed (syntax, unknown table, runtime error), 2 usage,
 * including a statement that would write, 3 the database could not be opened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "store/store.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

#define SQL_MAX (1u << 20)

static const char *const synopsis[] = {"query [--db PATH] [--format table|csv|json] SQL|-", NULL};

static const char about[] =
    "Run one read-only SQL statement over the results database and print its rows. The\n"
    "words of SQL are joined with spaces; '-' reads the statement from standard input.\n"
    "Statements that write (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, ATTACH, pragmas\n"
    "that set a value, transactions) are refused. Tables: runs, jobs, attempts, steps,\n"
    "metrics (see schemas/results.sql).\n";

static const char epilog[] =
    "Exit status: 0 ok, 1 the SQL failed, 2 usage or a refused statement, 3 the database\n"
    "could not be opened.\n";

enum format { F_TABLE, F_CSV, F_JSON };

static const struct arl_opt_choice formats[] = {
    {"table", F_TABLE}, {"csv", F_CSV}, {"json", F_JSON}, {NULL, 0}};

/* Table and CSV text of a value; BLOBs as an SQL hex literal. *owned is freed by the caller. */
static const char *cell_text(sqlite3_stmt *st, int col, const char *null, char **owned)
{
	*owned = NULL;
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		return null;
	case SQLITE_BLOB: {
		const unsigned char *p = sqlite3_column_blob(st, col);
		size_t n = (size_t)sqlite3_column_bytes(st, col);
		char *hex = arl_xmalloc(n * 2 + 4);

		hex[0] = 'X';
		hex[1] = '\'';
		for (size_t i = 0; i < n; i++)
			snprintf(hex + 2 + 2 * i, 3, "%02x", p[i]);
		hex[2 + 2 * n] = '\'';
		hex[3 + 2 * n] = '\0';
		*owned = hex;
		return hex;
	}
	default:
		return (const char *)sqlite3_column_text(st, col);
	}
}

/* Joins the operands into one statement, or reads it from stdin for "-". */
static int read_sql(int argc, char **argv, struct arl_buf *sql, struct arl_err *err)
{
	if (argc == 1 && !strcmp(argv[0], "-"))
		return arl_buf_read_file(sql, "/dev/stdin", SQL_MAX, err);
	sql->max = SQL_MAX;
	for (int i = 0; i < argc; i++)
		if ((i && arl_buf_add(sql, " ", 1) < 0) || arl_buf_addstr(sql, argv[i]) < 0)
			return arl_error(err, ARL_E_LIMIT, "the SQL is longer than %u bytes",
			                 SQL_MAX);
	return 0;
}

static int print_rows(struct arl_store *store, sqlite3_stmt *st, enum format format,
                      struct arl_err *err)
{
	int ncols = sqlite3_column_count(st), rc;
	struct arl_view_col *cols = arl_xcalloc((size_t)ncols + 1, sizeof(*cols));
	bool *numeric = arl_xcalloc((size_t)ncols + 1, sizeof(*numeric));
	const char **cells = arl_xcalloc((size_t)ncols + 1, sizeof(*cells));
	char **owned = arl_xcalloc((size_t)ncols + 1, sizeof(*owned));
	char **names = arl_xcalloc((size_t)ncols + 1, sizeof(*names));
	struct arl_view_table table = ARL_VIEW_TABLE_INIT(cols, (size_t)ncols);
	struct arl_view_json_array arr = {stdout, 0};

	/* Copied: the first step may re-prepare the statement, which frees the names. */
	for (int i = 0; i < ncols; i++) {
		cols[i].title = names[i] = arl_xstrdup(sqlite3_column_name(st, i));
		cols[i].shrink = true;
		numeric[i] = true;
		if (format == F_CSV)
			arl_view_csv(stdout, cols[i].title, strlen(cols[i].title), i + 1 == ncols);
	}
	while ((rc = arl_store_step(store, st, err)) == 1) {
		if (format == F_JSON) {
			cJSON *row = cJSON_CreateObject();

			/* A repeated column name would make a JSON object with duplicate keys. */
			for (int i = 0; i < ncols; i++)
				if (!cJSON_GetObjectItemCaseSensitive(row, cols[i].title))
					arl_view_json_col(row, cols[i].title, st, i);
			arl_view_json_item(&arr, row);
			continue;
		}
		for (int i = 0; i < ncols; i++) {
			int type = sqlite3_column_type(st, i);

			cells[i] = cell_text(st, i, format == F_CSV ? NULL : "NULL", &owned[i]);
			if (type != SQLITE_INTEGER && type != SQLITE_FLOAT && type != SQLITE_NULL)
				numeric[i] = false;
			if (format == F_CSV)
				arl_view_csv(stdout, cells[i], cells[i] ? strlen(cells[i]) : 0,
				             i + 1 == ncols);
		}
		if (format == F_TABLE)
			arl_view_table_add(&table, cells, NULL);
		for (int i = 0; i < ncols; i++) {
			free(owned[i]);
			owned[i] = NULL;
		}
	}
	if (rc == 0 && format == F_JSON)
		arl_view_json_end(&arr);
	if (rc == 0 && format == F_TABLE && ncols) {
		/* Numbers align right, once every value of the column is known to be one. */
		for (int i = 0; i < ncols; i++)
			cols[i].right = numeric[i] && table.nrows;
		arl_view_table_print(&table, stdout, arl_view_width(STDOUT_FILENO),
		                     arl_cli_color(STDOUT_FILENO));
	}
	arl_view_table_release(&table);
	for (int i = 0; i < ncols; i++)
		free(names[i]);
	free(names);
	free(owned);
	free(cells);
	free(numeric);
	free(cols);
	return rc < 0 ? -1 : 0;
}

int cmd_query(int argc, char **argv)
{
	struct arl_err err = ARL_ERR_INIT;
	struct arl_buf sql = ARL_BUF_INIT;
	struct arl_store *store = NULL;
	sqlite3_stmt *st = NULL, *more = NULL;
	const char *db = NULL, *tail = NULL;
	int format = F_TABLE, nwords, ret = ARL_EXIT_USAGE;
	const struct arl_option opts[] = {
	    ARL_OPT_STRING(0, "db", &db, "PATH",
	                   "results database (default $ARL_BATCH_DB, else ./arl-batch.db)"),
	    ARL_OPT_CHOICE(0, "format", &format, formats,
	                   "table (default; NULL shows as NULL), csv (RFC 4180,\n"
	                   "with a header row; NULL is an empty field) or json (an\n"
	                   "array of objects)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {.name = "query",
	                                    .synopsis = synopsis,
	                                    .about = about,
	                                    .options = opts,
	                                    .epilog = epilog};

	if ((nwords = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (nwords == 0)
		return arl_options_error(&u, "no SQL given");
	if (read_sql(nwords, argv, &sql, &err) < 0)
		goto out;

	if (arl_store_open(&store, arl_cli_db_path(db), ARL_STORE_READONLY, &err) < 0) {
		ret = ARL_EXIT_INCOMPLETE;
		goto out;
	}
	if (arl_store_prepare(store, sql.p, &st, &tail, &err) < 0) {
		ret = err.code == ARL_E_USAGE ? ARL_EXIT_USAGE : ARL_EXIT_FAILED;
		goto out;
	}
	if (!st) {
		arl_error(&err, ARL_E_USAGE, "the SQL holds no statement");
		goto out;
	}
	/* Anything but blanks and comments after the first statement is a second one. */
	if (tail && *tail && (arl_store_prepare(store, tail, &more, NULL, &err) < 0 || more)) {
		arl_err_clear(&err);
		arl_error(&err, ARL_E_USAGE, "give one SQL statement at a time");
		goto out;
	}
	if (print_rows(store, st, (enum format)format, &err) < 0) {
		ret = ARL_EXIT_FAILED;
		goto out;
	}
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&err);
	sqlite3_finalize(more);
	sqlite3_finalize(st);
	arl_store_close(store);
	arl_buf_release(&sql);
	return ret;
}
