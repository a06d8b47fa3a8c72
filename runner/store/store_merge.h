/*
 * Merging results databases (`arl-batch merge`): the runs of several databases, typically one
 * per `--shard I/N` machine, into one. docs/database.md, "Merging", is the contract.
 *
 * Each input run joins the output run of the same name and parameters whose time range
 * overlaps its own (widened by @window_ms on both sides), else becomes a new run; inputs are
 * taken in the order their runs started, so shards that ran side by side end as one run. A key
 * that would appear twice in one output run is a conflict: the merge is refused naming the
 * keys, unless @prefer_newest keeps the result that finished last. A job equal to one already
 * there (same key, state, times and spec hash: the same database merged twice) is not copied
 * again. Everything is written in one transaction; inputs are read from private copies, so
 * they are never modified (an older schema is upgraded in the copy; a newer one is refused).
 * Artifact contents (DB.artifacts/sha256/AB/DIGEST) the merged rows name are copied beside the
 * output when the input has them.
 */
#ifndef ARL_STORE_MERGE_H
#define ARL_STORE_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct arl_store;

struct arl_merge_opts {
	const char *const *inputs; /* database paths */
	size_t ninputs;
	bool prefer_newest;
	int64_t window_ms;  /* >= 0 */
	const char *tmpdir; /* where input copies are made; NULL: $TMPDIR, else /tmp */
};

struct arl_merge_stats {
	int64_t runs_in;          /* input runs read */
	int64_t runs_new;         /* output runs created */
	int64_t jobs_in;          /* input jobs read */
	int64_t jobs_copied;      /* of them, copied */
	int64_t jobs_same;        /* already in the output, identical */
	int64_t jobs_replaced;    /* --prefer newest: copied over an older result of the key */
	int64_t jobs_older;       /* --prefer newest: not copied, the output had a newer result */
	int64_t files_copied;     /* artifact contents copied */
	int64_t files_missing;    /* artifact rows whose content the input did not have */
	int64_t files_mismatched; /* contents that did not match their row's digest: not kept */
};

/* One line per input run: where it went. All strings borrowed for the call. */
struct arl_merge_event {
	const char *input; /* the input's path */
	int64_t in_run, out_run;
	const char *name;
	int64_t jobs;
	bool joined; /* into an existing output run, not a new one */
};
typedef void (*arl_merge_fn)(void *arg, const struct arl_merge_event *ev);

/*
 * Merges o->inputs into @out. On failure nothing was written to the output database (artifact
 * files already copied stay: they are content-addressed, so a file is only ever its digest's).
 * Conflicts fail with ARL_E_INVALID naming the keys; an input that is missing, not a results
 * database, of a newer schema or the output itself with ARL_E_IO or ARL_E_DB.
 */
int arl_store_merge(struct arl_store *out, const struct arl_merge_opts *o, arl_merge_fn fn,
                    void *arg, struct arl_merge_stats *stats, struct arl_err *err);

#endif
