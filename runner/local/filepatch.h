/* FilePatch steps of the local backend: files written from the runner into the sandbox. */
#ifndef ARL_LOCAL_FILEPATCH_H
#define ARL_LOCAL_FILEPATCH_H

#include "backend/backend.h"
#include "err.h"

struct local;

/*
 * Writes FilePatch @step's content into @sb, never following a symlink; a refused path is a
 * FAILED step. Returns -1 with @err only for infra errors.
 */
int arl_local_run_filepatch(struct local *L, struct arl_sandbox *sb, const struct arl_step *step,
                            struct arl_step_result *res, enum arl_class *cls, struct arl_err *err);

#endif
