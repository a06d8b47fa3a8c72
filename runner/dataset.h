/*
 * foreach datasets: .jsonl (one JSON value per line), .json (an array), .csv (a header row,
 * then records of strings). Errors carry the dataset's own line and column.
 */
#ifndef ARL_DATASET_H
#define ARL_DATASET_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "err.h"

#define ARL_DATASET_MAX_BYTES ((size_t)1 << 30)

struct arl_span {
	size_t off, len;
};

struct arl_dataset {
	char *path;      /* as shown in messages */
	cJSON **items;   /* owned; NULL entries for JSONL records, which stay text until taken */
	unsigned *lines; /* line where each record starts */
	size_t n;
	/*
	 * JSONL keeps the file's text and each record's span: 100,000 records as cJSON trees
	 * would cost several times their text, and expansion needs one at a time.
	 */
	char *text;
	struct arl_span *spans;
};

/*
 * Loads @fs_path (shown as @path). Malformed records are reported to @diags, positioned in the
 * dataset file, and make it return -1; a file that cannot be read is reported at @ref (the
 * job file's 'file:' node).
 */
int arl_dataset_load(struct arl_dataset *ds, const char *path, const char *fs_path,
                     struct arl_loc ref, struct arl_diags *diags);
/* Record @i as a tree the caller owns (cJSON_Delete); each record can be taken once. */
cJSON *arl_dataset_take(struct arl_dataset *ds, size_t i);
void arl_dataset_release(struct arl_dataset *ds);

#endif
