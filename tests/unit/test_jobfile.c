/* The job-file front end: durations, templates, the YAML loader's limits, schema expansion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "cmd/builtin_backends.h"
#include "jobfile/expand.h"
#include "jobfile/job.h"
#include "jobfile/schema.h"
#include "jobfile/template.h"
#include "util.h"
#include "jobfile/yaml_load.h"
#include "local/local_pool.h"

static void test_durations(void **state)
{
	static const struct {
		const char *in;
		int64_t ms;
	} ok[] = {{"300ms", 300},     {"30s", 30000},        {"5m", 300000},
	          {"1h30m", 5400000}, {"1.5s", 1500},        {"90", 90000},
	          {"0", 0},           {"1m30s500ms", 90500}, {"0.25h", 900000}};
	static const char *const bad[] = {"",   "abc",  "1.5", "-5",   "1h30",
	                                  "2d", "10 s", "s",   "1..5s"};
	/* The longest, 1e15 ms, either way it is written (bare seconds overflowed ms before). */
	static const char *const longest[] = {"1000000000000", "1000000000000s"};
	static const char *const too_long[] = {"1000000000001", "1000000000001s",
	                                       "9223372036854775"};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(arl_parse_duration(ok[i].in, &ms), 0);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(arl_parse_duration(bad[i], &ms), -1);
	for (size_t i = 0; i < sizeof(longest) / sizeof(longest[0]); i++) {
		assert_int_equal(arl_parse_duration(longest[i], &ms), 0);
		assert_int_equal(ms, INT64_C(1000000000000000));
	}
	for (size_t i = 0; i < sizeof(too_long) / sizeof(too_long[0]); i++)
		assert_int_equal(arl_parse_duration(too_long[i], &ms), -1);
}

static char *render(const char *s, const char *item_json, bool runtime, bool *deferred)
{
	cJSON *item = item_json ? cJSON_Parse(item_json) : NULL;
	struct arl_tmpl_ctx c = {.item = item, .job_name = "job-1"};
	struct arl_err err = ARL_ERR_INIT;
	char *out = NULL;

	if (runtime) {
		c.run_id = "7";
		c.run_name = "nightly";
		c.attempt = "2";
	}
	if (arl_tmpl_render(s, &c, &out, deferred, &err) < 0)
		out = arl_xasprintf("ERROR: %s", err.msg);
	cJSON_Delete(item);
	return out;
}

static void expect(const char *tmpl, const char *item, bool runtime, const char *want)
{
	bool deferred = false;
	char *got = render(tmpl, item, runtime, &deferred);

	assert_string_equal(got, want);
	free(got);
}

static void test_templates(void **state)
{
	(void)state;
	expect("id={{ item.id }}", "{\"id\": 42}", false, "id=42");
	expect("{{item.a.b}}-{{ item.list.1 }}", "{\"a\": {\"b\": \"x\"}, \"list\": [1, 2]}", false,
	       "x-2");
	expect("{{ job.name }}", NULL, false, "job-1");
	expect("{{ \"{{\" }} literal", NULL, false, "{{ literal");
	expect("run {{ run.id }} {{ run.name }} try {{ attempt }}", NULL, true,
	       "run 7 nightly try 2");
	/* Load time keeps run-time expressions for the attempt. */
	expect("try {{ attempt }}", NULL, false, "try {{ attempt }}");
	expect("{{ item.nope }}", "{\"id\": 1}", false,
	       "ERROR: '{{ item.nope }}': the item has no field 'nope'");
	expect("{{ bogus }}", NULL, false,
	       "ERROR: unknown template variable 'bogus' in '{{ bogus }}' (expected item.FIELD, "
	       "params.NAME, job.name, run.id, run.name, attempt or a quoted string)");
	expect("{{ item.id", "{\"id\": 1}", false,
	       "ERROR: unterminated template (missing '}}') in '{{ item.id'");
}

