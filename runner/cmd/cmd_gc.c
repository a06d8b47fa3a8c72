/*
 * `arl-batch gc`: find (and delete) sandboxes whose owning runner is dead, in the local
 * state directory and, when asked, on a Kubernetes cluster.
 *
 * The cluster is only contacted when the command line says so (--backend kubernetes|all,
 * or any kubernetes option): a bare `gc` must not reach for whatever $KUBECONFIG happens to
 * point at, and must not hang on a cluster that is down.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "store/store.h"
#include "store/store_leases.h"
#include "run/ledger.h"
#include "util.h"
#include "banned.h"

#define GC_MAX_BACKENDS   16 /* as the registry */
#define GC_MAX_SETTINGS   32
#define GC_SYNOPSIS_WIDTH 60 /* a synopsis line is wrapped before it is longer */

static const char about[] =
    "Lists the sandboxes whose runner is no longer running, e.g. after `kill -9`; with\n"
    "--yes deletes them. `run` does the same sweep when it starts (local: its state\n"
    "directory; kubernetes: this host's objects in the namespaces of its pools).\n"
    "\n"
    "local: the workspace directories in the state directory whose runner is gone: its\n"
    "pid is not running or is another process now, or the host rebooted since (as the\n"
    "directory's name records them). Those of a runner in another PID namespace (another\n"
    "container) are counted, not touched; keepAlive sandboxes are never touched.\n"
    "kubernetes: the Sandboxes and Tasks labelled with an owner on this host\n"
    "(arl.infra.io/owner-host) whose runner is gone: its pid is not running or is\n"
    "another process now, or the host rebooted since. Tasks are deleted first. Objects\n"
    "of other hosts are counted, not touched: their runners cannot be seen from here\n"
    "(see --host). Objects without the owner labels and keepAlive Sandboxes are never\n"
    "touched.\n"
    "gateway: the sessions the database (--db) records (table leases) whose run ended\n"
    "or whose runner is gone; each is sent only the key bound to its gateway:\n"
    "$ARL_API_KEY to $ARL_GATEWAY_URL's, or $ARL_GATEWAY_CREDENTIALS' (docs/gateway.md).\n";

static const char epilog[] =
    "Exit status: 0 done (whether or not anything was found), 2 usage error, 3 the\n"
    "state directory could not be read, the cluster could not be reached, or a\n"
    "deletion failed.\n";

/* The backends' gc options as given (struct arl_backend_setting). */
struct gc_settings {
	struct arl_backend_setting v[GC_MAX_SETTINGS];
	size_t n;
};

static int gc_setting(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	struct gc_settings *s = o->value;

	if (s->n == GC_MAX_SETTINGS)
		return arl_error(err, ARL_E_USAGE, "too many backend options");
	s->v[s->n++] = (struct arl_backend_setting){o->long_name, arg};
	return 0;
}

/* What the registry gives gc: the backends that have one, and the texts naming them. */
struct gc_backends {
	const struct arl_backend_ops *ops[GC_MAX_BACKENDS];
	size_t n;
	struct arl_opt_choice choices[GC_MAX_BACKENDS + 2]; /* each (bit i), all, end */
	char backend_help[512];
	char synopsis_text[1024];
	const char *synopsis[16];
};

