/*
 * Schema migrations of the results database, keyed by PRAGMA user_version. Included only by
 * store.c.
 *
 * schemas/results.sql is always the full current schema. CMake embeds its exact bytes as
 * arl_results_sql (results_sql.h in the build tree), so the published file and the code cannot
 * drift apart. A new database (version 0) is created from it in one step; a database at an
 * older version is brought forward one step at a time. Each step runs in its own
 * BEGIN IMMEDIATE .. COMMIT, after which user_version is its @to.
 *
 * To change the schema: edit schemas/results.sql (its final PRAGMA user_version included),
 * raise ARL_STORE_VERSION in store.h, change the {0, N} entry below to the new version and add
 * a {N-1, N} step with the ALTER TABLE statements that take an old database to the same shape.
 * PRAGMA foreign_keys cannot change inside a transaction, so a step that rebuilds a table must
 * follow SQLite's "12-step" recipe and check foreign_key_check itself.
 */
#ifndef ARL_STORE_MIGRATIONS_H
#define ARL_STORE_MIGRATIONS_H

#include "results_sql.h" /* generated: static const char arl_results_sql[] */

struct arl_migration {
	int from, to;
	const char *sql; /* may set user_version itself; it must then set it to @to */
};

/* Ends with a {0, 0, NULL} sentinel: ISO C has no empty arrays. */
static const struct arl_migration arl_migrations[] = {
    {0, 4, arl_results_sql},
    {1, 2,
     "ALTER TABLE runs ADD COLUMN owner_start INTEGER;"
     "ALTER TABLE runs ADD COLUMN owner_boot TEXT;"
     "ALTER TABLE runs ADD COLUMN owner_pidns TEXT;"
     "ALTER TABLE attempts ADD COLUMN prepare_ms INTEGER;"
     "ALTER TABLE steps ADD COLUMN metrics_error TEXT;"},
    {2, 3,
     "ALTER TABLE runs ADD COLUMN params TEXT CHECK (params IS NULL OR (json_valid(params) AND "
     "json_type(params) = 'object'));"
     "ALTER TABLE runs ADD COLUMN halted_by TEXT;"
     "CREATE TABLE artifacts ("
     " id INTEGER PRIMARY KEY,"
     " attempt_id INTEGER NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,"
     " path TEXT NOT NULL,"
     " size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),"
     " sha256 TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),"
     " error TEXT) STRICT;"
     "CREATE UNIQUE INDEX artifacts_attempt ON artifacts (attempt_id, path);"
     "CREATE INDEX artifacts_sha256 ON artifacts (sha256) WHERE sha256 IS NOT NULL;"},
    {3, 4,
     "CREATE TABLE leases ("
     " id INTEGER PRIMARY KEY,"
     " run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
     " backend TEXT NOT NULL,"
     " location TEXT NOT NULL,"
     " name TEXT NOT NULL,"
     " job_key TEXT,"
     " attempt INTEGER,"
     " created_at TEXT NOT NULL) STRICT;"
     "CREATE INDEX leases_run ON leases (run_id);"},
    {0, 0, NULL},
};

#endif
