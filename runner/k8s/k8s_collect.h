/*
 * The kubernetes backend's collect op (backend.h): a job's artifacts through the ARL API.
 * The Task path has no file download, so one more Task runs a Command in the sandbox's pod
 * (`sh -c SCRIPT`) that prints each matched file base64-encoded between header lines, and the
 * runner decodes that output. Limits: the image needs `sh`, `base64`, `wc` and `tr`; a
 * Task's output lives in the Task object (etcd, about 1.5 MiB), so an attempt keeps at most
 * ARL_K8S_COLLECT_BUDGET bytes of files (the rest get a row saying so) and the output must fit
 * the run's --capture-max.
 */
#ifndef ARL_K8S_COLLECT_H
#define ARL_K8S_COLLECT_H

#include "backend/backend.h"

#define ARL_K8S_COLLECT_BUDGET (512 * 1024)

int arl_k8s_collect(void *state, struct arl_sandbox *sb, const struct arl_artifact_spec *specs,
                    size_t nspecs, const struct arl_artifact_sink *sink, int64_t deadline_ms,
                    struct arl_err *err);

/*
 * Hands the collecting Task's stdout @out (modified in place) to @sink: "X SPEC SIZE B64PATH
 * REASON" for a file not kept, or "B SPEC SIZE B64PATH", base64 lines, "E". Untrusted: -1
 * when it is malformed (a file open then ends with the reason).
 */
int arl_k8s_collect_parse(char *out, const struct arl_artifact_spec *specs, size_t nspecs,
                          const struct arl_artifact_sink *sink);

#endif
