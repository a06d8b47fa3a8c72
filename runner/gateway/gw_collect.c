/* A job's artifacts out of a gateway session (gw_collect.h). */
#include "gateway/gw_collect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/backend_gateway.h"
#include "util.h"
#include "banned.h"

/*
 * Run in the session: MAXSIZE PATTERN pairs. One line per file: "F SPEC SIZE HEXPATH" to
 * fetch, "X SPEC SIZE HEXPATH REASON" not kept. IFS empty: a pattern is globbed but never
 * split. Symlinks are reported, not read.
 */
static const char script[] = "i=0; IFS=\n"
                             "while [ $# -ge 2 ]; do\n"
                             "  max=$1; pat=$2; shift 2\n"
                             "  for f in $pat; do\n"
                             "    if [ -L \"$f\" ]; then r=symlink\n"
                             "    elif [ ! -e \"$f\" ]; then continue\n"
                             "    elif [ ! -f \"$f\" ]; then r=notregular\n"
                             "    else r=; fi\n"
                             "    p=$(printf %s \"$f\" | od -An -tx1 | tr -d ' \\n')\n"
                             "    if [ -n \"$r\" ]; then echo \"X $i 0 $p $r\"; continue; fi\n"
                             "    s=$(wc -c <\"$f\" | tr -d ' ')\n"
                             "    if [ \"$s\" -gt \"$max\" ]; then echo \"X $i $s $p toolarge\"\n"
                             "    else echo \"F $i $s $p\"; fi\n"
                             "  done\n"
                             "  i=$((i+1))\n"
                             "done\n";

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static char *unhex(const char *s)
{
	size_t n = strlen(s);
	char *out;

	if (!n || n % 2)
		return NULL;
	out = arl_xmalloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[i] = (char)(hi << 4 | lo);
	}
	out[n / 2] = '\0';
	return out;
}