/* An item value holding "{{" must survive the second (per attempt) rendering unchanged. */
static void test_template_values_are_not_templates(void **state)
{
	bool deferred = false;
	char *first = render("{{ item.code }} on try {{ attempt }}", "{\"code\": \"{{ x }}\"}",
	                     false, &deferred);
	char *second;

	(void)state;
	assert_true(deferred);
	second = render(first, NULL, true, NULL);
	assert_string_equal(second, "{{ x }} on try 2");
	free(first);
	free(second);
}

static int load(const char *text, struct arl_diags *d, struct arl_doc **doc)
{
	return arl_yaml_load_mem("t.yaml", text, strlen(text), doc, d);
}

static void test_yaml_limits(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_doc *doc = NULL;
	struct arl_buf deep = ARL_BUF_INIT;
	const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	                   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	                   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	                   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
	                   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	                   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";

	(void)state;
	assert_int_equal(load(bomb, &d, &doc), -1);
	assert_null(doc);
	assert_non_null(strstr(d.v[0].msg, "alias expansion"));
	arl_diags_release(&d);

	for (int i = 0; i < 200; i++)
		arl_buf_addstr(&deep, "[");
	assert_int_equal(load(deep.p, &d, &doc), -1);
	assert_non_null(strstr(d.v[0].msg, "nesting deeper than 64"));
	arl_diags_release(&d);
	arl_buf_release(&deep);

	assert_int_equal(load("a: 1\nb: 2\na: 3\n", &d, &doc), -1);
	assert_string_equal(d.v[0].msg, "duplicate key 'a' (first at 1:1)");
	assert_int_equal(d.v[0].line, 3);
	arl_diags_release(&d);

	assert_int_equal(load("a: \"\xff\"\n", &d, &doc), -1);
	assert_int_equal(d.v[0].line, 1);
	assert_int_equal(d.v[0].col, 5);
	arl_diags_release(&d);

	assert_int_equal(load("a: &x [1, *x]\n", &d, &doc), -1);
	arl_diags_release(&d);

	assert_int_equal(load("a: [1, 2]\nb: {c: d}\n", &d, &doc), 0);
	assert_int_equal(doc->root->nkids, 4);
	assert_int_equal(arl_node_get(doc->root, "b")->loc.line, 2);
	assert_int_equal(arl_node_get(doc->root, "b")->loc.col, 4);
	arl_doc_free(doc);
}

static struct arl_jobfile *parse(const char *text, struct arl_diags *d)
{
	struct arl_jobfile *f = NULL;

	if (arl_jobfile_parse("/nonexistent/suite.yaml", text, strlen(text), &f, d) < 0)
		return NULL;
	return f;
}

static void test_expansion(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_jobfile *f;
	const char *text =
	    "version: 1\n"
	    "pools: {p: {}}\n"
	    "defaults: {env: {A: from-defaults, B: b}, timeout: 1m}\n"
	    "jobs:\n"
	    "  - name: \"m-{{ item.py }}-{{ item.seed }}\"\n"
	    "    env: {A: from-job}\n"
	    "    foreach: {matrix: {py: [\"3.9\", \"3.11\"], seed: [1, 2]}}\n"
	    "    steps:\n"
	    "      - {type: Command, command: [\"echo\", \"{{ job.name }}\"], env: {C: c}}\n";
	static const char *const names[] = {"m-3.9-1", "m-3.9-2", "m-3.11-1", "m-3.11-2"};

	(void)state;
	f = parse(text, &d);
	assert_non_null(f);
	assert_int_equal(f->njobs, 4);
	for (size_t i = 0; i < 4; i++) {
		struct arl_job full;
		struct arl_err err = ARL_ERR_INIT;
		const struct arl_step *s;

		/* foreach jobs are kept light and expanded again when they run */
		assert_true(f->jobs[i].lazy);
		assert_int_equal(f->jobs[i].steps.n, 0);
		assert_int_equal(arl_job_materialize(f, &f->jobs[i], &full, &err), 0);
		assert_string_equal(full.spec_hash, f->jobs[i].spec_hash);
		s = &full.steps.v[0];
		assert_string_equal(f->jobs[i].name, names[i]);
		assert_string_equal(s->argv[1], names[i]);
		assert_string_equal(arl_strmap_get(&s->env, "A"), "from-job");
		assert_string_equal(arl_strmap_get(&s->env, "B"), "b");
		assert_string_equal(arl_strmap_get(&s->env, "C"), "c");
		assert_int_equal(f->jobs[i].timeout_ms, 60000);
		assert_string_equal(s->name, "step-1");
		arl_job_release(&full);
	}
	assert_string_equal(f->jobs[0].key, "suite/m-3.9-1");
	arl_jobfile_free(f);
	arl_diags_release(&d);
}

