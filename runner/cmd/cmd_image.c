/* `arl-batch image load|list|rm|prune`: the image store local pools run from (image/image.h). */
#include <cjson/cJSON.h>
#include <stdint.h>
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

static const char *const synopsis[] = {"image load [--store DIR] [FILE|-]",
                                       "image list [--store DIR] [--quiet]",
                                       "image rm [--store DIR] NAME[:TAG]|ID...",
                                       "image prune [--store DIR] [--dry-run]",
                                       "image inspect [--store DIR] [--owner UID[:GID]] REF",
                                       NULL};

static const char about[] =
    "The images local pools run from (a pool's `image:`), kept on this machine without a\n"
    "daemon. `load` reads what `docker save` or `podman save` write (a docker-archive, or\n"
    "an OCI layout as a directory or a tar) from FILE or standard input, verifies every\n"
    "layer against its sha256 digest and keeps the archive's tags, as `docker load`\n"
    "does:  docker save python:3.11-slim | arl-batch image load\n"
    "Layers are unpacked once, on first use, into a cache every run shares. `rm` removes a\n"
    "tag; `prune` deletes the blobs and unpacked layers no tagged image uses (layers in\n"
    "use by a running pool are kept). `inspect` resolves a reference (NAME[:TAG],\n"
    "docker-archive:FILE, oci:DIR[:TAG], oci-archive:FILE[:TAG]), unpacks its missing layers\n"
    "(owned by --owner, as root: a pool's sandbox uid, so a run finds them ready) and prints\n"
    "its id, layer directories (bottom first) and config as JSON.\n"
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

static int owner_opt(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	int64_t *ids = o->value, u, g;
	const char *colon = strchr(arg, ':');
	char *us = colon ? arl_xstrndup(arg, (size_t)(colon - arg)) : arl_xstrdup(arg);
	int r = arl_parse_i64(us, 0, UINT32_MAX - 1, &u);

	free(us);
	if (r < 0 || (colon && arl_parse_i64(colon + 1, 0, UINT32_MAX - 1, &g) < 0))
		return arl_error(err, ARL_E_USAGE, "expected UID or UID:GID (numbers)");
	ids[0] = u;
	ids[1] = colon ? g : u;
	return 0;
}

static int do_inspect(struct arl_image_store *s, const char *ref, struct arl_err *err)
{
	struct arl_image *im = NULL;
	cJSON *j, *a;
	char *text;

	if (arl_image_get(s, ref, &im, err) < 0)
		return -1;
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "ref", im->ref);
	cJSON_AddStringToObject(j, "id", im->id);
	a = cJSON_AddArrayToObject(j, "layers");
	for (size_t i = 0; i < im->nlayers; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(im->layers[i]));
	a = cJSON_AddArrayToObject(j, "env");
	for (size_t i = 0; i < im->config.nenv; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(im->config.env[i]));
	if (im->config.workdir)
		cJSON_AddStringToObject(j, "workingDir", im->config.workdir);
	if (im->config.user)
		cJSON_AddStringToObject(j, "user", im->config.user);
	text = cJSON_Print(j);
	if (text)
		printf("%s\n", text);
	free(text);
	cJSON_Delete(j);
	arl_image_free(im);
	return 0;
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
	static const char *const verbs[] = {"load", "list", "rm", "prune", "inspect"};
	int64_t owner[2] = {-1, -1};
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
	    ARL_OPT_CALLBACK(0, "owner", owner, owner_opt, "UID[:GID]",
	                     "inspect: who owns the layers it unpacks (root only;\n"
	                     "default: you)"),
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
		return arl_options_error(
		    &u, "give a subcommand first: load, list, rm, prune or inspect");
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
	if (!strcmp(what, "inspect") && n != 1)
		return n ? arl_cli_unexpected(&u, argv[1])
		         : arl_options_error(&u, "which image? give a reference");
	if (!strcmp(what, "rm") && n == 0)
		return arl_options_error(&u, "which image? give NAME[:TAG] or an id");
	if ((!strcmp(what, "list") || !strcmp(what, "prune")) && n > 0)
		return arl_cli_unexpected(&u, argv[0]);
	if (!strcmp(what, "load") && n > 1)
		return arl_cli_unexpected(&u, argv[1]);

	code = ARL_EXIT_INCOMPLETE;
	if (arl_image_store_open(&s, dir, owner[0] < 0 ? (uid_t)-1 : (uid_t)owner[0],
	                         owner[1] < 0 ? (gid_t)-1 : (gid_t)owner[1], &err) < 0)
		goto fail;
	if (!strcmp(what, "load")) {
		char **tags = NULL;
		size_t nt = 0;

		if (arl_image_load(s, n ? argv[0] : "-", &tags, &nt, &err) < 0)
			goto fail;
		for (size_t i = 0; i < nt; i++)
			printf("Loaded image: %s\n", tags[i]);
		arl_image_strv_free(tags, nt);
	} else if (!strcmp(what, "inspect")) {
		if (do_inspect(s, argv[0], &err) < 0)
			goto fail;
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
