/*
 * libFuzzer target: arbitrary bytes through the whole job-file front end (YAML loader,
 * validation, templates, expansion). Datasets are resolved relative to a directory that does
 * not exist, so file-backed foreach only exercises the error path.
 */
#include <stddef.h>
#include <stdint.h>

#include "cmd/builtin_backends.h"
#include "err.h"
#include "jobfile/job.h"
#include "jobfile/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arl_diags diags = ARL_DIAGS_INIT;
	struct arl_jobfile *f = NULL;

	arl_register_builtin_backends(); /* once; later calls find them registered */
	if (arl_jobfile_parse("/nonexistent-fuzz-dir/fuzz.yaml", (const char *)data, size, &f,
	                      &diags) == 0)
		arl_jobfile_free(f);
	arl_diags_release(&diags);
	return 0;
}