static void assert_steps_equal(const struct arl_steps *a, const struct arl_steps *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct arl_step *x = &a->v[i], *y = &b->v[i];

		assert_string_equal(x->name, y->name);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->argc, y->argc);
		for (size_t k = 0; k < x->argc; k++)
			assert_string_equal(x->argv[k], y->argv[k]);
		assert_true(!x->work_dir == !y->work_dir);
		if (x->work_dir)
			assert_string_equal(x->work_dir, y->work_dir);
		assert_int_equal(x->env.n, y->env.n);
		for (size_t k = 0; k < x->env.n; k++)
			assert_string_equal(arl_strmap_get(&y->env, x->env.v[k].key),
			                    x->env.v[k].val);
		assert_int_equal(x->timeout_ms, y->timeout_ms);
		assert_int_equal(x->metrics_json, y->metrics_json);
		assert_true(!x->path == !y->path);
		if (x->path)
			assert_string_equal(x->path, y->path);
		assert_int_equal(x->content_len, y->content_len);
		if (x->content)
			assert_memory_equal(x->content, y->content, x->content_len);
	}
}

/* What the loader keeps of a job (lazy or not) is what expanding it again gives. */
static void assert_job_matches(const struct arl_job *kept, const struct arl_job *again)
{
	assert_string_equal(kept->name, again->name);
	assert_string_equal(kept->key, again->key);
	assert_int_equal(kept->pool, again->pool);
	assert_int_equal(kept->timeout_ms, again->timeout_ms);
	assert_int_equal(kept->prepare_timeout_ms, again->prepare_timeout_ms);
	assert_int_equal(kept->backoff_ms, again->backoff_ms);
	assert_int_equal(kept->retries, again->retries);
	assert_int_equal(kept->retry_on, again->retry_on);
	assert_int_equal(kept->keep_alive, again->keep_alive);
	assert_int_equal(kept->runtime_templates, again->runtime_templates);
	assert_ptr_equal(kept->node, again->node);
	assert_int_equal(kept->labels.n, again->labels.n);
	for (size_t k = 0; k < kept->labels.n; k++)
		assert_string_equal(arl_strmap_get(&again->labels, kept->labels.v[k].key),
		                    kept->labels.v[k].val);
}

/*
 * The job that runs is the job that was checked: a lazy job expanded again on the worker
 * (no loader checks, a read-only file) has the steps, callbacks, env, limits and item the
 * load-time hash was computed from, and a job kept whole expands again to the same steps.
 */
