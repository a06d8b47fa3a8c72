/*
 * foreach datasets: the streamed .jsonl reader (positions, the UTF-8/NUL precedence, numbers
 * out of range, lines longer than the read window), reading records back and noticing an edited
 * file, and what a job file keeps per foreach job (no item text for .jsonl records, one block
 * for name, key and labels, the duplicate-name check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmd/builtin_backends.h"
#include "jobfile/dataset.h"
#include "jobfile/job.h"
#include "jobfile/expand.h"
#include "jobfile/schema.h"
#include "jobfile/select.h"
#include "util.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/arl-test-dataset-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *cmd = arl_xasprintf("rm -rf '%s'", dir);
	int rc = system(cmd);

	(void)state;
	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* Writes @len bytes of @text to DIR/@name; returns the path (owned). */
static char *put(const char *name, const char *text, size_t len)
{
	char *path = arl_xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static char *puts_(const char *name, const char *text)
{
	return put(name, text, strlen(text));
}

/* Loads DIR/@name holding @text; *d gets the diagnostics. */
static int load(struct arl_dataset *ds, const char *name, const char *text, struct arl_diags *d)
{
	char *path = put(name, text, strlen(text));
	struct arl_loc ref = {"job.yaml", 3, 7};
	int rc = arl_dataset_load(ds, name, path, ref, d);

	free(path);
	return rc;
}

static char *print(cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);
	char *out = arl_xstrdup(s);

	cJSON_free(s);
	cJSON_Delete(v);
	return out;
}

