/* Leases of remote sandboxes (store_leases.h). */
#include "store/store_leases.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store/store_internal.h"
#include "util.h"
#include "banned.h"

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : NULL;
}

static int bind_fail(struct arl_store *s, const char *op, struct arl_err *err)
{
	return arl_error(err, ARL_E_DB, "cannot %s in results database '%s': %s", op,
	                 arl_store_path(s), sqlite3_errmsg(arl_store_db(s)));
}

int arl_store_lease_add(struct arl_store *s, int64_t run_id, const char *backend,
                        const char *location, const char *name, const char *job_key, int attempt,
                        int64_t *id, struct arl_err *err)
{
	static const char sql[] =
	    "INSERT INTO leases (run_id, backend, location, name, job_key, attempt, created_at)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?)";
	const char *op = "record a lease";
	sqlite3_stmt *st = NULL;
	char now[32];
	int rc;

	arl_rfc3339_now(now);
	if (arl_store_prepare(s, sql, &st, NULL, err) < 0)
		return -1;
	if (sqlite3_bind_int64(st, 1, run_id) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, backend, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, location, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, job_key, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, attempt) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, now, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		bind_fail(s, op, err);
		sqlite3_finalize(st);
		return -1;
	}
	rc = arl_store_step(s, st, err);
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	*id = sqlite3_last_insert_rowid(arl_store_db(s));
	return 0;
}

int arl_store_lease_drop(struct arl_store *s, int64_t id, struct arl_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (arl_store_prepare(s, "DELETE FROM leases WHERE id = ?", &st, NULL, err) < 0)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		bind_fail(s, "drop a lease", err);
		sqlite3_finalize(st);
		return -1;
	}
	rc = arl_store_step(s, st, err);
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

int arl_store_leases_each(struct arl_store *s, const char *backend,
                          int (*fn)(void *arg, const struct arl_store_lease *l), void *arg,
                          struct arl_err *err)
{
	static const char sql[] =
	    "SELECT l.id, l.run_id, l.location, l.name, l.job_key, l.attempt, l.created_at,"
	    " r.status, r.host, r.pid, r.owner_start, r.owner_boot, r.owner_pidns"
	    " FROM leases l JOIN runs r ON r.id = l.run_id WHERE l.backend = ? ORDER BY l.id";
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	if (arl_store_prepare(s, sql, &st, NULL, err) < 0)
		return -1;
	if (sqlite3_bind_text(st, 1, backend, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		bind_fail(s, "list leases", err);
		sqlite3_finalize(st);
		return -1;
	}
	while ((rc = arl_store_step(s, st, err)) == 1) {
		struct arl_store_lease l = {0};
		const char *t;

		l.id = sqlite3_column_int64(st, 0);
		l.run_id = sqlite3_column_int64(st, 1);
		l.location = col_text(st, 2);
		l.name = col_text(st, 3);
		l.job_key = col_text(st, 4);
		l.attempt = sqlite3_column_int64(st, 5);
		l.created_at = col_text(st, 6);
		l.run_status = col_text(st, 7);
		l.host = col_text(st, 8);
		l.owner.pid = (long)sqlite3_column_int64(st, 9);
		if (sqlite3_column_int64(st, 10) > 0)
			l.owner.start = (unsigned long long)sqlite3_column_int64(st, 10);
		if ((t = col_text(st, 11)))
			snprintf(l.owner.boot, sizeof(l.owner.boot), "%s", t);
		if ((t = col_text(st, 12)))
			snprintf(l.owner.pidns, sizeof(l.owner.pidns), "%s", t);
		if (!l.location || !l.name)
			continue;
		if ((ret = fn(arg, &l)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc < 0 ? -1 : ret;
}
