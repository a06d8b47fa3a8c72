/*
 * The results store: the SQLite database of docs/database.md (schemas/results.sql).
 *
 * A struct arl_store is one connection. Thread-safety: use it from one thread only (the main
 * thread); workers report outcomes through the scheduler and never touch the store. Several
 * processes may share one database file: it is in WAL mode and every writer waits up to 5 s
 * for the write lock.
 *
 * Errors: every fallible function returns 0 on success and -1 on failure with @err set
 * (ARL_E_DB for SQLite failures, naming the operation and carrying sqlite3_errmsg), and writes
 * its out-parameters only on success. A failed write leaves the database as it was.
 *
 * A full disk (SQLITE_FULL, or an I/O error with ENOSPC or EDQUOT) is always reported the same
 * way, without the SQL or the row being written: "cannot write to results database 'PATH':
 * database or disk is full". The connection stays usable: once space is freed, the next write
 * succeeds.
 */
#ifndef ARL_STORE_H
#define ARL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "result.h"

/* The schema version (PRAGMA user_version) this code reads and writes. */
#define ARL_STORE_VERSION 4

enum {
	/*
	 * For `query`: SQLITE_OPEN_READONLY, no migration, and an authorizer that refuses
	 * every statement that could write (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER,
	 * ATTACH, DETACH, transactions, pragmas that set a value): arl_query_prepare() then
	 * fails with ARL_E_USAGE and a message naming what was refused.
	 */
	ARL_STORE_READONLY = 1u << 0,
	/* Fail with ARL_E_IO instead of creating a missing database (the read commands). */
	ARL_STORE_NOCREATE = 1u << 1,
};

struct arl_store;

/*
 * Opens (creating it unless READONLY or NOCREATE) the database at @path, sets busy_timeout
 * 5000, journal_mode=WAL, synchronous=NORMAL and foreign_keys=ON, and brings the schema up to
 * ARL_STORE_VERSION; a database newer than that is refused (ARL_E_DB). A read-only store
 * refuses a database that would need migrating.
 *
 * A read-write open also repairs runs left 'running' by a runner that died: a run whose host
 * is this host and whose pid no longer exists becomes 'interrupted', its Pending and Running
 * jobs 'Cancelled', its counters recounted. When the disk is full the repair is left for a
 * later open and the open succeeds, so what is stored can still be read. A file the OS lets us
 * only read is opened read-only (no migration, no repair) without the authorizer. A database
 * this call created but could not give its schema is removed again.
 *
 * *out is the new store, owned by the caller (arl_store_close()).
 */
int arl_store_open(struct arl_store **out, const char *path, unsigned flags, struct arl_err *err);
/* Finalizes every statement and closes the connection. NULL is a no-op. */
void arl_store_close(struct arl_store *s);

/* The path given to arl_store_open() (borrowed). */
const char *arl_store_path(const struct arl_store *s);

/* True when the last failed write found the disk full (and no commit has succeeded since). */
bool arl_store_full(const struct arl_store *s);

/* ---- Writing a run (the run command) ---- */

/* What is known of a run when it starts. Every pointer is borrowed for the call. */
struct arl_run_info {
	const char *name;      /* required */
	const char *files;     /* JSON array of the job files ("[\"jobs/a.yaml\"]"); NULL: [] */
	int64_t jobs_total;    /* jobs planned, including the ones that will be Skipped */
	const char *isolation; /* e.g. "bwrap", "none", "bwrap,none", "kubernetes"; may be NULL */
	const char *notes;     /* free text, e.g. "pool p: isolation none"; may be NULL */
	const char *params;    /* JSON object of the run's parameters; NULL: none */
};

/* Inserts a run with status 'running', started_at now, this host and pid. */
int arl_store_run_begin(struct arl_store *s, const struct arl_run_info *info, int64_t *run_id,
                        struct arl_err *err);

/*
 * Ends a run: @status is "succeeded", "failed" or "interrupted", @exit_code that of
 * `arl-batch run`. Jobs still Pending or Running become Cancelled (class cancelled) and the
 * counters are recounted from the jobs, all in one transaction.
 */
int arl_store_run_finish(struct arl_store *s, int64_t run_id, const char *status, int exit_code,
                         struct arl_err *err);

/* Appends @note to run @run_id's notes ("; " between notes): what the run learned late. */
int arl_store_run_add_note(struct arl_store *s, int64_t run_id, const char *note,
                           struct arl_err *err);

