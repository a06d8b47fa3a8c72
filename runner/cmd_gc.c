/* `arl-batch gc`: find (and delete) sandboxes whose owning runner is dead. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend_local.h"
#include "cli.h"
#include "err.h"
#include "util.h"
#include "banned.h"

static void usage(FILE *out)
{
	fputs("usage: arl-batch gc [--yes] [--db PATH] [--state-dir DIR]\n"
	      "\n"
	      "Lists the local sandboxes (workspace directories) whose runner is no longer\n"
	      "running, e.g. after `kill -9`; with --yes deletes them. `run` does the same sweep\n"
	      "of its state directory when it starts. keepAlive sandboxes are never touched.\n"
	      "\n"
	      "  -y, --yes          delete what is found (default: only list it)\n"
	      "      --db PATH      the database whose sandboxes to check (they live in\n"
	      "                     PATH.sandboxes unless --state-dir or $XDG_STATE_HOME says "
	      "otherwise)\n"
	      "      --state-dir D  the sandboxes' directory, as given to `run --state-dir`\n",
	      out);
}

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"yes", no_argument, NULL, 'y'},
	    {"db", required_argument, NULL, 'd'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *state = NULL;
	bool yes = false;
	char *dir;
	int c, n;
	struct arl_err err = ARL_ERR_INIT;

	optind = 1;
	while ((c = getopt_long(argc, argv, "yh", opts, NULL)) != -1) {
		switch (c) {
		case 'y':
			yes = true;
			break;
		case 'd':
			db = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return ARL_EXIT_USAGE;
		}
	}
	dir = arl_cli_state_dir(state, arl_cli_db_path(db));
	n = arl_local_gc(dir, yes, stdout, &err);
	if (n < 0)
		fprintf(stderr, "arl-batch: %s\n", err.msg);
	else if (n == 0)
		printf("no orphaned sandboxes in %s\n", dir);
	else if (!yes)
		printf("%d orphaned sandbox%s; run 'arl-batch gc --yes' to delete\n", n,
		       n == 1 ? "" : "es");
	free(dir);
	return n < 0 ? ARL_EXIT_INCOMPLETE : 0;
}
