/*
 * `arl-batch gc --backend gateway`: the sessions the results database's leases name whose run
 * ended or whose runner is gone (a runner killed with -9 never deleted them), deleted with
 * --yes. Listing the gateway's sessions needs an admin key, so the database is the record.
 * A database says where its sessions are, not who may be sent a key: each delete carries only
 * the key the operator bound to that location's origin (gw_cred.h), and none goes elsewhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "gateway/backend_gateway.h"
#include "gateway/gw_client.h"
#include "gateway/gw_cred.h"
#include "http/http.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define GC_GW_TRIES    4
#define GC_GW_DEADLINE 30000 /* per session */

int arl_gw_backend_gc(const struct arl_backend_gc_opts *g)
{
	struct arl_backend_lease *l = NULL;
	struct arl_http *http = NULL;
	struct arl_http_opts ho = {.max_tries = GC_GW_TRIES};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_gw_creds *creds = NULL;
	size_t n = 0;
	int found = 0, deleted = 0, failed = 0, others = 0, code = ARL_EXIT_INCOMPLETE;

	if (!g->leases || g->leases(g->leases_arg, "gateway", &l, &n, &err) < 0)
		goto out;
	if ((g->yes && arl_gw_creds_load(&creds, &err) < 0) || arl_http_new(&http, &ho, &err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct arl_gw *gw;
		struct arl_gw_call c = ARL_GW_CALL_INIT;
		struct arl_gw_resp resp;
		struct arl_err e = ARL_ERR_INIT;
		char *key = NULL;

		if (l[i].other_host) {
			others++;
			continue;
		}
		if (!l[i].gone)
			continue; /* its run is going on */
		found++;
		{
			/* Any database may be given: what it says is printed escaped. */
			char *nm = arl_term_str(l[i].name), *loc = arl_term_str(l[i].location);
			char *jk = arl_term_str(l[i].job_key ? l[i].job_key : "?");

			printf("session %s at %s (run %lld, job %s, attempt %d): %s", nm, loc,
			       (long long)l[i].run_id, jk, l[i].attempt, l[i].gone);
			free(nm);
			free(loc);
			free(jk);
		}
		if (!g->yes) {
			printf("\n");
			continue;
		}
		if (arl_gw_creds_key(creds, l[i].location, &key, &e) < 0) {
			printf(": not deleted\n");
			arl_log_cmd_error("gc", "%s", e.msg);
			failed++;
			continue;
		}
		gw = arl_gw_new(http, l[i].location, key);
		if (key) {
			explicit_bzero(key, strlen(key));
			free(key);
		}
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
	arl_gw_creds_free(creds);
	arl_http_free(http);
	arl_backend_leases_free(l, n);
	return code;
}