int arl_gw_collect_parse(char *out, size_t nspecs,
                         int (*fn)(void *arg, const struct arl_gw_found *f), void *arg)
{
	char *save = NULL;

	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tok[5] = {0}, *s2 = NULL;
		size_t n = 0;
		int64_t v;
		struct arl_gw_found f = {0};
		int rc;

		for (char *t = strtok_r(line, " ", &s2); t && n < 5; t = strtok_r(NULL, " ", &s2))
			tok[n++] = t;
		if (n < 4 || (tok[0][0] != 'F' && tok[0][0] != 'X') || tok[0][1] ||
		    (tok[0][0] == 'X' && n != 5) || (tok[0][0] == 'F' && n != 4) ||
		    arl_parse_i64(tok[1], 0, (int64_t)nspecs - 1, &v) < 0)
			return -1;
		f.type = tok[0][0];
		f.spec = (size_t)v;
		if (arl_parse_i64(tok[2], 0, INT64_MAX, &f.size) < 0 || !(f.path = unhex(tok[3])))
			return -1;
		f.reason = tok[4];
		rc = fn(arg, &f);
		free(f.path);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static const char *reason_text(const char *word)
{
	if (!strcmp(word, "symlink"))
		return "a symlink: not followed";
	if (!strcmp(word, "notregular"))
		return "not a regular file";
	if (!strcmp(word, "toolarge"))
		return "larger than its maxSize";
	return "not kept";
}

struct fetch {
	struct arl_gw *gw;
	const char *session;
	int cancel_fd;
	const struct arl_artifact_spec *specs;
	const struct arl_artifact_sink *sink;
	int64_t deadline_ms;
	struct arl_err *err;
	bool failed;
};

static int fetch_one(void *arg, const struct arl_gw_found *f)
{
	struct fetch *x = arg;
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	int64_t max = x->specs[f->spec].max_size;

	if (x->sink->max_size > 0 && x->sink->max_size < max)
		max = x->sink->max_size;
	if (x->sink->begin(x->sink->arg, f->spec, f->path, f->size) != 0)
		return 0;
	if (f->type == 'X') {
		x->sink->end(x->sink->arg, reason_text(f->reason));
		return 0;
	}
	if (x->failed) {
		x->sink->end(x->sink->arg, "not fetched: an earlier download failed");
		return 0;
	}
	c.deadline_ms = x->deadline_ms;
	c.cancel_fd = x->cancel_fd;
	c.max_tries = -1;
	if (arl_gw_download(x->gw, x->session, f->path, (size_t)max, &c, &resp, x->err) < 0) {
		x->sink->end(x->sink->arg, x->err->msg);
		x->failed = true;
	} else if (x->sink->data(x->sink->arg, resp.raw.p ? resp.raw.p : "", resp.raw.len) < 0) {
		x->sink->end(x->sink->arg, "refused");
	} else {
		x->sink->end(x->sink->arg, NULL);
	}
	arl_gw_resp_release(&resp);
	return 0;
}

int arl_gw_collect(struct arl_gw *gw, const char *session, int cancel_fd,
                   const struct arl_artifact_spec *specs, size_t nspecs,
                   const struct arl_artifact_sink *sink, int64_t deadline_ms, struct arl_err *err)
{
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	cJSON *body = cJSON_CreateObject(), *steps = cJSON_AddArrayToObject(body, "steps");
	cJSON *s = cJSON_CreateObject(), *argv;
	const cJSON *results, *r, *out, *ec;
	struct fetch x = {gw, session, cancel_fd, specs, sink, deadline_ms, err, false};
	char *text = NULL;
	int ret = -1;

	/* No operationID: the blocking 200 (the listing is quick), safe to send again. */
	cJSON_AddItemToArray(steps, s);
	cJSON_AddStringToObject(s, "name", "arl-batch-collect");
	argv = cJSON_AddArrayToObject(s, "command");
	cJSON_AddItemToArray(argv, cJSON_CreateString("sh"));
	cJSON_AddItemToArray(argv, cJSON_CreateString("-c"));
	cJSON_AddItemToArray(argv, cJSON_CreateString(script));
	cJSON_AddItemToArray(argv, cJSON_CreateString("arl-collect"));
	for (size_t i = 0; i < nspecs; i++) {
		char max[32];

		snprintf(max, sizeof(max), "%" PRId64, specs[i].max_size);
		cJSON_AddItemToArray(argv, cJSON_CreateString(max));
		cJSON_AddItemToArray(argv, cJSON_CreateString(specs[i].path));
	}
	c.deadline_ms = deadline_ms;
	c.timeout_ms = deadline_ms ? deadline_ms - arl_now_ms() : 0;
	c.cancel_fd = cancel_fd;
	c.max_tries = -1;
	if (c.timeout_ms < 0) {
		arl_error(err, ARL_E_BACKEND, "no time left to collect artifacts");
		goto out;
	}
	if (arl_gw_execute(gw, session, body, &c, &resp, err) < 0)
		goto out;
	results = cJSON_GetObjectItemCaseSensitive(resp.json, "results");
	r = cJSON_IsArray(results) ? cJSON_GetArrayItem(results, 0) : NULL;
	out = cJSON_GetObjectItemCaseSensitive(r, "output");
	ec = cJSON_GetObjectItemCaseSensitive(out, "exit_code");
	if (!cJSON_IsNumber(ec) || ec->valuedouble != 0 ||
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(out, "stdout"))) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(out, "stderr");

		arl_error(
		    err, ARL_E_BACKEND,
		    "the listing of artifacts failed (the image needs sh, od, wc and tr)%s%.200s",
		    cJSON_IsString(e) && e->valuestring[0] ? ": " : "",
		    cJSON_IsString(e) ? e->valuestring : "");
		arl_gw_resp_release(&resp);
		goto out;
	}
	text = arl_xstrdup(cJSON_GetObjectItemCaseSensitive(out, "stdout")->valuestring);
	arl_gw_resp_release(&resp);
	if (arl_gw_collect_parse(text, nspecs, fetch_one, &x) < 0) {
		arl_error(err, ARL_E_BACKEND, "the listing of artifacts is malformed");
		goto out;
	}
	if (x.failed)
		goto out; /* err: the first download's failure */
	ret = 0;
out:
	free(text);
	cJSON_Delete(body);
	return ret;
}
