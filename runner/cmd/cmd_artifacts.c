/*
 * `arl-batch artifacts JOB`: the files an attempt of a job kept (`artifacts:` in the job
 * file), listed with their size, digest and stored file, or written out under -o DIR at their
 * sandbox paths (DIR/workspace/out/a.json). The attempt is the job's last unless --attempt;
 * a Skipped job's are those of the result it carries.
 *
 * Writing out trusts nothing in the database: a path with an empty, '.' or '..' component is
 * refused, every directory under DIR is entered without following a symlink, and a stored
 * file whose content no longer has its digest is not written.
 *
 * Exit: 0 listed or all written, 1 no such job, run or attempt, 2 usage, 3 the database could
 * not be read or a file could not be written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/job_lookup.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "sha256.h"
#include "store/store.h"
#include "store/store_artifacts.h"
#include "store/store_jobs.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "artifacts [--db PATH] [--run RUN] [--attempt N] [-o DIR] JOB", NULL};

static const char about[] =
    "List the files an attempt of JOB kept (its artifacts: key), or write them under DIR at\n"
    "their paths in the sandbox (-o out: out/workspace/model.patch). JOB is a key\n"
    "(FILE_STEM/JOB_NAME) or a job name; the attempt is the job's last unless --attempt.\n";

struct row {
	char *path, *sha256, *error;
	int64_t size;
};

struct pick {
	int want; /* 0: the last */
	int64_t id;
	int number;
	struct row *rows;
	size_t nrows;
};

static int take_attempt(void *arg, const struct arl_attempt_view *a, struct arl_err *err)
{
	struct pick *p = arg;

	(void)err;
	if (!p->want || a->number == p->want) {
		p->id = a->id;
		p->number = a->number;
	}
	return 0;
}

static int take_row(void *arg, const struct arl_artifact_view *x, struct arl_err *err)
{
	struct pick *p = arg;
	struct row *r;

	(void)err;
	p->rows = arl_xrealloc(p->rows, (p->nrows + 1) * sizeof(*p->rows));
	r = &p->rows[p->nrows++];
	r->path = arl_xstrdup(x->path ? x->path : "");
	r->sha256 = x->sha256 ? arl_xstrdup(x->sha256) : NULL;
	r->error = x->error ? arl_xstrdup(x->error) : NULL;
	r->size = x->size;
	return 0;
}

static void put(const char *s)
{
	arl_term_write(stdout, s, strlen(s), false);
}

/* Why @path cannot be written under DIR, or NULL. */
static const char *path_problem(const char *path)
{
	if (path[0] != '/')
		return "not an absolute path";
	for (const char *p = path + 1;; p++) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return "it would leave DIR (an empty, '.' or '..' component)";
		if (!e)
			return NULL;
		p = e;
	}
}

/*
 * The directory of @rel under @dirfd, made as needed, never through a symlink: its fd, with
 * the last component's name in *base. -1 with @err.
 */
static int open_parent(int dirfd, const char *rel, const char **base, struct arl_err *err)
{
	int fd = dup(dirfd);
	const char *p = rel;

	if (fd < 0)
		return arl_error_errno(err, errno, "cannot duplicate a descriptor");
	for (const char *e; (e = strchr(p, '/')); p = e + 1) {
		char comp[256];
		size_t n = (size_t)(e - p);
		int next;

		if (n >= sizeof(comp)) {
			close(fd);
			return arl_error(err, ARL_E_INVALID, "a component of '%s' is too long",
			                 rel);
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
			arl_error_errno(err, errno, "cannot create '%s'", comp);
			close(fd);
			return -1;
		}
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			arl_error_errno(err, errno, "cannot enter '%s' (a symlink is not followed)",
			                comp);
			close(fd);
			return -1;
		}
		close(fd);
		fd = next;
	}
	*base = p;
	return fd;
}

/* Copies the stored file of @r to @rel under @dirfd, checking its digest on the way. */
static int write_one(const char *store, int dirfd, const struct row *r, int64_t *bytes,
                     struct arl_err *err)
{
	char *src = arl_artifacts_file(store, r->sha256), got[65], buf[65536];
	const char *base = "";
	struct arl_sha256 sha;
	struct stat st;
	int in = -1, out = -1, pfd = -1, ret = -1;
	int64_t n = 0;

