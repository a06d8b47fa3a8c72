/*
 * A run's secrets (a job file's `secrets:`): the runner's environment variables steps get as
 * env, whose values never leave the run's memory. What steps print is masked before anything
 * records it (docs/jobfile.md, "Secrets").
 */
#ifndef ARL_SECRETS_H
#define ARL_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "jobfile/job.h"
#include "result.h"

/* Shorter values would mask ordinary text ("***" for every "abc"): they are refused. */
#define ARL_SECRET_MIN_LEN 4

struct arl_secrets {
	struct arl_strmap env; /* name -> value, every file's */
	char **masks;          /* what is masked: values and their lines, longest first */
	size_t *lens;          /* of each mask */
	size_t nmasks;
	bool first[256]; /* a mask starts with this byte: others are skipped at once */
};

/*
 * Reads the secrets @files name from the environment. -1 with @err naming the first that is
 * unset or shorter than ARL_SECRET_MIN_LEN (never its value).
 */
int arl_secrets_load(struct arl_secrets *s, struct arl_jobfile *const *files, size_t nfiles,
                     struct arl_err *err);
void arl_secrets_release(struct arl_secrets *s);

/* Adds @f's secrets to the env of @step (a Command step's copy): they win over its env. */
void arl_secrets_apply(const struct arl_secrets *s, const struct arl_jobfile *f,
                       struct arl_step *step);

/* Replaces every secret value in *@p (owned, NUL-terminated; may be NULL) with "***". */
void arl_secrets_mask_str(const struct arl_secrets *s, char **p);
/*
 * The same for output that may hold NULs; a truncated one also loses the part of a value cut
 * by the elision (its head's end, its tail's start).
 */
void arl_secrets_mask_output(const struct arl_secrets *s, struct arl_output *o);
/* Every text of an attempt's result: its error, its steps' output and errors, artifacts'. */
void arl_secrets_mask_attempt(const struct arl_secrets *s, struct arl_attempt_result *a);

#endif
