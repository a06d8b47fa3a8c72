/*
 * libFuzzer target: arbitrary bytes through the foreach dataset readers. The first byte picks
 * the format (.jsonl, .json, .csv), the rest is written to a temporary file that
 * arl_dataset_load() reads, as it reads a real dataset.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "jobfile/dataset.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ext[] = {".jsonl", ".json", ".csv"};
	static char paths[3][64];
	struct arl_diags diags = ARL_DIAGS_INIT;
	struct arl_dataset ds = {0};
	struct arl_loc ref = {"fuzz.yaml", 1, 1};
	const char *path;
	FILE *f;

	if (!size)
		return 0;
	path = paths[data[0] % 3];
	if (!*path)
		snprintf(paths[data[0] % 3], sizeof(paths[0]), "/tmp/arl-fuzz-dataset-%ld%s",
		         (long)getpid(), ext[data[0] % 3]);
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1)
		abort();
	if (fclose(f) != 0)
		abort();
	/* Released whatever the outcome, as schema.c does. */
	(void)arl_dataset_load(&ds, path, path, ref, &diags);
	arl_dataset_release(&ds);
	arl_diags_release(&diags);
	unlink(path);
	return 0;
}
