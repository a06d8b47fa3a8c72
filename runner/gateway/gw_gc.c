/*
 * `arl-batch gc --backend gateway`: the sessions the results database's leases name whose run
 * ended or whose runner is gone (a runner killed with -9 never deleted them), deleted with
 * --yes. Listing the gateway's sessions needs an admin key, so the database is the record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "gateway/backend_gateway.h"
#include "gateway/gw_client.h"
#include "http/http.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define GC_GW_TRIES    4
#define GC_GW_DEADLINE 30000 /* per session */

const struct arl_backend_option arl_gw_gc_options[] = {
    {.name = "api-key-file",
     .argh = "PATH",
     .help = "gateway: the API key's file (default $ARL_API_KEY);\n"
             "the leftover sessions are those --db records"},
    {.name = NULL},
};

static const char *setting(const struct arl_backend_gc_opts *g, const char *name)
{
	const struct arl_backend_opts o = {.settings = g->settings, .nsettings = g->nsettings};

	return arl_backend_setting(&o, name);
}

int arl_gw_backend_gc(const struct arl_backend_gc_opts *g)
{
	struct arl_backend_lease *l = NULL;
	struct arl_http *http = NULL;
	struct arl_http_opts ho = {.max_tries = GC_GW_TRIES};
	struct arl_err err = ARL_ERR_INIT;
	char *key = NULL;
	size_t n = 0;
	int found = 0, deleted = 0, failed = 0, others = 0, code = ARL_EXIT_INCOMPLETE;

	if (!g->leases || g->leases(g->leases_arg, "gateway", &l, &n, &err) < 0)
		goto out;
	if (arl_gw_read_key(setting(g, "api-key-file"), &key, &err) < 0 ||
	    arl_http_new(&http, &ho, &err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct arl_gw *gw;
		struct arl_gw_call c = ARL_GW_CALL_INIT;
		struct arl_gw_resp resp;
		struct arl_err e = ARL_ERR_INIT;

		if (l[i].other_host) {
			others++;
			continue;
		}
		if (!l[i].gone)
			continue; /* its run is going on */
		found++;
		printf("session %s at %s (run %lld, job %s, attempt %d): %s", l[i].name,
		       l[i].location, (long long)l[i].run_id, l[i].job_key ? l[i].job_key : "?",
		       l[i].attempt, l[i].gone);
		if (!g->yes) {
			printf("\n");
			continue;
		}
		gw = arl_gw_new(http, l[i].location, key);
		c.deadline_ms = arl_now_ms() + GC_GW_DEADLINE;
		if (arl_gw_delete(gw, l[i].name, &c, &resp, &e) == 0) {
			printf(": %s\n", resp.status == 404 || resp.status == 410 ? "already gone"
			                                                          : "deleted");
			g->lease_drop(g->leases_arg, l[i].id);
			deleted++;
		} else {
			printf(": not deleted\n");
			arl_log_cmd_error("gc", "%s", e.msg);
			failed++;
		}
		arl_gw_resp_release(&resp);
		arl_gw_free(gw);
	}
	if (!found)
		printf("no leftover gateway sessions in %s\n",
		       g->db_path ? g->db_path : "the database");
	else if (!g->yes)
		printf("%d leftover session%s; run again with --yes to delete\n", found,
		       found == 1 ? "" : "s");
	else
		printf("%d leftover session%s deleted\n", deleted, deleted == 1 ? "" : "s");
	if (others)
		printf("%d session%s of runs on other hosts not checked: their runners cannot be "
		       "seen from here\n",
		       others, others == 1 ? "" : "s");
	code = failed ? ARL_EXIT_INCOMPLETE : ARL_EXIT_OK;
out:
	if (code != ARL_EXIT_OK && err.msg[0])
		arl_log_cmd_error("gc", "%s", err.msg);
	if (key) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
	arl_http_free(http);
	arl_backend_leases_free(l, n);
	return code;
}
