/*
 * Finding the job a read command names (`show JOB`, `artifacts JOB`): JOB is a key
 * (FILE_STEM/JOB_NAME) or a job name; without --run, in the newest run that has it.
 */
#ifndef ARL_CMD_JOB_LOOKUP_H
#define ARL_CMD_JOB_LOOKUP_H

#include <stdint.h>

#include "cmd/options.h"
#include "err.h"
#include "store/store.h"
#include "store/store_jobs.h"

/* The --run option of the commands that take a JOB. */
#define ARL_OPT_JOB_RUN(v)                                                                         \
	ARL_OPT_STRING(0, "run", (v), "RUN",                                                       \
	               "a run id, 'latest', or a run name (default: the newest\nrun with JOB)")

/* The usage error of a command given @nargs operands instead of one JOB: its exit code. */
int arl_cli_one_job_error(const struct arl_command_usage *u, int nargs);

/*
 * Sets *job_id to JOB in run @run (an id, 'latest' or a name; NULL: the newest run with JOB).
 * Returns ARL_EXIT_OK; else ARL_EXIT_FAILED (no such run or job, an ambiguous name) or
 * ARL_EXIT_INCOMPLETE (the database failed), the error already printed (with a did-you-mean)
 * and @err left empty.
 */
int arl_cli_find_job(struct arl_store *store, struct arl_job_reader *reader, const char *run,
                     const char *job, int64_t *job_id, struct arl_err *err);

#endif