static void test_reexpansion_is_the_validated_job(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_jobfile *f;
	const char *text =
	    "version: 1\n"
	    "pools: {p: {replicas: 2}, q: {}}\n"
	    "defaults:\n"
	    "  pool: p\n"
	    "  env: {A: d, B: \"{{ job.name }}\"}\n"
	    "  labels: {team: t, of: \"{{ job.name }}\"}\n"
	    "  timeout: 2m\n"
	    "  retries: 3\n"
	    "  retryOn: [failed]\n"
	    "  callbacks: {on_task_complete: [{type: Command, command: [echo, done]}]}\n"
	    "jobs:\n"
	    "  - name: \"i-{{ item.k }}\"\n"
	    "    prepareTimeout: 5m\n"
	    "    backoff: 0s\n"
	    "    keepAlive: true\n"
	    "    labels: {kind: \"{{ item.k }}\"}\n"
	    "    env: {A: \"job-{{ item.k }}\"}\n"
	    "    foreach: {items: [{k: x, n: 1}, {k: y, n: [1, 2]}]}\n"
	    "    steps:\n"
	    "      - {type: Command, name: run, command: [sh, -c, \"echo {{ item.n }} "
	    "{{ attempt }}\"], workDir: /workspace/w, timeout: 10s, metrics: json,\n"
	    "         env: {C: \"{{ run.id }}\"}}\n"
	    "      - {type: FilePatch, path: \"/workspace/{{ item.k }}.txt\", content: \"k={{ "
	    "item.k }}\\n\"}\n"
	    "    callbacks:\n"
	    "      on_task_failure: [{type: Command, command: [echo, \"{{ item.k }} failed\"]}]\n"
	    "  - name: \"m-{{ item.a }}-{{ item.b }}\"\n"
	    "    pool: q\n"
	    "    labels: {kind: m}\n"
	    "    foreach: {matrix: {a: [1, true], b: [\"s\", 2.5]}}\n"
	    "    steps: [{type: Command, command: [echo, \"{{ item.a }}/{{ item.b }}\"]}]\n"
	    "  - name: whole\n"
	    "    labels: {kind: w}\n"
	    "    steps:\n"
	    "      - {type: Command, command: [echo, \"{{ job.name }} {{ run.name }}\"]}\n"
	    "      - type: FilePatch\n"
	    "        path: /workspace/e\n"
	    "        content:\n";
	const struct arl_job *whole;
	struct arl_job again;

	(void)state;
	f = parse(text, &d);
	assert_int_equal(d.errors, 0);
	assert_non_null(f);
	assert_int_equal(f->njobs, 7);
	for (size_t i = 0; i < 6; i++) {
		const struct arl_job *j = &f->jobs[i];
		struct arl_job full;
		struct arl_err err = ARL_ERR_INIT;
		char hash[33];

		assert_true(j->lazy);
		assert_int_equal(arl_job_materialize(f, j, &full, &err), 0);
		assert_job_matches(j, &full);
		assert_false(full.lazy);
		/* Computed at load from the job as validated, before its steps were dropped. */
		arl_job_spec_hash(&full, &f->pools[full.pool], hash);
		assert_string_equal(hash, j->spec_hash);
		assert_string_equal(full.item, j->item);
		/* A job's own callbacks replace the defaults' whole. */
		assert_int_equal(full.on_complete.n, i < 2 ? 0 : 1);
		assert_int_equal(full.on_failure.n, i < 2 ? 1 : 0);
		arl_job_release(&full);
	}
	assert_string_equal(arl_strmap_get(&f->jobs[1].labels, "kind"), "y");
	assert_string_equal(arl_strmap_get(&f->jobs[5].labels, "kind"), "m");
	assert_string_equal(arl_strmap_get(&f->jobs[5].labels, "of"), "m-true-2.5");
	assert_int_equal(f->jobs[5].pool, 1);
	assert_true(f->jobs[0].runtime_templates);
	/* A job kept whole: the worker's expansion gives the very steps validation kept. */
	whole = &f->jobs[6];
	assert_false(whole->lazy);
	assert_true(arl_expand_job(f, whole->node, NULL, "", NULL, &d, &again));
	assert_int_equal(d.errors, 0);
	assert_job_matches(whole, &again);
	assert_steps_equal(&whole->steps, &again.steps);
	assert_steps_equal(&whole->on_success, &again.on_success);
	assert_steps_equal(&whole->on_failure, &again.on_failure);
	assert_steps_equal(&whole->on_complete, &again.on_complete);
	arl_job_release(&again);
	arl_jobfile_free(f);
	arl_diags_release(&d);
}

