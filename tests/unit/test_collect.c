/*
 * The artifacts collectors' untrusted inputs and the walk: the agent's stream
 * (local/collect_stream.h) well formed in any split and malformed in every way a record can
 * be, random bytes (no crash, no sink call out of order), the kubernetes Task's output
 * (k8s/k8s_collect.h), and arl_collect_glob over a directory with a symlink, a FIFO and a
 * dotfile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/collect.h"
#include "agent/protocol.h"
#include "buf.h"
#include "k8s/k8s_collect.h"
#include "local/collect_stream.h"
#include "util.h"

/* What a sink saw: "B0:/a[3] D3 E-" and so on; and that calls came in order. */
struct rec {
	struct arl_buf log;
	int open; /* begin() taken, end() not yet */
	int bad;  /* a call out of order */
	int refuse_begin;
	size_t nbytes; /* of the file open */
};

static int rec_begin(void *arg, size_t spec, const char *path, int64_t size)
{
	struct rec *r = arg;

	if (r->open)
		r->bad++;
	arl_buf_addf(&r->log, "B%zu:%s[%lld] ", spec, path, (long long)size);
	if (r->refuse_begin)
		return -1;
	r->open = 1;
	return 0;
}

static int rec_data(void *arg, const void *p, size_t n)
{
	struct rec *r = arg;

	(void)p;
	if (!r->open)
		r->bad++;
	r->nbytes += n; /* as it arrives, in any pieces: logged whole at the end */
	return 0;
}

static void rec_end(void *arg, const char *error)
{
	struct rec *r = arg;

	if (!r->open)
		r->bad++;
	r->open = 0;
	if (r->nbytes)
		arl_buf_addf(&r->log, "D%zu ", r->nbytes);
	r->nbytes = 0;
	arl_buf_addf(&r->log, "E%s ", error ? error : "-");
}

static struct arl_artifact_sink sink_of(struct rec *r)
{
	return (struct arl_artifact_sink){
	    .arg = r, .begin = rec_begin, .data = rec_data, .end = rec_end, .max_size = 1 << 20};
}

/* Records into @b as the agent writes them. */
static void put_b(struct arl_buf *b, uint32_t spec, uint64_t size, const char *path, size_t plen)
{
	unsigned char h[17] = {'B'};

	arl_proto_put_u32(h + 1, spec);
	arl_proto_put_u32(h + 5, (uint32_t)(size & 0xffffffffu));
	arl_proto_put_u32(h + 9, (uint32_t)(size >> 32));
	arl_proto_put_u32(h + 13, (uint32_t)plen);
	arl_buf_add(b, h, sizeof(h));
	arl_buf_add(b, path, plen);
}

static void put_rec(struct arl_buf *b, char type, const char *p, size_t n)
{
	unsigned char h[5] = {(unsigned char)type};

	arl_proto_put_u32(h + 1, (uint32_t)n);
	arl_buf_add(b, h, sizeof(h));
	arl_buf_add(b, p, n);
}

/* Feeds @b in pieces of @step bytes (0: whole); returns finish()'s result. */
static int feed(struct rec *r, const struct arl_buf *b, size_t step, size_t nspecs)
{
	struct arl_artifact_sink s = sink_of(r);
	struct arl_collect_stream st;
	int rc;

	arl_collect_stream_init(&st, &s, nspecs);
	for (size_t off = 0; off < b->len;) {
		size_t n = step && step < b->len - off ? step : b->len - off;

		arl_collect_stream_feed(&st, b->p + off, n);
		off += n;
	}
	rc = arl_collect_stream_finish(&st);
	arl_collect_stream_release(&st, "released");
	return rc;
}

