/*
 * foreach datasets: .jsonl (one JSON value per line), .json (an array), .csv (a header row,
 * then records of strings). Errors carry the dataset's own line and column.
 *
 * The records of a .jsonl or .json dataset are not held in memory: loading checks every record
 * and notes where it is (16 bytes a record), and records are read from the file again when they
 * are needed. 100,000 records would otherwise cost their text, or as cJSON trees several times
 * their text, for as long as the jobs made from them live.
 */
#ifndef ARL_DATASET_H
#define ARL_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"

#define ARL_DATASET_MAX_BYTES ((size_t)1 << 30)
/* Default cap of one record's text: a 150 MB record cost 743 MB to validate. */
#define ARL_DATASET_MAX_RECORD ((size_t)16 << 20)

/*
 * The cap on one record's text for the datasets loaded after it (--max-record of run and
 * validate); a larger record is an error at its position. Not thread-safe: set it before
 * loading.
 */
void arl_dataset_set_max_record(size_t bytes);
size_t arl_dataset_max_record(void);

/* Where a record is: a .jsonl line without its newline, or a .json array element. */
struct arl_record {
	uint64_t off;
	uint32_t len;
	uint32_t sum; /* hash of the text: a file changed since it was checked is noticed */
};

struct arl_dataset {
	char *path;              /* as shown in messages */
	char *fs_path;           /* as opened */
	size_t n;                /* records */
	unsigned *lines;         /* line where each record starts; NULL after arl_dataset_trim() */
	cJSON **items;           /* .csv: the records, owned (NULL once taken); else NULL */
	struct arl_record *recs; /* .jsonl, .json: where each record is; else NULL */
	int fd; /* with recs: open for reading records again; -1: reopen each time */
	/* arl_dataset_take()'s read-ahead window (recs): file bytes [win_off, +win_len). */
	char *win;
	size_t win_len, win_cap;
	uint64_t win_off;
};

/*
 * Loads @fs_path (shown as @path). Malformed records are reported to @diags, positioned in the
 * dataset file, and make it return -1; a file that cannot be read is reported at @ref (the
 * job file's 'file:' node). *ds is filled either way: release it.
 */
int arl_dataset_load(struct arl_dataset *ds, const char *path, const char *fs_path,
                     struct arl_loc ref, struct arl_diags *diags);
/*
 * Record @i as a tree the caller owns (cJSON_Delete), for expanding records in order: the
 * file is read ahead a window at a time. Each .csv record can be taken once.
 * NULL with @err set when the record cannot be read back (the file changed). Not thread-safe.
 */
cJSON *arl_dataset_take(struct arl_dataset *ds, size_t i, struct arl_err *err);
/*
 * Record @i (of a dataset with recs) read from the file again, as a tree the caller owns. Returns
 * 0 and sets *out; -1 with @err when it cannot be read or is no longer the text that was
 * checked. Thread-safe (pread on a shared descriptor, or a descriptor of its own).
 */
int arl_dataset_read(const struct arl_dataset *ds, size_t i, cJSON **out, struct arl_err *err);
/*
 * Frees what only loading needs (the read-ahead window, record lines). Unless @keep_open the
 * file is closed and arl_dataset_read() opens it each time (a job file with hundreds of
 * datasets must not hold hundreds of descriptors).
 */
void arl_dataset_trim(struct arl_dataset *ds, bool keep_open);
void arl_dataset_release(struct arl_dataset *ds);

#endif