static void test_all_errors_reported(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	const char *text = "version: 1\n"
	                   "pools: {p: {replicas: 0}}\n"
	                   "jobs:\n"
	                   "  - name: a\n"
	                   "    retries: 11\n"
	                   "    timeout: soon\n"
	                   "    steps: [{type: Shell}]\n";

	(void)state;
	assert_null(parse(text, &d));
	assert_int_equal(d.errors, 4);
	arl_diags_release(&d);
}

static void test_spec_hash(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	const char *a = "version: 1\npools: {p: {}}\njobs:\n  - {name: j, steps: [{type: Command, "
	                "command: [\"true\"]}]}\n";
	const char *b = "version: 1\npools: {p: {}}\njobs:\n  - {name: j, steps: [{type: Command, "
	                "command: [\"false\"]}]}\n";
	struct arl_jobfile *fa = parse(a, &d), *fa2 = parse(a, &d), *fb = parse(b, &d);
	char ha[33], ha2[33], hb[33];

	(void)state;
	assert_non_null(fa);
	assert_non_null(fb);
	arl_job_spec_hash(&fa->jobs[0], &fa->pools[0], ha);
	arl_job_spec_hash(&fa2->jobs[0], &fa2->pools[0], ha2);
	arl_job_spec_hash(&fb->jobs[0], &fb->pools[0], hb);
	assert_string_equal(ha, ha2);
	assert_string_not_equal(ha, hb);
	arl_jobfile_free(fa);
	arl_jobfile_free(fa2);
	arl_jobfile_free(fb);
	arl_diags_release(&d);
}

/*
 * A pool's part of the spec hash is what earlier versions recorded (these values come from
 * the version before backends owned their pool keys), so --resume still trusts their results.
 */