static void test_stream_well_formed_any_split(void **state)
{
	struct arl_buf b = ARL_BUF_INIT;
	char *want = NULL;
	(void)state;

	put_b(&b, 0, 3, "/w/a", 4);
	put_rec(&b, 'D', "abc", 3);
	put_rec(&b, 'E', "", 0);
	put_b(&b, 1, 7, "/w/b", 4);
	put_rec(&b, 'E', "a symlink: not followed", 23);
	put_b(&b, 1, 0, "/w/c", 4);
	put_rec(&b, 'E', "", 0);
	for (size_t step = 0; step <= 40; step++) {
		struct rec r = {ARL_BUF_INIT, 0, 0, 0, 0};

		assert_int_equal(feed(&r, &b, step, 2), 0);
		assert_int_equal(r.bad, 0);
		if (!want)
			want = arl_xstrdup(r.log.p);
		assert_string_equal(r.log.p, want);
		arl_buf_release(&r.log);
	}
	assert_string_equal(want, "B0:/w/a[3] D3 E- B1:/w/b[7] Ea symlink: not followed "
	                          "B1:/w/c[0] E- ");
	free(want);
	arl_buf_release(&b);
}

/* One malformed stream: finish() says so, and a file open was ended. */
static void malformed(const struct arl_buf *b, const char *want)
{
	struct rec r = {ARL_BUF_INIT, 0, 0, 0, 0};

	assert_int_equal(feed(&r, b, 0, 2), -1);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.open, 0);
	assert_string_equal(r.log.p ? r.log.p : "", want);
	arl_buf_release(&r.log);
}

static void test_stream_malformed(void **state)
{
	struct arl_buf b = ARL_BUF_INIT;
	unsigned char big[5] = {'D'};
	(void)state;

	put_rec(&b, 'D', "x", 1); /* data before any file */
	malformed(&b, "");
	arl_buf_reset(&b);
	arl_buf_addstr(&b, "Z"); /* no such record */
	malformed(&b, "");
	arl_buf_reset(&b);
	put_b(&b, 2, 1, "/w/a", 4); /* pattern 2 of 2 */
	malformed(&b, "");
	arl_buf_reset(&b);
	put_b(&b, 0, 1, "/w\0a", 4); /* a NUL in the path */
	malformed(&b, "");
	arl_buf_reset(&b);
	put_b(&b, 0, 1, "/w/a", 4); /* a 'B' inside a file */
	put_b(&b, 0, 1, "/w/b", 4);
	malformed(&b, "B0:/w/a[1] Ethe collector's output is malformed ");
	arl_buf_reset(&b);
	put_b(&b, 0, 1, "/w/a", 4); /* a 'D' longer than a chunk */
	arl_proto_put_u32(big + 1, ARL_COLLECT_CHUNK + 1);
	arl_buf_add(&b, big, sizeof(big));
	malformed(&b, "B0:/w/a[1] Ethe collector's output is malformed ");
	arl_buf_reset(&b);
	put_b(&b, 0, 5, "/w/a", 4); /* cut in the middle of its data */
	arl_buf_add(&b, "D\x05\0\0\0ab", 7);
	malformed(&b, "B0:/w/a[5] D2 Ethe collector's output is malformed ");
	arl_buf_release(&b);
}

/* Random bytes, and valid streams with a byte changed: never a crash nor a call out of order. */
static void test_stream_random(void **state)
{
	struct arl_buf good = ARL_BUF_INIT;
	uint32_t x = 12345;
	(void)state;

	put_b(&good, 0, 3, "/w/a", 4);
	put_rec(&good, 'D', "abc", 3);
	put_rec(&good, 'E', "", 0);
	put_b(&good, 1, 3, "/w/b", 4);
	put_rec(&good, 'E', "why", 3);
	for (int i = 0; i < 20000; i++) {
		struct arl_buf b = ARL_BUF_INIT;
		struct rec r = {ARL_BUF_INIT, 0, 0, i % 3 == 0, 0};

		x = x * 1103515245u + 12345u;
		if (i % 2) {
			size_t n = (x >> 8) % 64;

			for (size_t k = 0; k < n; k++) {
				char c;

				x = x * 1103515245u + 12345u;
				c = "BDEZ\0\x01\x05\xff"[(x >> 16) % 8];
				arl_buf_add(&b, &c, 1);
			}
		} else {
			arl_buf_add(&b, good.p, good.len);
			b.p[(x >> 8) % b.len] = (char)(x >> 20);
		}
		feed(&r, &b, (x >> 4) % 7, 2);
		assert_int_equal(r.bad, 0);
		assert_int_equal(r.open, 0);
		arl_buf_release(&r.log);
		arl_buf_release(&b);
	}
	arl_buf_release(&good);
}

