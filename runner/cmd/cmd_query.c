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
#include "store/store_query.h"
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
    "metrics (see schemas/results.sql). Give SQL that starts with '-' after --.\n";

static const char epilog[] =
    "Exit status: 0 ok, 1 the SQL failed, 2 usage or a refused statement, 3 the database\n"
    "could not be opened.\n";

enum format { F_TABLE, F_CSV, F_JSON };

static const struct arl_opt_choice formats[] = {
    {"table", F_TABLE}, {"csv", F_CSV}, {"json", F_JSON}, {NULL, 0}};

/* Table and CSV text of a value; BLOBs as an SQL hex literal. *owned is freed by the caller. */
static const char *cell_text(const struct arl_value *v, const char *null, char **owned)
{
	*owned = NULL;
	switch (v->type) {
	case ARL_VALUE_NULL:
		return null;
	case ARL_VALUE_BLOB: {
		const unsigned char *p = (const unsigned char *)v->p;
		char *hex = arl_xmalloc(v->len * 2 + 4);

		hex[0] = 'X';
		hex[1] = '\'';
		for (size_t i = 0; i < v->len; i++)
			snprintf(hex + 2 + 2 * i, 3, "%02x", p[i]);
		hex[2 + 2 * v->len] = '\'';
		hex[3 + 2 * v->len] = '\0';
		*owned = hex;
		return hex;
	}
	default:
		return v->p;
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

static int print_rows(struct arl_query *q, enum format format, struct arl_err *err)
{
	size_t ncols = arl_query_columns(q);
	struct arl_view_col *cols = arl_xcalloc(ncols + 1, sizeof(*cols));
	bool *numeric = arl_xcalloc(ncols + 1, sizeof(*numeric));
	const char **cells = arl_xcalloc(ncols + 1, sizeof(*cells));
	char **owned = arl_xcalloc(ncols + 1, sizeof(*owned));
	struct arl_view_table table = ARL_VIEW_TABLE_INIT(cols, ncols);
	struct arl_view_json_array arr = {stdout, 0};
	struct arl_value v;
	int rc;

	for (size_t i = 0; i < ncols; i++) {
		cols[i].title = arl_query_column_name(q, i);
		cols[i].shrink = true;
		numeric[i] = true;
		if (format == F_CSV)
			arl_view_csv(stdout, cols[i].title, strlen(cols[i].title), i + 1 == ncols);
	}
	while ((rc = arl_query_next(q, err)) == 1) {
		if (format == F_JSON) {
			cJSON *row = cJSON_CreateObject();

			/* A repeated column name would make a JSON object with duplicate keys. */
			for (size_t i = 0; i < ncols; i++) {
				if (cJSON_GetObjectItemCaseSensitive(row, cols[i].title))
					continue;
				arl_query_value(q, i, &v);
				arl_view_json_value(row, cols[i].title, &v);
			}
			arl_view_json_item(&arr, row);
			continue;
		}
		for (size_t i = 0; i < ncols; i++) {
			arl_query_value(q, i, &v);
			cells[i] = cell_text(&v, format == F_CSV ? NULL : "NULL", &owned[i]);
			if (v.type != ARL_VALUE_INT && v.type != ARL_VALUE_REAL &&
			    v.type != ARL_VALUE_NULL)
				numeric[i] = false;
			if (format == F_CSV)
				arl_view_csv(stdout, cells[i], cells[i] ? strlen(cells[i]) : 0,
				             i + 1 == ncols);
		}
		if (format == F_TABLE)
			arl_view_table_add(&table, cells, NULL);
		for (size_t i = 0; i < ncols; i++) {
			free(owned[i]);
			owned[i] = NULL;
		}
	}
	if (rc == 0 && format == F_JSON)
		arl_view_json_end(&arr);
	if (rc == 0 && format == F_TABLE && ncols) {
		/* Numbers align right, once every value of the column is known to be one. */
		for (size_t i = 0; i < ncols; i++)
			cols[i].right = numeric[i] && table.nrows;
		arl_view_table_print(&table, stdout, arl_view_width(STDOUT_FILENO),
		                     arl_cli_color(STDOUT_FILENO));
	}
	arl_view_table_release(&table);
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
	struct arl_query *q = NULL;
	const char *db = NULL;
	int format = F_TABLE, nwords, ret = ARL_EXIT_USAGE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db),
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
	if (arl_query_prepare(store, sql.p, &q, &err) < 0) {
		ret = err.code == ARL_E_USAGE ? ARL_EXIT_USAGE : ARL_EXIT_FAILED;
		goto out;
	}
	if (print_rows(q, (enum format)format, &err) < 0) {
		ret = ARL_EXIT_FAILED;
		goto out;
	}
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&err);
	arl_query_free(q);
	arl_store_close(store);
	arl_buf_release(&sql);
	return ret;
}
