/* Command steps of the local backend, under bwrap or with isolation none. */
#ifndef ARL_LOCAL_COMMAND_H
#define ARL_LOCAL_COMMAND_H

#include "backend/backend.h"
#include "err.h"

struct local;

/*
 * Runs Command @step in @sb. A step refused before it ran (bad env, workDir, program) is a
 * FAILED step; returns -1 with @err only for infra errors.
 */
int arl_local_run_command(struct local *L, struct arl_sandbox *sb, const struct arl_step *step,
                          const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                          enum arl_class *cls, struct arl_err *err);

#endif
