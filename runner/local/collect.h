/* The local backend's collect op (backend.h): a job's `artifacts:` out of its sandbox. */
#ifndef ARL_LOCAL_COLLECT_H
#define ARL_LOCAL_COLLECT_H

#include "backend/backend.h"

int arl_local_collect(void *state, struct arl_sandbox *sb, const struct arl_artifact_spec *specs,
                      size_t nspecs, const struct arl_artifact_sink *sink, int64_t deadline_ms,
                      struct arl_err *err);

#endif