static void test_jsonl_records(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_dataset ds;
	struct arl_err err = ARL_ERR_INIT;
	cJSON *v;
	char *s;

	(void)state;
	assert_int_equal(load(&ds, "a.jsonl",
	                      "{\"id\": 1}\n\n  \n{\"id\": \"two\", \"x\": [1, 2]}\r\n{\"id\": 3}",
	                      &d),
	                 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(ds.n, 3);
	assert_null(ds.items);
	assert_int_equal(ds.lines[0], 1);
	assert_int_equal(ds.lines[1], 4);
	assert_int_equal(ds.lines[2], 5);
	/* in order through the window, then each alone as a running job reads it */
	s = print(arl_dataset_take(&ds, 1, &err));
	assert_string_equal(s, "{\"id\":\"two\",\"x\":[1,2]}");
	free(s);
	assert_int_equal(arl_dataset_read(&ds, 2, &v, &err), 0);
	s = print(v);
	assert_string_equal(s, "{\"id\":3}");
	free(s);
	arl_dataset_trim(&ds, false);
	assert_null(ds.lines);
	assert_int_equal(ds.fd, -1);
	assert_int_equal(arl_dataset_read(&ds, 0, &v, &err), 0); /* opens the file again */
	s = print(v);
	assert_string_equal(s, "{\"id\":1}");
	free(s);
	arl_dataset_release(&ds);
	arl_diags_release(&d);
}

/* A .json array is parsed an element at a time into the same spans; a .csv stays trees. */
static void test_json_records(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_dataset ds;
	cJSON *v;
	char *s;

	(void)state;
	assert_int_equal(
	    load(&ds, "a.json", "\xEF\xBB\xBF [\n{\"id\":\n 1}\f,\n\n {\"id\": [2]} ]\n", &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(ds.n, 2);
	assert_non_null(ds.recs);
	assert_null(ds.items);
	assert_true(ds.fd >= 0);
	assert_int_equal(ds.lines[0], 2);
	assert_int_equal(ds.lines[1], 5);
	s = print(arl_dataset_take(&ds, 0, &err));
	assert_string_equal(s, "{\"id\":1}");
	free(s);
	assert_int_equal(arl_dataset_read(&ds, 1, &v, &err), 0);
	s = print(v);
	assert_string_equal(s, "{\"id\":[2]}");
	free(s);
	arl_dataset_release(&ds);

	assert_int_equal(load(&ds, "b.csv", "id,x\n1,\"a,b\"\n", &d), 0);
	assert_int_equal(ds.n, 1);
	assert_null(ds.recs);
	s = print(arl_dataset_take(&ds, 0, &err));
	assert_string_equal(s, "{\"id\":\"1\",\"x\":\"a,b\"}");
	free(s);
	assert_null(arl_dataset_take(&ds, 0, &err)); /* taken once */
	arl_dataset_release(&ds);
	arl_diags_release(&d);
}

static void test_jsonl_errors(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_dataset ds;

	(void)state;
	assert_int_equal(load(&ds, "e.jsonl", "{\"x\": 1}\n{\"é\": tru}\n{\"x\": 1} 2\n", &d), -1);
	assert_int_equal(d.n, 2);
	assert_string_equal(d.v[0].path, "e.jsonl");
	assert_int_equal(d.v[0].line, 2);
	assert_int_equal(d.v[0].col, 7); /* columns count code points: "é" is one */
	assert_non_null(strstr(d.v[0].msg, "invalid JSON in record on line 2"));
	assert_int_equal(d.v[1].line, 3);
	assert_int_equal(d.v[1].col, 9);
	assert_non_null(strstr(d.v[1].msg, "text after the value"));
	arl_dataset_release(&ds);
	arl_diags_release(&d);

	/* Invalid UTF-8 anywhere is the one error, even after a bad record; then a NUL byte. */
	assert_int_equal(load(&ds, "u.jsonl", "nope\n{\"x\": 1}\n{\"x\": \"\xff\"}\n", &d), -1);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 1);
	assert_int_equal(d.v[0].col, 1);
	assert_string_equal(d.v[0].msg, "dataset is not valid UTF-8");
	arl_dataset_release(&ds);
	arl_diags_release(&d);
	{
		static const char nul[] = "nope\n{\"x\": \"a\"}\x00\n";
		char *path = put("n.jsonl", nul, sizeof(nul) - 1);
		struct arl_loc ref = {"job.yaml", 1, 1};

		assert_int_equal(arl_dataset_load(&ds, "n.jsonl", path, ref, &d), -1);
		free(path);
	}
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 2);
	assert_int_equal(d.v[0].col, 11);
	assert_string_equal(d.v[0].msg, "NUL byte in a dataset");
	arl_dataset_release(&ds);
	arl_diags_release(&d);

	/* An unreadable file is reported at the job file's 'file:' node. */
	{
		struct arl_loc ref = {"job.yaml", 3, 7};

		assert_int_equal(
		    arl_dataset_load(&ds, "missing.jsonl", "/nonexistent/x.jsonl", ref, &d), -1);
	}
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].path, "job.yaml");
	assert_int_equal(d.v[0].line, 3);
	assert_non_null(strstr(d.v[0].msg, "cannot open '/nonexistent/x.jsonl'"));
	arl_dataset_release(&ds);
	arl_diags_release(&d);
}

static void test_number_out_of_range(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_dataset ds;

	(void)state;
	/* 1e999999 became infinity, which cJSON prints as null: refused where it is written. */
	assert_int_equal(
	    load(&ds, "r.jsonl", "{\"x\": 1}\n{\"s\": \"1e999\", \"n\": [-1e999999]}\n", &d), -1);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 2);
	assert_int_equal(d.v[0].col, 22);
	assert_string_equal(d.v[0].msg, "number out of range in record on line 2: '-1e999999' "
	                                "does not fit a double");
	arl_dataset_release(&ds);
	arl_diags_release(&d);

	assert_int_equal(load(&ds, "r.json", "[{\"x\": 1},\n {\"x\": 1E400}]", &d), -1);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 2);
	assert_int_equal(d.v[0].col, 8);
	assert_non_null(strstr(d.v[0].msg, "number out of range: '1E400'"));
	arl_dataset_release(&ds);
	arl_diags_release(&d);

	/* Large but finite, or too small (it rounds to 0), is a number. */
	assert_int_equal(
	    load(&ds, "ok.jsonl", "{\"a\": 1.7e308, \"b\": 1e-999999, \"c\": -0}\n", &d), 0);
	assert_int_equal(d.n, 0);
	arl_dataset_release(&ds);
	arl_diags_release(&d);
}