/* Appends to the string in @buf (@size bytes), truncating. */
static void append(char *buf, size_t size, const char *fmt, ...) ARL_PRINTF(3, 4);
static void append(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

/* Appends the names of @b's backends from @from on, "a, b" (@last: the last separator). */
static void add_names(char *buf, size_t size, const struct gc_backends *b, size_t from,
                      const char *last, const char *suffix)
{
	for (size_t i = from; i < b->n; i++)
		snprintf(buf + strlen(buf), size - strlen(buf), "%s%s%s",
		         i == from      ? ""
		         : i + 1 < b->n ? ", "
		                        : last,
		         arl_backend_name(b->ops[i]), suffix);
}

/* Adds @word to the synopsis, starting a new line when this one would grow too long. */
static void add_word(struct gc_backends *b, size_t *line, const char *word)
{
	char *t = b->synopsis_text, *cur = (char *)b->synopsis[*line];
	size_t used = strlen(cur);

	if (used + 1 + strlen(word) > GC_SYNOPSIS_WIDTH && *line + 2 < 16) {
		char *next = cur + used + 1;

		b->synopsis[++*line] = next;
		snprintf(next, sizeof(b->synopsis_text) - (size_t)(next - t), "   %s", word);
		return;
	}
	snprintf(cur + used, sizeof(b->synopsis_text) - (size_t)(cur + used - t), " %s", word);
}

static void gc_backends(struct gc_backends *b)
{
	const struct arl_backend_ops *ops;
	int all = 0;
	size_t line = 0;
	char word[160];

	for (size_t i = 0; (ops = arl_backend_at(i)) && b->n < GC_MAX_BACKENDS; i++) {
		if (!ops->gc)
			continue;
		b->choices[b->n] = (struct arl_opt_choice){arl_backend_name(ops), 1 << b->n};
		all |= 1 << b->n;
		b->ops[b->n++] = ops;
	}
	b->choices[b->n] = (struct arl_opt_choice){"all", all};
	/* "local, kubernetes or all (default: local, and kubernetes too when ...)" */
	add_names(b->backend_help, sizeof(b->backend_help), b, 0, ", ", "");
	snprintf(b->backend_help + strlen(b->backend_help),
	         sizeof(b->backend_help) - strlen(b->backend_help), " or all (default: %s",
	         b->n ? arl_backend_name(b->ops[0]) : "none");
	if (b->n > 1) {
		append(b->backend_help, sizeof(b->backend_help), "%s", ",\nand ");
		add_names(b->backend_help, sizeof(b->backend_help), b, 1, " and ", "");
		append(b->backend_help, sizeof(b->backend_help), "%s", " too when a\n");
		add_names(b->backend_help, sizeof(b->backend_help), b, 1, " or ", "");
		append(b->backend_help, sizeof(b->backend_help), "%s", " option below is given");
	}
	append(b->backend_help, sizeof(b->backend_help), "%s", ")");

	b->synopsis[0] = b->synopsis_text;
	snprintf(b->synopsis_text, sizeof(b->synopsis_text), "gc [--yes] [--backend ");
	for (size_t i = 0; b->choices[i].name; i++)
		snprintf(b->synopsis_text + strlen(b->synopsis_text),
		         sizeof(b->synopsis_text) - strlen(b->synopsis_text), "%s%s", i ? "|" : "",
		         b->choices[i].name);
	append(b->synopsis_text, sizeof(b->synopsis_text), "%s", "]");
	add_word(b, &line, "[--db PATH]");
	add_word(b, &line, "[--state-dir DIR]");
	for (size_t i = 0; i < b->n; i++) {
		for (const struct arl_backend_option *o = b->ops[i]->gc_options; o && o->name;
		     o++) {
			snprintf(word, sizeof(word), "[--%s %s]", o->name, o->argh);
			add_word(b, &line, word);
		}
	}
	b->synopsis[line + 1] = NULL;
}

/* Whether a gc option of @ops is in @s. */
static bool given_for(const struct arl_backend_ops *ops, const struct gc_settings *s)
{
	for (size_t i = 0; i < s->n; i++)
		for (const struct arl_backend_option *o = ops->gc_options; o && o->name; o++)
			if (!strcmp(o->name, s->v[i].name))
				return true;
	return false;
}

/* "--kubeconfig, --context, --namespace and --host are for the kubernetes backend, ..." */
static int not_for(const struct arl_command_usage *u, const struct arl_backend_ops *ops,
                   const char *chosen)
{
	char names[512] = "";
	const struct arl_backend_option *o;

	for (o = ops->gc_options; o && o->name; o++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s--%s",
		         o == ops->gc_options ? ""
		         : o[1].name          ? ", "
		                              : " and ",
		         o->name);
	return arl_options_error(u, "%s %s for the %s backend, not with --backend %s", names,
	                         o - ops->gc_options > 1 ? "are" : "is", arl_backend_name(ops),
	                         chosen);
}

/* The results database's leases (schema v4), opened on first use. */
struct gc_db {
	const char *path;
	struct arl_store *s;
	bool missing;
};

static int gc_leases(void *arg, const char *backend, struct arl_backend_lease **out, size_t *n,
                     struct arl_err *err)
{
	struct gc_db *g = arg;

	*out = NULL;
	*n = 0;
	if (!g->s && !g->missing) {
		if (arl_store_open(&g->s, g->path, ARL_STORE_NOCREATE, err) < 0) {
			if (err->code != ARL_E_IO)
				return -1;
			arl_err_clear(err);
			g->missing = true;
		}
	}
	return g->missing ? 0 : arl_run_leases(g->s, backend, out, n, err);
}

static void gc_lease_drop(void *arg, int64_t id)
{
	struct gc_db *g = arg;
	struct arl_err err = ARL_ERR_INIT;

	if (g->s && arl_store_lease_drop(g->s, id, &err) < 0)
		arl_log_err(NULL, &err);
}

int cmd_gc(int argc, char **argv)
{
	struct gc_db gdb = {.path = NULL};
	struct gc_backends b = {.n = 0};
	struct gc_settings settings = {.n = 0};
	struct arl_backend_gc_opts go = {.yes = false};
	struct arl_option opts[GC_MAX_SETTINGS + 8];
	const char *db = NULL, *state = NULL;
	char *state_dir;
	size_t nopts = 0;
	int which = 0, code = 0, rc, n;

	gc_backends(&b);
	opts[nopts++] = (struct arl_option)ARL_OPT_FLAG(
	    'y', "yes", &go.yes, "delete what is found (default: only list it)");
	opts[nopts++] =
	    (struct arl_option)ARL_OPT_CHOICE('b', "backend", &which, b.choices, b.backend_help);
	opts[nopts++] = (struct arl_option)ARL_OPT_STRING(
	    0, "db", &db, "PATH",
	    "local: the database whose sandboxes to check (they live\n"
	    "in PATH.sandboxes unless --state-dir or $XDG_STATE_HOME\n"
	    "says otherwise)");
	opts[nopts++] = (struct arl_option)ARL_OPT_STRING(0, "state-dir", &state, "D",
	                                                  "local: the sandboxes' directory, as "
	                                                  "given to\n`run --state-dir`");
	for (size_t i = 0; i < b.n; i++)
		for (const struct arl_backend_option *o = b.ops[i]->gc_options;
		     o && o->name && nopts + 1 < sizeof(opts) / sizeof(opts[0]); o++)
			opts[nopts++] = (struct arl_option)ARL_OPT_CALLBACK(
			    o->short_name, o->name, &settings, gc_setting, o->argh, o->help);
	opts[nopts] = (struct arl_option)ARL_OPT_END();
	const struct arl_command_usage u = {.name = "gc",
	                                    .synopsis = b.synopsis,
	                                    .about = about,
	                                    .options = opts,
	                                    .epilog = epilog};

	if ((n = arl_options_parse(&u, argc, argv, 0, &code)) < 0)
		return code;
	if (n > 0)
		return arl_cli_unexpected(&u, argv[0]);
	if (!which) {
		/* The first backend, and any other whose options are given: a bare `gc` must not
		 * reach for a cluster (whatever $KUBECONFIG points at, and it may be down). */
		for (size_t i = 0; i < b.n; i++)
			if (!i || given_for(b.ops[i], &settings))
				which |= 1 << i;
	}
	for (size_t i = 0; i < b.n; i++) {
		if (!(which & 1 << i) && given_for(b.ops[i], &settings)) {
			const char *chosen = "";

			for (size_t c = 0; b.choices[c].name; c++)
				if (b.choices[c].value == which)
					chosen = b.choices[c].name;
			return not_for(&u, b.ops[i], chosen);
		}
	}
	go.state_dir = state_dir = arl_cli_state_dir(state, arl_cli_db_path(db));
	go.settings = settings.v;
	go.nsettings = settings.n;
	go.db_path = gdb.path = arl_cli_db_path(db);
	go.leases = gc_leases;
	go.lease_drop = gc_lease_drop;
	go.leases_arg = &gdb;
	for (size_t i = 0; i < b.n; i++)
		if (which & 1 << i && (rc = b.ops[i]->gc(&go)) != 0)
			code = rc;
	free(state_dir);
	arl_store_close(gdb.s);
	return code;
}
