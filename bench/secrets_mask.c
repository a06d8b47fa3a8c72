/*
 * What masking secrets costs per MiB of captured output (bench/secrets_mask.sh): 1 MiB of
 * text through arl_secrets_mask_output() with @argv[1] secrets loaded, the first one present
 * @argv[2] times; prints one line per round, "ms_per_mib".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobfile/job.h"
#include "run/secrets.h"

int main(int argc, char **argv)
{
	char *names[] = {"BENCH_K1", "BENCH_K2", "BENCH_K3", "BENCH_K4"};
	const char *vals[] = {"sk-bench-value-one-0123456789", "sk-bench-value-two-0123456789",
	                      "sk-bench-value-three-012345", "sk-bench-value-four-0123456"};
	int nsec = argc > 1 ? atoi(argv[1]) : 4, hits = argc > 2 ? atoi(argv[2]) : 16;
	struct arl_jobfile f = {.path = "bench", .secrets = names, .nsecrets = (size_t)nsec};
	struct arl_jobfile *files[] = {&f};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_secrets s;
	const size_t n = (size_t)1 << 20;

	for (int i = 0; i < 4; i++)
		setenv(names[i], vals[i], 1);
	if (nsec < 1 || nsec > 4 || arl_secrets_load(&s, files, 1, &err) < 0)
		return 1;
	for (int r = 0; r < 7; r++) {
		struct timespec a, b;
		double ms = 0;

		for (int k = 0; k < 20; k++) {
			struct arl_output o = {.data = malloc(n + 1), .len = n};

			/* Text like a log: lines of 's'-heavy words, so first bytes match often. */
			for (size_t i = 0; i < n; i++)
				o.data[i] = "session started\n"[i % 16];
			for (int h = 0; h < hits; h++)
				memcpy(o.data + (size_t)h * (n / (size_t)(hits + 1)), vals[0],
				       strlen(vals[0]));
			o.data[n] = '\0';
			clock_gettime(CLOCK_MONOTONIC, &a);
			arl_secrets_mask_output(&s, &o);
			clock_gettime(CLOCK_MONOTONIC, &b);
			ms += (double)(b.tv_sec - a.tv_sec) * 1e3 +
			      (double)(b.tv_nsec - a.tv_nsec) / 1e6;
			arl_output_release(&o);
		}
		printf("%.3f\n", ms / 20);
	}
	arl_secrets_release(&s);
	return 0;
}