/* Lines longer than the 1 MiB read window, around short ones. */
static void test_long_records(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_dataset ds;
	size_t big = (3u << 20) / 2, n = 0;
	char *text = arl_xmalloc(2 * big + 100), *path;
	struct arl_loc ref = {"job.yaml", 1, 1};
	cJSON *v;

	(void)state;
	for (int r = 0; r < 2; r++) {
		n += (size_t)sprintf(text + n, "{\"i\": %d}\n{\"s\": \"", r);
		memset(text + n, 'a' + r, big);
		n += big;
		n += (size_t)sprintf(text + n, "\"}\n");
	}
	path = put("long.jsonl", text, n);
	assert_int_equal(arl_dataset_load(&ds, "long.jsonl", path, ref, &d), 0);
	assert_int_equal(ds.n, 4);
	for (size_t i = 0; i < 4; i++) {
		v = arl_dataset_take(&ds, i, &err);
		assert_non_null(v);
		if (i % 2)
			assert_int_equal(strlen(cJSON_GetObjectItem(v, "s")->valuestring), big);
		else
			assert_int_equal(cJSON_GetObjectItem(v, "i")->valueint, (int)i / 2);
		cJSON_Delete(v);
	}
	assert_int_equal(arl_dataset_read(&ds, 3, &v, &err), 0);
	assert_int_equal(cJSON_GetObjectItem(v, "s")->valuestring[0], 'b');
	cJSON_Delete(v);
	arl_dataset_release(&ds);
	arl_diags_release(&d);
	free(path);
	free(text);
}

/* A record edited after the file was checked is an error, not a different job. */
static void test_changed_file(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_dataset ds;
	cJSON *v = NULL;
	char *path;

	(void)state;
	assert_int_equal(load(&ds, "c.jsonl", "{\"x\": 1}\n{\"x\": 2}\n", &d), 0);
	path = puts_("c.jsonl", "{\"x\": 1}\n{\"x\": 9}\n"); /* same length, same inode */
	assert_int_equal(arl_dataset_read(&ds, 0, &v, &err), 0);
	cJSON_Delete(v);
	assert_int_equal(arl_dataset_read(&ds, 1, &v, &err), -1);
	assert_string_equal(err.msg, "dataset 'c.jsonl' changed since it was loaded: record 2 is "
	                             "not what was checked");
	arl_err_clear(&err);
	assert_null(arl_dataset_take(&ds, 1, &err));
	assert_non_null(strstr(err.msg, "changed since it was loaded"));
	arl_dataset_release(&ds);
	arl_diags_release(&d);
	free(path);
}

static struct arl_jobfile *parse(const char *text, struct arl_diags *d)
{
	struct arl_jobfile *f = NULL;
	char *path = arl_xasprintf("%s/suite.yaml", dir);

	if (arl_jobfile_parse(path, text, strlen(text), &f, d) < 0)
		f = NULL;
	free(path);
	return f;
}