static void test_k8s_output(void **state)
{
	struct arl_artifact_spec specs[2] = {{"/w/*", 10}, {"/w/b", 100}};
	struct rec r = {ARL_BUF_INIT, 0, 0, 0, 0};
	struct arl_artifact_sink s = sink_of(&r);
	/* "/w/a" is L3cvYQ==, "abc" YWJj, "/w/b" L3cvYg== */
	char ok[] = "B 0 3 L3cvYQ== \nYWJj\nE\nX 1 20 L3cvYg== toolarge\nX 0 0 L3cvYg== symlink\n";
	char *bad[] = {
	    "B 0 3 L3cvYQ==\nYWJj\n",    /* no E */
	    "B 2 3 L3cvYQ==\nE\n",       /* pattern 2 of 2 */
	    "B 0 3 !!!\nE\n",            /* a path that is not base64 */
	    "B 0 3 L3cvYQ==\n!!!!\nE\n", /* content that is not base64 */
	    "Q 0 3 L3cvYQ==\n",          /* no such line */
	    "X 0 3 L3cvYQ==\n",          /* no reason */
	    "B 0 -3 L3cvYQ==\nE\n",      /* a negative size */
	    "B 0 3 AC8A\nE\n",           /* a NUL in the path */
	};
	(void)state;

	assert_int_equal(arl_k8s_collect_parse(ok, specs, 2, &s), 0);
	assert_int_equal(r.bad, 0);
	assert_string_equal(r.log.p, "B0:/w/a[3] D3 E- B1:/w/b[20] Elarger than its maxSize (20 "
	                             "bytes; 100 allowed) B0:/w/b[0] Ea symlink: not followed ");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *copy = arl_xstrdup(bad[i]);

		arl_buf_reset(&r.log);
		assert_int_equal(arl_k8s_collect_parse(copy, specs, 2, &s), -1);
		assert_int_equal(r.bad, 0);
		assert_int_equal(r.open, 0);
		free(copy);
	}
	arl_buf_release(&r.log);
}

struct found {
	struct arl_buf names;
};

static int on_file(void *arg, size_t spec, int dirfd, const char *name, const char *path)
{
	struct found *f = arg;
	const char *why = NULL;
	int64_t size = -1;
	int fd = arl_collect_open(dirfd, name, &size, &why);

	arl_buf_addf(&f->names, "%zu:%s=%s ", spec, path, fd >= 0 ? "file" : why ? why : "none");
	if (fd >= 0)
		close(fd);
	return 0;
}

static void test_glob(void **state)
{
	char dir[] = "/tmp/arl-collect-XXXXXX", p[256];
	struct found f = {ARL_BUF_INIT};
	int root;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/out", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/out/b.json", dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/out/a.json", dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/out/.h.json", dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/out/f.json", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/out/l.json", dir);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof(p), "%s/link", dir); /* a directory symlink is never entered */
	assert_int_equal(symlink(dir, p), 0);
	root = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(root >= 0);
	assert_int_equal(arl_collect_glob(root, "/ws/out/*.json", 3, 0, 100, on_file, &f), 0);
	assert_int_equal(arl_collect_glob(root, "/ws/link/out/a.json", 3, 1, 100, on_file, &f), 0);
	assert_int_equal(arl_collect_glob(root, "/ws/*/a.json", 3, 2, 100, on_file, &f), 0);
	assert_int_equal(arl_collect_glob(root, "/ws/out/*.json", 3, 3, 1, on_file, &f), 0);
	assert_string_equal(f.names.p, "0:/ws/out/a.json=file 0:/ws/out/b.json=file "
	                               "0:/ws/out/f.json=not a regular file "
	                               "0:/ws/out/l.json=a symlink: not followed "
	                               "2:/ws/out/a.json=file 3:/ws/out/a.json=file ");
	close(root);
	arl_buf_release(&f.names);
	snprintf(p, sizeof(p), "rm -rf '%s'", dir);
	assert_int_equal(system(p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stream_well_formed_any_split),
	    cmocka_unit_test(test_stream_malformed),
	    cmocka_unit_test(test_stream_random),
	    cmocka_unit_test(test_k8s_output),
	    cmocka_unit_test(test_glob),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
