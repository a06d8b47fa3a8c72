/* A job's artifacts out of a kubernetes sandbox (k8s_collect.h). */
#include "k8s/k8s_collect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/backend_k8s.h"
#include "k8s/k8s_text.h"
#include "util.h"
#include "banned.h"

/*
 * Run in the pod: $1 the byte budget, then MAXSIZE PATTERN pairs. One line per file not kept
 * ("X SPEC SIZE B64PATH REASON"), or "B SPEC SIZE B64PATH", its content in base64 lines, "E".
 * IFS empty: a pattern is globbed but never split. Symlinks are reported, not read.
 */
static const char script[] =
    "budget=$1; shift; i=0; IFS=\n"
    "while [ $# -ge 2 ]; do\n"
    "  max=$1; pat=$2; shift 2\n"
    "  for f in $pat; do\n"
    "    if [ -L \"$f\" ]; then r=symlink\n"
    "    elif [ ! -e \"$f\" ]; then continue\n"
    "    elif [ ! -f \"$f\" ]; then r=notregular\n"
    "    else r=; fi\n"
    "    p=$(printf %s \"$f\" | base64 | tr -d '\\n')\n"
    "    if [ -n \"$r\" ]; then echo \"X $i 0 $p $r\"; continue; fi\n"
    "    s=$(wc -c <\"$f\" | tr -d ' ')\n"
    "    if [ \"$s\" -gt \"$max\" ]; then echo \"X $i $s $p toolarge\"\n"
    "    elif [ \"$s\" -gt \"$budget\" ]; then echo \"X $i $s $p budget\"\n"
    "    else budget=$((budget - s)); echo \"B $i $s $p\"; base64 <\"$f\"; echo E; fi\n"
    "  done\n"
    "  i=$((i+1))\n"
    "done\n";

static const char *reason_text(const char *word, int64_t size, int64_t max, char *buf, size_t len)
{
	if (!strcmp(word, "symlink"))
		return "a symlink: not followed";
	if (!strcmp(word, "notregular"))
		return "not a regular file";
	if (!strcmp(word, "toolarge")) {
		snprintf(buf, len,
		         "larger than its maxSize (%" PRId64 " bytes; %" PRId64 " allowed)", size,
		         max);
		return buf;
	}
	if (!strcmp(word, "budget")) {
		snprintf(buf, len,
		         "past the %d bytes an attempt keeps on kubernetes (a Task's output)",
		         ARL_K8S_COLLECT_BUDGET);
		return buf;
	}
	return "not kept";
}

/* "SPEC SIZE B64PATH[ WORD]" after the type letter: -1 when malformed. */
static int parse_head(char *s, size_t nspecs, size_t *spec, int64_t *size, char **path, char **word)
{
	char *tok[4] = {0}, *save = NULL;
	size_t n = 0, plen = 0;
	int64_t v;

	for (char *t = strtok_r(s, " ", &save); t && n < 4; t = strtok_r(NULL, " ", &save))
		tok[n++] = t;
	if (n < 3 || arl_parse_i64(tok[0], 0, (int64_t)nspecs - 1, &v) < 0)
		return -1;
	*spec = (size_t)v;
	if (arl_parse_i64(tok[1], 0, INT64_MAX, size) < 0)
		return -1;
	*path = arl_k8s_base64_decode(tok[2], &plen);
	if (!*path || plen == 0 || strlen(*path) != plen) {
		free(*path);
		*path = NULL;
		return -1;
	}
	*word = tok[3];
	return 0;
}

int arl_k8s_collect_parse(char *out, const struct arl_artifact_spec *specs, size_t nspecs,
                          const struct arl_artifact_sink *sink)
{
	bool in_file = false, open = false;
	int64_t want = 0, got = 0;
	char *save = NULL, why[160];
	int ret = -1;

	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t spec;
		int64_t size;
		char *path = NULL, *word = NULL;

		if (in_file && strcmp(line, "E")) {
			/* Decoded line by line: 76 characters, whole quanta. */
			size_t n = 0;
			char *bytes = arl_k8s_base64_decode(line, &n);

			if (!bytes)
				goto out;
			got += (int64_t)n;
			if (open && sink->data(sink->arg, bytes, n) < 0) {
				sink->end(sink->arg, "refused");
				open = false;
			}
			free(bytes);
			continue;
		}
		if (in_file) { /* "E" */
			if (open)
				sink->end(sink->arg,
				          got == want ? NULL : "changed while it was read");
			in_file = open = false;
			continue;
		}
		if ((line[0] != 'B' && line[0] != 'X') || line[1] != ' ' ||
		    parse_head(line + 2, nspecs, &spec, &size, &path, &word) < 0)
			goto out;
		if (line[0] == 'X') {
			if (!word) {
				free(path);
				goto out;
			}
			if (sink->begin(sink->arg, spec, path, size) == 0)
				sink->end(sink->arg, reason_text(word, size, specs[spec].max_size,
				                                 why, sizeof(why)));
		} else {
			open = sink->begin(sink->arg, spec, path, size) == 0;
			in_file = true;
			want = size;
			got = 0;
		}
		free(path);
	}
	ret = in_file ? -1 : 0;
out:
	if (open)
		sink->end(sink->arg, "the collector's output is malformed");
	return ret;
}

int arl_k8s_collect(void *state, struct arl_sandbox *sb, const struct arl_artifact_spec *specs,
                    size_t nspecs, const struct arl_artifact_sink *sink, int64_t deadline_ms,
                    struct arl_err *err)
{
	struct arl_step step = {0};
	struct arl_step_result res = {0};
	struct arl_exec_ctx ctx = {.deadline_ms = deadline_ms};
	enum arl_class cls;
	size_t k = 0;
	int ret = -1;

	step.name = "collect-artifacts";
	step.type = ARL_STEP_COMMAND;
	step.argc = 5 + 2 * nspecs;
	step.argv = arl_xcalloc(step.argc + 1, sizeof(*step.argv));
	step.argv[k++] = arl_xstrdup("sh");
	step.argv[k++] = arl_xstrdup("-c");
	step.argv[k++] = arl_xstrdup(script);
	step.argv[k++] = arl_xstrdup("arl-collect");
	step.argv[k++] = arl_xasprintf("%d", ARL_K8S_COLLECT_BUDGET);
	for (size_t i = 0; i < nspecs; i++) {
		step.argv[k++] = arl_xasprintf("%" PRId64, specs[i].max_size);
		step.argv[k++] = arl_xstrdup(specs[i].path);
	}
	if (arl_backend_exec(&arl_backend_kubernetes, state, sb, &step, &ctx, &res, &cls, err) < 0)
		goto out;
	if (cls != ARL_CLASS_NONE) {
		arl_error(
		    err, ARL_E_BACKEND, "the collecting Task %s%s%.200s",
		    cls == ARL_CLASS_TIMEOUT ? "timed out"
		                             : "failed (the image needs sh, base64, wc and tr)",
		    res.err.data && res.err.data[0] ? ": " : "", res.err.data ? res.err.data : "");
		goto out;
	}
	if (res.out.truncated) {
		arl_error(
		    err, ARL_E_BACKEND,
		    "the collecting Task's output passed --capture-max; raise it or keep fewer "
		    "bytes");
		goto out;
	}
	if (arl_k8s_collect_parse(res.out.data, specs, nspecs, sink) < 0) {
		arl_error(err, ARL_E_BACKEND, "the collecting Task's output is malformed");
		goto out;
	}
	ret = 0;
out:
	arl_step_result_release(&res);
	for (size_t i = 0; i < k; i++)
		free(step.argv[i]);
	free(step.argv);
	return ret;
}
