/* `arl-batch image load|list|rm|prune`: the image store local pools run from (image/image.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "image/image.h"
#include "log.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "image load [--store DIR] [FILE|-]", "image list [--store DIR] [--quiet]",
    "image rm [--store DIR] NAME[:TAG]|ID...", "image prune [--store DIR] [--dry-run]", NULL};

static const char about[] =
    "The images local pools run from (a pool's `image:`), kept on this machine without a\n"
    "daemon. `load` reads what `docker save` or `podman save` write (a docker-archive, or\n"
    "an OCI layout as a directory or a tar) from FILE or standard input, verifies every\n"
    "layer against its sha256 digest and keeps the archive's tags, as `docker load`\n"
    "does:  docker save python:3.11-slim | arl-batch image load\n"
    "Layers are unpacked once, on first use, into a cache every run shares. `rm` removes a\n"
    "tag; `prune` deletes the blobs and unpacked layers no tagged image uses (layers in\n"
    "use by a running pool are kept).\n"
    "\n"
    "The store: --store, else $ARL_BATCH_IMAGES, else /var/lib/arl-batch/images as root,\n"
    "else ${XDG_DATA_HOME:-~/.local/share}/arl-batch/images.\n";

static const char epilog[] = "Exit status: 0 done, 2 usage error, 3 the image or the store "
                             "could not be read or written.\n";

static void human(uint64_t b, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0]))
		v /= 1024, u++;
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

static int do_list(struct arl_image_store *s, bool quiet, struct arl_err *err)
{
	struct arl_image_info *v = NULL;
	size_t n = 0, w = 4;

	if (arl_image_list(s, &v, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strlen(v[i].name) > w)
			w = strlen(v[i].name);
	if (!quiet)
		printf("%-*s  %-12s  %10s  %6s  %s\n", (int)w, "NAME", "ID", "SIZE", "LAYERS",
		       "LOADED");
	for (size_t i = 0; i < n; i++) {
		char size[32], when[32] = "";
		time_t t = (time_t)v[i].created;
		struct tm tm;

		if (quiet) {
			printf("%s\n", v[i].name);
			continue;
		}
		human(v[i].size, size, sizeof(size));
		if (t && gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%-*s  %-12.12s  %10s  %6zu  %s\n", (int)w, v[i].name, v[i].id + 7, size,
		       v[i].nlayers, when);
	}
	arl_image_infos_free(v, n);
	return 0;
}

int cmd_image(int argc, char **argv)
{
	static const char *const verbs[] = {"load", "list", "rm", "prune"};
	const char *dir = NULL, *what;
	int code = ARL_EXIT_USAGE, n, dry = 0, quiet = 0;
	char verb[32];
	bool known = false;
	struct arl_image_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	const struct arl_option opts[] = {
	    ARL_OPT_STRING(0, "store", &dir, "DIR",
	                   "the image store (default $ARL_BATCH_IMAGES, see above)"),
	    ARL_OPT_FLAG('n', "dry-run", &dry, "prune: say what would be deleted"),
	    ARL_OPT_FLAG('q', "quiet", &quiet, "list: names only"),
	    ARL_OPT_END(),
	};
	struct arl_command_usage u = {.name = "image",
	                              .synopsis = synopsis,
	                              .about = about,
	                              .options = opts,
	                              .epilog = epilog};

	if (argc < 2 || argv[1][0] == '-') {
		if (arl_options_parse(&u, argc, argv, ARL_OPTS_STOP_AT_OPERAND, &code) < 0)
			return code;
		return arl_options_error(&u, "give a subcommand first: load, list, rm or prune");
	}
	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		known = known || !strcmp(argv[1], verbs[k]);
	if (!known)
		return arl_options_error(&u, "unknown subcommand '%s'", argv[1]);
	what = argv[1];
	snprintf(verb, sizeof(verb), "image %s", what);
	u.name = verb;
	if ((n = arl_options_parse(&u, argc - 1, argv + 1, 0, &code)) < 0)
		return code;
	argv++; /* the operands are argv[0..n-1] */
	if (!strcmp(what, "rm") && n == 0)
		return arl_options_error(&u, "which image? give NAME[:TAG] or an id");
	if ((!strcmp(what, "list") || !strcmp(what, "prune")) && n > 0)
		return arl_cli_unexpected(&u, argv[0]);
	if (!strcmp(what, "load") && n > 1)
		return arl_cli_unexpected(&u, argv[1]);

	code = ARL_EXIT_INCOMPLETE;
	if (arl_image_store_open(&s, dir, (uid_t)-1, (gid_t)-1, &err) < 0)
		goto fail;
	if (!strcmp(what, "load")) {
		char **tags = NULL;
		size_t nt = 0;

		if (arl_image_load(s, n ? argv[0] : "-", &tags, &nt, &err) < 0)
			goto fail;
		for (size_t i = 0; i < nt; i++)
			printf("Loaded image: %s\n", tags[i]);
		arl_image_strv_free(tags, nt);
	} else if (!strcmp(what, "list")) {
		if (do_list(s, quiet, &err) < 0)
			goto fail;
	} else if (!strcmp(what, "rm")) {
		for (int i = 0; i < n; i++) {
			if (arl_image_rm(s, argv[i], &err) < 0)
				goto fail;
			printf("Untagged: %s\n", argv[i]);
		}
	} else {
		struct arl_image_prune_stats st;
		char size[32];

		if (arl_image_prune(s, dry, &st, &err) < 0)
			goto fail;
		human(st.bytes, size, sizeof(size));
		printf("%s %zu layer%s, %zu blob%s and %zu untagged image%s: %s\n",
		       dry ? "would delete" : "deleted", st.layers, st.layers == 1 ? "" : "s",
		       st.blobs, st.blobs == 1 ? "" : "s", st.images, st.images == 1 ? "" : "s",
		       size);
	}
	code = 0;
	goto out;
fail:
	arl_log_err(verb, &err);
out:
	arl_image_store_close(s);
	return code;
}