static void test_spec_hash_is_stable(void **state)
{
	static const struct {
		const char *pool, *hash;
	} cases[] = {
	    {"{}", "66e5d405a6b7bd4780938007b4580fd3"},
	    {"{isolation: none, network: true, workspace: /tmp}",
	     "fd93cfa921061f3dcdff6da0ec337869"},
	    {"{backend: kubernetes, namespace: ns, create: {image: img, sidecarImage: sc, "
	     "testbedPath: /tb}}",
	     "206c27ba94ac7a47f18e74a96d1af8ad"},
	    {"{backend: kubernetes}", "cd599094432db246f98a7e43152a68d2"},
	    /* Another backend's keys have no effect but were hashed all the same. */
	    {"{isolation: none, namespace: foo}", "3938f4cc2897537f13278a324bfe6f36"},
	    {"{backend: kubernetes, network: true}", "d5d52b65e8db3b072570dc740e400d93"},
	    {"{isolation: none, network: true, create: {image: img, testbedPath: /tb}}",
	     "95927b6aabaaa373c2bc57fc4e3955cd"},
	    {"{backend: kubernetes, namespace: ns, isolation: none, workspace: /tmp, "
	     "create: {image: img, sidecarImage: sc}}",
	     "f1df5493d58736cec25a5fe0c8adfadd"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct arl_diags d = ARL_DIAGS_INIT;
		char *text =
		    arl_xasprintf("version: 1\npools: {p: %s}\njobs:\n  - {name: j, steps: "
		                  "[{type: Command, command: [\"true\"]}]}\n",
		                  cases[i].pool);
		struct arl_jobfile *f = parse(text, &d);

		assert_non_null(f);
		assert_string_equal(f->jobs[0].spec_hash, cases[i].hash);
		arl_jobfile_free(f);
		arl_diags_release(&d);
		free(text);
	}
}

/* One rule for FilePatch paths on local pools: the backend's and validate's (job.h). */
static void test_filepatch_local_rule(void **state)
{
	static const struct {
		bool container; /* isolation bwrap: the agent writes it; else only /workspace */
		const char *path;
		size_t settled;  /* 0: all of it */
		const char *why; /* NULL: accepted */
	} cases[] = {
	    {false, "/workspace/a.txt", 0, NULL},
	    {false, "/workspace/./d/a.txt", 0, NULL},
	    {false, "/tmp/a.txt", 0, "is outside /workspace"},
	    {false, "/etc/passwd", 0, "is outside /workspace"},
	    {false, "/workspace/../etc/x", 0, "must not contain '..'"},
	    {false, "/workspace/", 0, "names a directory"},
	    {false, "/workspace", 0, "names a directory"},
	    {false, "relative.txt", 0, "must be an absolute path inside /workspace"},
	    /* Only what comes before a run-time template is judged. */
	    {false, "/tmp/{{ attempt }}/x", 5, "is outside /workspace"},
	    {false, "/workspace/{{ attempt }}", 11, NULL},
	    {false, "/{{ run.name }}/x", 1, NULL},
	    /* In a container: any file of its own root, but the kernel's and the agent's. */
	    {true, "/workspace/a.txt", 0, NULL},
	    {true, "/tmp/a.txt", 0, NULL},
	    {true, "/usr/local/lib/x.pth", 0, NULL},
	    {true, "/etc/./hosts", 0, NULL},
	    {true, "/proc/sys/kernel/x", 0, "/proc, /sys and /dev are the kernel's"},
	    {true, "/./sys/x", 0, "/proc, /sys and /dev are the kernel's"},
	    {true, "/dev/null", 0, "/proc, /sys and /dev are the kernel's"},
	    {true, "/.arl-batch-agent", 0, "'/.arl-batch-agent' is the sandbox agent's own"},
	    {true, "/.arl-layers/sb/x", 0, "is the sandbox agent's own"},
	    {true, "/etc/../proc/x", 0, "must not contain '..'"},
	    {true, "/", 0, "names a directory"},
	    {true, "/tmp/", 0, "names a directory"},
	    {true, "/workspace", 0, "names a directory"},
	    {true, "relative.txt", 0, "must be an absolute path"},
	    {true, "/proc/{{ attempt }}", 6, "the kernel's"},
	    {true, "/{{ run.name }}/x", 1, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = cases[i].path;
		char *why = arl_filepatch_local_refusal(
		    cases[i].container, p, cases[i].settled ? cases[i].settled : strlen(p));

		if (!cases[i].why) {
			assert_null(why);
		} else {
			assert_non_null(why);
			assert_non_null(strstr(why, cases[i].why));
		}
		free(why);
	}
}

/* validate refuses on local pools what they refuse at run time; Kubernetes pools decide. */
static void test_filepatch_path_by_backend(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	const char *local = "version: 1\npools: {p: {}}\njobs:\n  - {name: j, steps: [{type: "
	                    "FilePatch, path: /proc/x, content: a}]}\n";
	/* A container's /tmp is its own; isolation none has only /workspace. */
	const char *none =
	    "version: 1\npools: {p: {isolation: none}, c: {}}\njobs:\n  - {name: "
	    "j, pool: p, steps: [{type: FilePatch, path: /tmp/x, content: a}]}\n  - {name: "
	    "k, pool: c, steps: [{type: FilePatch, path: /tmp/x, content: a}]}\n";
	const char *k8s = "version: 1\npools: {p: {backend: kubernetes}}\njobs:\n  - {name: j, "
	                  "steps: [{type: FilePatch, path: /tmp/x, content: a}]}\n";
	struct arl_jobfile *f;

	(void)state;
	assert_null(parse(local, &d));
	assert_int_equal(d.errors, 1);
	assert_int_equal(d.v[0].line, 4);
	assert_int_equal(d.v[0].col, 47);
	assert_non_null(strstr(d.v[0].msg, "FilePatch path '/proc/x' is refused"));
	assert_non_null(strstr(d.v[0].msg, "(local pool 'p')"));
	arl_diags_release(&d);
	assert_null(parse(none, &d));
	assert_int_equal(d.errors, 1);
	assert_int_equal(d.v[0].line, 4);
	assert_non_null(strstr(d.v[0].msg, "FilePatch path '/tmp/x' is outside /workspace"));
	arl_diags_release(&d);
	f = parse(k8s, &d);
	assert_non_null(f);
	assert_int_equal(d.errors, 0);
	arl_jobfile_free(f);
	arl_diags_release(&d);
}

/*
 * image: on a local pool and on jobs (rendered from the item, kept by lazy jobs, hashed only
 * when set); refused with file:line:col when empty, deferred or on a kubernetes pool.
 */
static void test_images(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	const char *ok =
	    "version: 1\npools: {p: {image: \"base:1\"}, q: {}}\njobs:\n"
	    "  - {name: j, pool: p, steps: [{type: Command, command: [\"true\"]}]}\n"
	    "  - name: \"i-{{ item.n }}\"\n    pool: q\n    image: \"img:{{ item.n }}\"\n"
	    "    foreach: {items: [{n: 1}, {n: 2}]}\n"
	    "    steps: [{type: Command, command: [\"true\"]}]\n";
	const char *bad =
	    "version: 1\npools: {p: {image: \"\"}, k: {backend: kubernetes}}\njobs:\n"
	    "  - {name: a, pool: p, image: \"x{{ run.id }}\", steps: [{type: Command, "
	    "command: [\"true\"]}]}\n"
	    "  - {name: b, pool: k, image: img, steps: [{type: Command, command: "
	    "[\"true\"]}]}\n";
	struct arl_jobfile *f;
	char plain[33];

	(void)state;
	f = parse(ok, &d);
	assert_non_null(f);
	assert_int_equal(f->njobs, 3);
	assert_string_equal(arl_local_pool(&f->pools[0])->image, "base:1");
	assert_null(f->jobs[0].image);
	assert_true(f->jobs[1].lazy);
	assert_string_equal(f->jobs[1].image, "img:1");
	assert_string_equal(f->jobs[2].image, "img:2");
	assert_string_not_equal(f->jobs[1].spec_hash, f->jobs[2].spec_hash);
	/* The run folds the image's id in: another id, another hash. */
	memcpy(plain, f->jobs[1].spec_hash, sizeof(plain));
	arl_job_spec_hash_fold(f->jobs[1].spec_hash, "sha256:1");
	assert_string_not_equal(f->jobs[1].spec_hash, plain);
	memcpy(plain, f->jobs[1].spec_hash, sizeof(plain));
	arl_job_spec_hash_fold(f->jobs[2].spec_hash, "sha256:2");
	arl_job_spec_hash_fold(f->jobs[1].spec_hash, "sha256:1");
	assert_string_not_equal(f->jobs[1].spec_hash, plain);
	{
		struct arl_job full;
		struct arl_err err = ARL_ERR_INIT;

		assert_int_equal(arl_job_materialize(f, &f->jobs[2], &full, &err), 0);
		assert_string_equal(full.image, "img:2");
		arl_job_release(&full);
	}
	arl_jobfile_free(f);
	arl_diags_release(&d);

	assert_null(parse(bad, &d));
	assert_int_equal(d.errors, 3);
	assert_int_equal(d.v[0].line, 2);
	assert_non_null(strstr(d.v[0].msg, "'image' must not be empty"));
	assert_int_equal(d.v[1].line, 4);
	assert_int_equal(d.v[1].col, 31);
	assert_non_null(strstr(d.v[1].msg, "'image' cannot use run.* or attempt"));
	assert_int_equal(d.v[2].line, 5);
	assert_int_equal(d.v[2].col, 31);
	assert_non_null(strstr(d.v[2].msg, "names its own image, which kubernetes pool 'k' "
	                                   "cannot run: a WarmPool runs one image"));
	arl_diags_release(&d);
	/* A record may name a store image, never a host path for the runner to open. */
	assert_null(parse("version: 1\npools: {p: {}}\njobs:\n  - name: \"x-{{ item.n }}\"\n"
	                  "    image: \"{{ item.ref }}\"\n    foreach: {items: [{n: 1, ref: "
	                  "\"docker-archive:/etc/shadow\"}]}\n    steps: [{type: Command, command: "
	                  "[\"true\"]}]\n",
	                  &d));
	assert_int_equal(d.errors, 1);
	assert_int_equal(d.v[0].line, 5);
	assert_non_null(strstr(d.v[0].msg, "must be a name in the image store"));
	arl_diags_release(&d);
}

/* A pool binds nothing: a template there says so; a quoted literal still renders. */
static void test_pool_templates(void **state)
{
	struct arl_tmpl_ctx c = {.no_vars = "pool 'p'"};
	struct arl_err err = ARL_ERR_INIT;
	char *out = NULL;

	(void)state;
	assert_int_equal(arl_tmpl_render("/a/{{ item.dir }}", &c, &out, NULL, &err), -1);
	assert_string_equal(err.msg, "'{{ item.dir }}': templates are not allowed in pool 'p'");
	arl_err_clear(&err);
	assert_int_equal(arl_tmpl_render("/a/{{ run.id }}", &c, &out, NULL, &err), -1);
	assert_string_equal(err.msg, "'{{ run.id }}': templates are not allowed in pool 'p'");
	assert_int_equal(arl_tmpl_render("/a/{{ \"{{\" }}b", &c, &out, NULL, &err), 0);
	assert_string_equal(out, "/a/{{b");
	free(out);
}

/* Parameters render everywhere, pools included; a value is text, never a template. */
static void test_param_templates(void **state)
{
	cJSON *params = cJSON_Parse("{\"model\": \"m{{ item.x }}\", \"t\": \"0.2\"}");
	struct arl_tmpl_ctx c = {.params = params, .no_vars = "pool 'p'"};
	struct arl_err err = ARL_ERR_INIT;
	char *out = NULL;
	bool deferred = true;

	(void)state;
	assert_int_equal(
	    arl_tmpl_render("{{ params.t }}/{{params.model}}", &c, &out, &deferred, &err), 0);
	assert_string_equal(out, "0.2/m{{ item.x }}");
	assert_false(deferred);
	free(out);
	/* Beside a kept run-time expression the value is escaped, so it survives rendering 2. */
	c.no_vars = NULL;
	assert_int_equal(
	    arl_tmpl_render("{{ params.model }} {{ attempt }}", &c, &out, &deferred, &err), 0);
	assert_true(deferred);
	assert_string_equal(out, "m{{ \"{{\" }} item.x }} {{ attempt }}");
	free(out);
	assert_int_equal(arl_tmpl_render("{{ params.nope }}", &c, &out, NULL, &err), -1);
	assert_string_equal(err.msg, "'{{ params.nope }}': the file declares no parameter 'nope' "
	                             "(see 'params:')");
	arl_err_clear(&err);
	assert_int_equal(arl_tmpl_render("{{ params }}", &c, &out, NULL, &err), -1);
	arl_err_clear(&err);
	c.params = NULL; /* a file without 'params:' */
	assert_int_equal(arl_tmpl_render("{{ params.t }}", &c, &out, NULL, &err), -1);
	arl_err_clear(&err);
	cJSON_Delete(params);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_templates),
	    cmocka_unit_test(test_template_values_are_not_templates),
	    cmocka_unit_test(test_yaml_limits),
	    cmocka_unit_test(test_expansion),
	    cmocka_unit_test(test_reexpansion_is_the_validated_job),
	    cmocka_unit_test(test_all_errors_reported),
	    cmocka_unit_test(test_spec_hash),
	    cmocka_unit_test(test_spec_hash_is_stable),
	    cmocka_unit_test(test_filepatch_local_rule),
	    cmocka_unit_test(test_filepatch_path_by_backend),
	    cmocka_unit_test(test_pool_templates),
	    cmocka_unit_test(test_images),
	    cmocka_unit_test(test_param_templates),
	};

	arl_register_builtin_backends(); /* the pools' backends, as main() does */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
