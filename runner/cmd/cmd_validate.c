/* `arl-batch validate FILE...`: load and check job files; exit 2 when any is invalid. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cli_images.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "cmd/params.h"
#include "jobfile/dataset.h"
#include "err.h"
#include "log.h"
#include "jobfile/jobload.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "validate [-q] [--max-record BYTES] [--set NAME=VALUE]... FILE...", NULL};

static const char about[] =
    "Checks job files without running anything. Every error is reported as\n"
    "FILE:LINE:COL with the offending line; datasets named by foreach are read and\n"
    "checked too.\n";

static const char epilog[] = "Exit status: 0 when every file is valid, 2 otherwise.\n";

int cmd_validate(int argc, char **argv)
{
	bool quiet = false;
	size_t max_record = 0;
	struct arl_cli_params params = {0};
	const struct arl_option opts[] = {
	    ARL_OPT_FLAG('q', "quiet", &quiet, "print only errors, not the per-file summary"),
	    ARL_OPT_SIZE(0, "max-record", &max_record, 1024, (int64_t)ARL_DATASET_MAX_BYTES,
	                 "BYTES", "longest foreach dataset record (default 16777216)"),
	    ARL_OPT_PARAMS(&params),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {.name = "validate",
	                                    .synopsis = synopsis,
	                                    .about = about,
	                                    .options = opts,
	                                    .epilog = epilog};
	int bad = 0, code, nfiles = arl_options_parse(&u, argc, argv, 0, &code);

	if (nfiles < 0)
		goto out;
	if (max_record)
		arl_dataset_set_max_record(max_record);
	if (nfiles == 0) {
		code = arl_options_error(&u, "no job files given");
		goto out;
	}
	for (int i = 0; i < nfiles; i++) {
		struct arl_jobfile *f = NULL;
		struct arl_log_blob diags;
		int rc = arl_jobfile_load_with(argv[i], NULL, params.v, params.n, &f,
		                               arl_log_begin(&diags));

		arl_log_end(&diags); /* a file's diagnostics, whole */
		if (rc < 0) {
			bad++;
			continue;
		}
		/* Its local pools' images are here, or it says how to load them (cli_images.h). */
		if (arl_cli_images(&f, 1, false)) {
			arl_log_error("%s: an image it needs is missing", argv[i]);
			arl_jobfile_free(f);
			bad++;
			continue;
		}
		if (!quiet)
			printf("%s: ok (%zu job%s, %zu pool%s)\n", argv[i], f->njobs,
			       f->njobs == 1 ? "" : "s", f->npools, f->npools == 1 ? "" : "s");
		arl_cli_params_seen(&params, f);
		arl_jobfile_free(f);
	}
	if (!bad)
		bad = arl_cli_params_unknown(&params);
	code = bad ? ARL_EXIT_USAGE : 0;
out:
	arl_cli_params_release(&params);
	return code;
}
