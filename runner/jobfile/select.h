/* Choosing which jobs of the loaded files a run takes: --only, --limit and --shard. */
#ifndef ARL_SELECT_H
#define ARL_SELECT_H

#include <stddef.h>

#include "err.h"
#include "jobfile/job.h"

struct arl_select {
	const char *only; /* fnmatch(3) glob on the job name or key; NULL: all */
	size_t limit;     /* at most this many jobs per file (after --only); 0: no limit */
	unsigned shard_index, shard_count; /* 1-based index of count; count 0: no sharding */
};

/* Parses "I/N" (1 <= I <= N); -1 when malformed. */
int arl_select_parse_shard(const char *s, unsigned *index, unsigned *count);

/*
 * Removes the jobs @sel excludes from every file, keeping their order. Sharding hashes the job
 * key, so each job lands in the same shard on every machine and every run.
 */
void arl_select_apply(struct arl_jobfile *const *files, size_t nfiles,
                      const struct arl_select *sel);

#endif
