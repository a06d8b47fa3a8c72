#include "jobfile/select.h"

#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

int arl_select_parse_shard(const char *s, unsigned *index, unsigned *count)
{
	const char *slash = strchr(s, '/');
	char *head;
	int64_t i, n;
	int ok;

	if (!slash)
		return -1;
	head = arl_xstrndup(s, (size_t)(slash - s));
	ok = arl_parse_i64(head, 1, 1000000, &i) == 0 &&
	     arl_parse_i64(slash + 1, 1, 1000000, &n) == 0 && i <= n;
	free(head);
	if (!ok)
		return -1;
	*index = (unsigned)i;
	*count = (unsigned)n;
	return 0;
}

static bool wanted(const struct arl_job *j, const struct arl_select *sel)
{
	if (sel->only && fnmatch(sel->only, j->name, 0) != 0 && fnmatch(sel->only, j->key, 0) != 0)
		return false;
	if (sel->shard_count && arl_fnv1a(j->key) % sel->shard_count != sel->shard_index - 1)
		return false;
	return true;
}

void arl_select_apply(struct arl_jobfile *const *files, size_t nfiles, const struct arl_select *sel)
{
	for (size_t i = 0; i < nfiles; i++) {
		struct arl_jobfile *f = files[i];
		size_t kept = 0;

		for (size_t k = 0; k < f->njobs; k++) {
			if (wanted(&f->jobs[k], sel) && (!sel->limit || kept < sel->limit))
				f->jobs[kept++] = f->jobs[k];
			else
				arl_job_release(&f->jobs[k]);
		}
		f->njobs = kept;
	}
}
