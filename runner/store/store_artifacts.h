/*
 * The files attempts kept (`artifacts:`), stored once per content beside the database: in
 * DB.artifacts/sha256/AB/DIGEST (AB: the digest's first two hex digits), files 0600 and
 * directories 0700. A file is written under DB.artifacts/tmp/ while it streams in and renamed
 * to its digest when complete, so a stored file is always whole and a digest names one content.
 * The rows (table artifacts) are written with their attempt (store.c); prune deletes the
 * stored files no row names any more (store_prune.c).
 */
#ifndef ARL_STORE_ARTIFACTS_H
#define ARL_STORE_ARTIFACTS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* DB.artifacts for the database at @db_path (owned). */
char *arl_artifacts_dir(const char *db_path);
/* Where the file of digest @sha256 is stored under @dir (owned); NULL if @sha256 is not one. */
char *arl_artifacts_file(const char *dir, const char *sha256);

struct arl_blob;

/* A new file being stored under @dir (created as needed). Thread-safe across blobs. */
int arl_blob_begin(const char *dir, struct arl_blob **out, struct arl_err *err);
int arl_blob_write(struct arl_blob *b, const void *p, size_t n, struct arl_err *err);
/* Stores the file under its digest (*sha256, 64 hex digits) and frees @b, even on failure. */
int arl_blob_commit(struct arl_blob *b, char sha256[65], struct arl_err *err);
/* Drops the file and frees @b. NULL is a no-op. */
void arl_blob_abort(struct arl_blob *b);

struct arl_store;

/*
 * Deletes the stored files of @s that no artifacts row names (prune runs it after its
 * transaction committed), and temporary files a dead runner left. A run still going may have
 * stored files whose rows are not committed yet: files changed since the oldest such run
 * started are kept (storing a content already there touches its file). *files and *bytes:
 * what was deleted.
 */
int arl_artifacts_sweep(struct arl_store *s, int64_t *files, int64_t *bytes, struct arl_err *err);

#endif