static void test_jsonl_jobs(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_jobfile *f;
	char *path = puts_("in.jsonl", "{\"id\": \"a\", \"n\": 1}\n{\"id\": \"b\", \"n\": 2.5}\n");
	char *item;
	const char *text = "version: 1\n"
	                   "pools: {p: {}}\n"
	                   "defaults: {labels: {team: t}}\n"
	                   "jobs:\n"
	                   "  - name: \"j-{{ item.id }}\"\n"
	                   "    labels: {n: \"{{ item.n }}\"}\n"
	                   "    foreach: {file: in.jsonl}\n"
	                   "    steps: [{type: Command, command: [echo, \"{{ item.n }}\"]}]\n"
	                   "  - {name: plain, steps: [{type: Command, command: [\"true\"]}]}\n";
	static const char *const items[] = {"{\"id\":\"a\",\"n\":1}", "{\"id\":\"b\",\"n\":2.5}"};
	struct arl_select sel = {.only = "j-b"};

	(void)state;
	f = parse(text, &d);
	assert_non_null(f);
	assert_int_equal(f->njobs, 3);
	assert_int_equal(f->ndatasets, 1);
	for (size_t i = 0; i < 2; i++) {
		const struct arl_job *j = &f->jobs[i];
		struct arl_job full;
		char hash[33];

		assert_true(j->lazy);
		assert_true(j->packed);
		assert_null(j->item); /* read back from the file: see job.h */
		assert_ptr_equal(j->dataset, f->datasets[0]);
		assert_int_equal(j->record, i);
		assert_string_equal(j->name, i ? "j-b" : "j-a");
		assert_string_equal(j->key, i ? "suite/j-b" : "suite/j-a");
		assert_ptr_equal(j->name, j->key + strlen("suite/"));
		assert_string_equal(arl_strmap_get(&j->labels, "team"), "t");
		assert_string_equal(arl_strmap_get(&j->labels, "n"), i ? "2.5" : "1");
		item = NULL;
		assert_int_equal(arl_job_item(j, &item, &err), 0);
		assert_string_equal(item, items[i]);
		free(item);
		/* The hash at load covered the item text, as the expanded job's does. */
		assert_int_equal(arl_job_materialize(f, j, &full, &err), 0);
		assert_string_equal(full.item, items[i]);
		assert_string_equal(full.steps.v[0].argv[1], i ? "2.5" : "1");
		arl_job_spec_hash(&full, &f->pools[0], hash);
		assert_string_equal(hash, j->spec_hash);
		arl_job_release(&full);
	}
	assert_false(f->jobs[2].lazy);
	assert_true(f->jobs[2].packed);
	item = arl_xstrdup("x");
	free(item);
	assert_int_equal(arl_job_item(&f->jobs[2], &item, &err), 0);
	assert_null(item);
	/* Dropping packed jobs frees their blocks (ASan checks the rest). */
	arl_select_apply(&f, 1, &sel);
	assert_int_equal(f->njobs, 1);
	assert_string_equal(f->jobs[0].key, "suite/j-b");
	arl_jobfile_free(f);
	arl_diags_release(&d);
	free(path);
}

/* More datasets than are kept open: the later ones open their file for each read. */
static void test_many_datasets(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_err err = ARL_ERR_INIT;
	char *text = arl_xstrdup("version: 1\npools: {p: {}}\njobs:\n");
	char *path = puts_("one.jsonl", "{\"id\": 1}\n"), *item = NULL;
	struct arl_jobfile *f;

	(void)state;
	for (int i = 0; i < 20; i++) {
		char *more =
		    arl_xasprintf("%s  - {name: \"d%d-{{ item.id }}\", foreach: {file: "
		                  "one.jsonl}, steps: [{type: Command, command: [\"true\"]}]}\n",
		                  text, i);

		free(text);
		text = more;
	}
	f = parse(text, &d);
	assert_non_null(f);
	assert_int_equal(f->ndatasets, 20);
	assert_true(f->datasets[0]->fd >= 0);
	assert_int_equal(f->datasets[19]->fd, -1);
	assert_int_equal(arl_job_item(&f->jobs[19], &item, &err), 0);
	assert_string_equal(item, "{\"id\":1}");
	free(item);
	arl_jobfile_free(f);
	arl_diags_release(&d);
	free(text);
	free(path);
}

/* Names are checked after expansion, against accepted jobs and rejected ones alike. */
static void test_duplicate_names(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	char *path = puts_("dup.jsonl", "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 1}\n");
	const char *text = "version: 1\n"
	                   "pools: {p: {}}\n"
	                   "jobs:\n"
	                   "  - {name: x, timeout: never, steps: [{type: Command, command: [a]}]}\n"
	                   "  - {name: x, steps: [{type: Command, command: [a]}]}\n"
	                   "  - name: \"r{{ item.id }}\"\n"
	                   "    foreach: {file: dup.jsonl}\n"
	                   "    steps: [{type: Command, command: [a]}]\n";

	(void)state;
	assert_null(parse(text, &d));
	assert_int_equal(d.n, 3);
	assert_int_equal(d.v[0].line, 4); /* the bad timeout */
	assert_int_equal(d.v[1].line, 5);
	assert_string_equal(d.v[1].msg, "duplicate job name 'x' (first at 4:12)");
	assert_int_equal(d.v[2].line, 6);
	assert_non_null(strstr(d.v[2].msg, "duplicate job name 'r1' (first at 6:11); record 3 of"));
	arl_diags_release(&d);
	free(path);
}