	if (!src) {
		arl_error(err, ARL_E_INVALID, "its recorded digest is not a sha256");
		goto out;
	}
	/* O_NONBLOCK: a FIFO planted in the store must not block the open (it is refused). */
	if ((in = open(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot open the stored file '%s'", src);
		goto out;
	}
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		arl_error(err, ARL_E_INVALID, "the stored file '%s' is not a regular file", src);
		goto out;
	}
	if ((pfd = open_parent(dirfd, r->path + 1, &base, err)) < 0)
		goto out;
	out = openat(pfd, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0) {
		arl_error_errno(err, errno, "cannot write '%s'", r->path + 1);
		goto out;
	}
	arl_sha256_init(&sha);
	for (;;) {
		ssize_t got_n = read(in, buf, sizeof(buf));

		if (got_n < 0 && errno == EINTR)
			continue;
		if (got_n < 0) {
			arl_error_errno(err, errno, "cannot read '%s'", src);
			goto out;
		}
		if (got_n == 0)
			break;
		arl_sha256_update(&sha, buf, (size_t)got_n);
		for (ssize_t off = 0; off < got_n;) {
			ssize_t w = write(out, buf + off, (size_t)(got_n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				arl_error_errno(err, errno, "cannot write '%s'", r->path + 1);
				goto out;
			}
			off += w;
		}
		n += got_n;
	}
	arl_sha256_hex(&sha, got);
	if (strcmp(got, r->sha256)) {
		arl_error(err, ARL_E_IO, "the stored file '%s' no longer has its digest", src);
		goto out;
	}
	*bytes += n;
	ret = 0;
out:
	if (out >= 0) {
		if (close(out) < 0 && ret == 0)
			ret = arl_error_errno(err, errno, "cannot write '%s'", r->path + 1);
		if (ret < 0)
			unlinkat(pfd, base, 0);
	}
	if (pfd >= 0)
		close(pfd);
	if (in >= 0)
		close(in);
	free(src);
	return ret;
}

static void list_rows(const char *store, const struct pick *p)
{
	for (size_t i = 0; i < p->nrows; i++) {
		const struct row *r = &p->rows[i];
		char *file = r->sha256 ? arl_artifacts_file(store, r->sha256) : NULL;

		put(r->path);
		if (file) {
			printf("\t%lld\t", (long long)r->size);
			put(file);
		} else {
			fputs("\t-\t", stdout);
			put(r->error ? r->error : "not kept");
		}
		fputc('\n', stdout);
		free(file);
	}
}

static int write_rows(const char *store, const char *dir, const struct pick *p)
{
	struct arl_err err = ARL_ERR_INIT;
	int64_t bytes = 0;
	size_t written = 0, failed = 0, not_kept = 0;
	char eb[128];
	int dirfd;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		arl_log_error("cannot create '%s': %s", dir, arl_strerror(errno, eb, sizeof(eb)));
		return ARL_EXIT_INCOMPLETE;
	}
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		arl_log_error("cannot open '%s': %s", dir, arl_strerror(errno, eb, sizeof(eb)));
		return ARL_EXIT_INCOMPLETE;
	}
	for (size_t i = 0; i < p->nrows; i++) {
		const struct row *r = &p->rows[i];
		const char *why;

		if (!r->sha256) {
			not_kept++;
			continue;
		}
		if ((why = path_problem(r->path))) {
			arl_log_error("refusing '%s': %s", r->path, why);
			failed++;
			continue;
		}
		err = (struct arl_err)ARL_ERR_INIT;
		if (write_one(store, dirfd, r, &bytes, &err) < 0) {
			arl_log_error("'%s' not written: %s", r->path, err.msg);
			failed++;
			continue;
		}
		written++;
	}
	close(dirfd);
	printf("wrote %zu file%s (%lld bytes) under ", written, written == 1 ? "" : "s",
	       (long long)bytes);
	put(dir);
	if (not_kept)
		printf("; %zu not kept (see arl-batch show)", not_kept);
	if (failed)
		printf("; %zu failed", failed);
	fputc('\n', stdout);
	return failed ? ARL_EXIT_INCOMPLETE : ARL_EXIT_OK;
}

int cmd_artifacts(int argc, char **argv)
{
	struct arl_store *store = NULL;
	struct arl_job_reader *reader = NULL;
	struct arl_job_view j = {0};
	struct arl_err err = ARL_ERR_INIT;
	struct pick p = {0};
	const char *db = NULL, *run = NULL, *out_dir = NULL;
	char *dir = NULL;
	int64_t job_id = 0, attempt = 0;
	int rc, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db),
	    ARL_OPT_JOB_RUN(&run),
	    ARL_OPT_INT(0, "attempt", &attempt, 1, 1000, "N", "attempt N (default: the last)"),
	    ARL_OPT_STRING('o', "output", &out_dir, "DIR",
	                   "write the files under DIR (created if missing)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "artifacts", .synopsis = synopsis, .about = about, .options = opts};

	if ((rc = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (rc != 1)
		return arl_cli_one_job_error(&u, rc);
	ret = ARL_EXIT_INCOMPLETE;
	if (arl_store_open(&store, arl_cli_db_path(db), ARL_STORE_NOCREATE, &err) < 0)
		goto fail;
	arl_job_reader_new(store, &reader);
	if ((ret = arl_cli_find_job(store, reader, run, argv[0], &job_id, &err)) != ARL_EXIT_OK)
		goto out;
	ret = ARL_EXIT_INCOMPLETE;
	if ((rc = arl_job_get(reader, job_id, &j, &err)) <= 0) {
		if (rc == 0)
			arl_error(&err, ARL_E_INVALID, "job %lld vanished", (long long)job_id);
		goto fail;
	}
	/* A Skipped job ran nothing: its files are those of the result it carries. */
	if (j.state == ARL_STATE_SKIPPED && !j.from_null)
		job_id = j.from_id;
	p.want = (int)attempt;
	if (arl_job_attempts(reader, job_id, take_attempt, &p, &err) < 0)
		goto fail;
	if (!p.id) {
		if (attempt)
			arl_log_error("job '%s' has no attempt %d", j.key, (int)attempt);
		else
			arl_log_error("job '%s' has no attempts", j.key);
		ret = ARL_EXIT_FAILED;
		goto out;
	}
	if (arl_attempt_artifacts(reader, p.id, take_row, &p, &err) < 0)
		goto fail;
	dir = arl_artifacts_dir(arl_store_path(store));
	if (!out_dir) {
		list_rows(dir, &p);
		if (!p.nrows)
			arl_log_info("attempt %d of '%s' kept no files", p.number, j.key);
		ret = ARL_EXIT_OK;
		goto out;
	}
	ret = write_rows(dir, out_dir, &p);
	goto out;
fail:
	arl_view_error(&err);
out:
	for (size_t i = 0; i < p.nrows; i++) {
		free(p.rows[i].path);
		free(p.rows[i].sha256);
		free(p.rows[i].error);
	}
	free(p.rows);
	free(dir);
	arl_job_view_release(&j);
	arl_job_reader_free(reader);
	arl_store_close(store);
	return ret;
}