/* Sets run @run_id's halted_by: why no new job started before the end (a budget, ...). */
int arl_store_run_set_halted(struct arl_store *s, int64_t run_id, const char *why,
                             struct arl_err *err);

/* One job row to insert. Every pointer is borrowed for the call. */
struct arl_job_row {
	const char *key; /* FILE_STEM/JOB_NAME */
	const char *name;
	const char *file;      /* the job file's path as given */
	const char *pool;      /* may be NULL */
	const char *item;      /* the foreach item as JSON text, or NULL */
	const char *labels;    /* JSON object text; NULL: {} */
	const char *spec_hash; /* may be NULL */
	int64_t skipped_from; /* jobs.id of the (non-Skipped) result this job stands for; 0: none */
};

/*
 * Inserts @n jobs of @run_id in one transaction and writes their ids to ids[0..n-1]
 * (caller-allocated). Row i is made by @row_fn just before it is inserted (its strings need
 * only live until the next call), so that a run of many jobs never holds all its rows at
 * once; a -1 from @row_fn (with @err set) rolls everything back. A row with skipped_from is
 * final at once (Skipped, finished now, counted in runs.jobs_skipped); the others are
 * Pending. runs.jobs_total is not changed: arl_store_run_begin() sets it.
 */
typedef int (*arl_store_row_fn)(void *arg, size_t i, struct arl_job_row *row, struct arl_err *err);
int arl_store_jobs_add(struct arl_store *s, int64_t run_id, size_t n, arl_store_row_fn row_fn,
                       void *arg, int64_t *ids, struct arl_err *err);

/*
 * arl_store_run_begin() and arl_store_jobs_add() in one transaction: a run's plan (the run,
 * its jobs, which are Skipped) is visible whole or not at all, so a runner killed while
 * starting leaves nothing that could hide an earlier result from --resume or --rerun.
 */
int arl_store_run_plan(struct arl_store *s, const struct arl_run_info *info, size_t n,
                       arl_store_row_fn row_fn, void *arg, int64_t *run_id, int64_t *ids,
                       struct arl_err *err);

/* Marks a Pending job Running since @started_ms (unix ms; 0: now). Optional. */
int arl_store_job_set_running(struct arl_store *s, int64_t job_id, int64_t started_ms,
                              struct arl_err *err);

/*
 * Records a job's outcome in one transaction: the job row (state, attempts, exit code, class,
 * error, times), its attempts with their steps (main then callback), its metrics, and the
 * run's counters. Calling it again for the same job replaces what the first call wrote and
 * keeps the counters true. @r is borrowed.
 */
int arl_store_job_finish(struct arl_store *s, int64_t job_id, const struct arl_job_result *r,
                         struct arl_err *err);

/* ---- Reading ---- */

/*
 * Resolves a --run argument: NULL, "" or "latest" is the newest run, a number is that run
 * id, anything else the newest run of that name. No such run: ARL_E_INVALID,
 * "no run 'x' in 'db'" (or "no runs in 'db'").
 */
int arl_store_run_resolve(struct arl_store *s, const char *spec, int64_t *run_id,
                          struct arl_err *err);

/* The job of an earlier run that a key's result stands on, for --resume and --rerun. */
struct arl_store_prev {
	int64_t job_id, run_id;
	enum arl_state state;
	enum arl_class cls;
	bool same_spec; /* its spec_hash equals the one asked about (both non-NULL) */
};

/*
 * The standing result of @key among the runs named @run_name: its newest Succeeded, Failed or
 * Cancelled row, or what its newest Skipped row stands for (followed through any number of
 * runs), whichever is newer. Pending and Running rows, runs without the key, and Skipped rows
 * whose result is gone are passed over. Returns 1 with *out (never Skipped; same_spec compares
 * the standing job's spec_hash) filled, 0 when the key has no standing result, -1 on error.
 */
int arl_store_job_standing(struct arl_store *s, const char *run_name, const char *key,
                           const char *spec_hash, struct arl_store_prev *out, struct arl_err *err);

/*
 * True when runner @o of @host may still be running: @host is not this host (we cannot tell),
 * or arl_owner_gone() finds no reason it is gone (another PID namespace is never judged).
 * Fields of @o left unknown (rows from before schema v2) are not compared.
 */
struct arl_owner;
bool arl_store_owner_alive(const char *host, const struct arl_owner *o);

#endif