/* One record's text is capped (--max-record), refused where the record starts. */
static void test_record_cap(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_dataset ds;
	char big[3000], *text;

	(void)state;
	assert_int_equal(arl_dataset_max_record(), (size_t)16 << 20);
	arl_dataset_set_max_record(1024);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';

	/* .jsonl: lines 1 and 2 fit (1024 bytes exactly), line 3 does not. */
	text = arl_xasprintf("{\"a\": 1}\n{\"s\": \"%.1013s\"}\n{\"s\": \"%s\"}\n{\"a\": 2}\n", big,
	                     big);
	assert_int_equal(load(&ds, "cap.jsonl", text, &d), -1);
	free(text);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].path, "cap.jsonl");
	assert_int_equal(d.v[0].line, 3);
	assert_int_equal(d.v[0].col, 1);
	assert_string_equal(
	    d.v[0].msg, "record of more than 1024 bytes (the limit; raise it with --max-record)");
	arl_dataset_release(&ds);
	arl_diags_release(&d);

	/* .json: the element on line 3, column 3. */
	text =
	    arl_xasprintf("[{\"a\": 1},\n {\"s\": \"%.1013s\"},\n  {\"s\": [\"%s\"]}]", big, big);
	assert_int_equal(load(&ds, "cap.json", text, &d), -1);
	free(text);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 3);
	assert_int_equal(d.v[0].col, 3);
	assert_non_null(strstr(d.v[0].msg, "record of more than 1024 bytes"));
	arl_dataset_release(&ds);
	arl_diags_release(&d);

	/* .csv: the record starting on line 3. */
	text = arl_xasprintf("a,b\n1,2\n3,\"%s\"\n4,5\n", big);
	assert_int_equal(load(&ds, "cap.csv", text, &d), -1);
	free(text);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 3);
	assert_int_equal(d.v[0].col, 1);
	assert_non_null(strstr(d.v[0].msg, "record of more than 1024 bytes"));
	arl_dataset_release(&ds);
	arl_diags_release(&d);

	arl_dataset_set_max_record(4096);
	text = arl_xasprintf("{\"s\": \"%s\"}\n", big);
	assert_int_equal(load(&ds, "ok.jsonl", text, &d), 0);
	free(text);
	assert_int_equal(ds.n, 1);
	arl_dataset_release(&ds);
	arl_diags_release(&d);
	arl_dataset_set_max_record(ARL_DATASET_MAX_RECORD);
}

/* A repeated CSV header name would drop a column from every record silently. */
static void test_csv_duplicate_header(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_dataset ds;

	(void)state;
	assert_int_equal(load(&ds, "dup.csv", "a,b,a,c,b,a\n1,2,3,4,5,6\n", &d), -1);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.v[0].msg, "header column 3 repeats the name 'a' of column 1");
	assert_string_equal(d.v[1].msg, "header column 6 repeats the name 'a' of column 1");
	assert_string_equal(d.v[2].msg, "header column 5 repeats the name 'b' of column 2");
	arl_dataset_release(&ds);
	arl_diags_release(&d);
	assert_int_equal(load(&ds, "ok.csv", "a,b,A\n1,2,3\n", &d), 0);
	assert_int_equal(ds.n, 1);
	arl_dataset_release(&ds);
	arl_diags_release(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jsonl_records),        cmocka_unit_test(test_json_records),
	    cmocka_unit_test(test_jsonl_errors),         cmocka_unit_test(test_number_out_of_range),
	    cmocka_unit_test(test_long_records),         cmocka_unit_test(test_changed_file),
	    cmocka_unit_test(test_jsonl_jobs),           cmocka_unit_test(test_many_datasets),
	    cmocka_unit_test(test_duplicate_names),      cmocka_unit_test(test_record_cap),
	    cmocka_unit_test(test_csv_duplicate_header),
	};

	arl_register_builtin_backends(); /* the pools' backends, as main() does */
	return cmocka_run_group_tests(tests, setup, teardown);
}
