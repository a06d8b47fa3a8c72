/* `arl-batch validate FILE...`: load and check job files; exit 2 when any is invalid. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "jobfile/dataset.h"
#include "err.h"
#include "jobfile/jobload.h"
#include "util.h"
#include "banned.h"

static void usage(FILE *out)
{
	fputs("usage: arl-batch validate [-q] [--max-record BYTES] FILE...\n"
	      "\n"
	      "Checks job files without running anything. Every error is reported as\n"
	      "FILE:LINE:COL with the offending line; datasets named by foreach are read and\n"
	      "checked too.\n"
	      "\n"
	      "  -q, --quiet           print only errors, not the per-file summary\n"
	      "  --max-record BYTES    longest foreach dataset record (default 16777216)\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "Exit status: 0 when every file is valid, 2 otherwise.\n",
	      out);
}

int cmd_validate(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"quiet", no_argument, NULL, 'q'},
	    {"max-record", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int quiet = 0, bad = 0, c;
	int64_t v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			quiet = 1;
			break;
		case 'm':
			if (arl_parse_i64(optarg, 1024, (int64_t)ARL_DATASET_MAX_BYTES, &v) < 0) {
				fprintf(
				    stderr,
				    "arl-batch validate: --max-record must be a byte count from "
				    "1024 to %zu, got '%s'\n",
				    ARL_DATASET_MAX_BYTES, optarg);
				return ARL_EXIT_USAGE;
			}
			arl_dataset_set_max_record((size_t)v);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return ARL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs("arl-batch validate: no job files given\n", stderr);
		usage(stderr);
		return ARL_EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		struct arl_jobfile *f = NULL;

		if (arl_jobfile_load(argv[i], &f, stderr) < 0) {
			bad++;
			continue;
		}
		if (!quiet)
			printf("%s: ok (%zu job%s, %zu pool%s)\n", argv[i], f->njobs,
			       f->njobs == 1 ? "" : "s", f->npools, f->npools == 1 ? "" : "s");
		arl_jobfile_free(f);
	}
	return bad ? ARL_EXIT_USAGE : 0;
}
