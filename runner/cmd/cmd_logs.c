/*
 * `arl-batch logs JOB`: a job's output. For a finished job, what the database holds, attempt by
 * attempt and step by step; for a job still running, the live files its steps write as they
 * run (live.h). With -f it follows: prints what is there, then new bytes as they come, goes on
 * to the next step and attempt, and exits once the job's result is committed (the database
 * says it is no longer Pending or Running), printing from the database whatever it did not see
 * live. SIGINT ends it at any time.
 *
 * Every stream goes to stdout, after a header naming it whenever the source changes (as
 * `tail -f a b` does): "==> attempt 1, step 'test', stderr <==". On a terminal the output is
 * escaped (arl_term_write); piped, it is the bytes as written.
 *
 * Exit: 0 shown, 1 no such job or run, 2 usage, 3 the database could not be opened or read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/job_lookup.h"
#include "cmd/options.h"
#include "err.h"
#include "live.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "logs [--db PATH] [--run RUN] [-f] [--attempt N] [--step NAME] JOB", NULL};

static const char about[] =
    "Show a job's output: what the database holds for a finished job, the live output of\n"
    "a running one. JOB is a key (FILE_STEM/JOB_NAME) or a job name.\n";

static const char epilog[] =
    "With -f, follows a running job's steps as they print and exits when the job ends.\n"
    "Kubernetes steps' output arrives when each step ends: -f shows it then.\n";

#define POLL_NS (100 * 1000 * 1000)
/* Quiet polls between two reopenings of the database, whose repair ends a dead runner's job. */
#define REOPEN_POLLS 20
#define READ_CHUNK   65536

/* One live stream being followed. */
struct stream {
	int attempt;
	size_t idx;
	int which; /* 0 stdout, 1 stderr */
	char *step;
	int fd;
	ino_t ino;
	char name[64];
};

struct ctx {
	const char *db;
	struct arl_store *store;
	struct arl_job_reader *reader;
	int64_t job_id;
	int attempt;      /* --attempt; 0: all */
	const char *step; /* --step; NULL: all */
	bool tty;
	/* The last header printed: attempt, step index, stream (attempt 0: none yet). */
	int cur_attempt;
	size_t cur_idx;
	int cur_which;
	bool midline; /* the last byte printed was not a newline */
	struct stream *s;
	size_t n, cap;
	struct arl_err err;
};

static void put_header(struct ctx *c, int attempt, size_t idx, int which, const char *step)
{
	char *shown;

	if (c->cur_attempt == attempt && c->cur_idx == idx && c->cur_which == which)
		return;
	shown = arl_term_str(step ? step : "");
	printf("%s==> attempt %d, step '%s', %s <==\n", c->midline ? "\n" : "", attempt, shown,
	       which ? "stderr" : "stdout");
	free(shown);
	c->cur_attempt = attempt;
	c->cur_idx = idx;
	c->cur_which = which;
	c->midline = false;
}

static void put_bytes(struct ctx *c, const char *p, size_t n)
{
	if (!n)
		return;
	if (c->tty)
		arl_term_write(stdout, p, n, true);
	else
		fwrite(p, 1, n, stdout);
	c->midline = p[n - 1] != '\n';
}

/* --attempt and --step. */
static bool wanted(const struct ctx *c, int attempt, const char *step)
{
	return (!c->attempt || c->attempt == attempt) && (!c->step || !strcmp(c->step, step));
}

/* ---- the stored output ---- */

struct stored {
	struct ctx *c;
	int attempt;
	bool only_unseen; /* skip the steps followed live */
};

static bool seen_live(const struct ctx *c, int attempt, size_t idx)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->s[i].attempt == attempt && c->s[i].idx == idx)
			return true;
	return false;
}

static int stored_step(void *arg, const struct arl_step_view *st, struct arl_err *err)
{
	struct stored *s = arg;
	const char *outs[2] = {st->out, st->err};

	(void)err;
	if (!wanted(s->c, s->attempt, st->name ? st->name : ""))
		return 0;
	if (s->only_unseen && seen_live(s->c, s->attempt, (size_t)st->idx))
		return 0;
	for (int w = 0; w < 2; w++)
		if (outs[w] && outs[w][0]) {
			put_header(s->c, s->attempt, (size_t)st->idx, w, st->name);
			put_bytes(s->c, outs[w], strlen(outs[w]));
		}
	return 0;
}

static int stored_attempt(void *arg, const struct arl_attempt_view *a, struct arl_err *err)
{
	struct stored *s = arg;

	if (s->c->attempt && s->c->attempt != a->number)
		return 0;
	s->attempt = a->number;
	return arl_attempt_steps(s->c->reader, a->id, stored_step, s, err);
}

static int print_stored(struct ctx *c, int64_t job_id, bool only_unseen)
{
	struct stored s = {c, 0, only_unseen};

	return arl_job_attempts(c->reader, job_id, stored_attempt, &s, &c->err);
}

/* ---- live output ---- */

static int stream_cmp(const void *a, const void *b)
{
	const struct stream *x = a, *y = b;

	if (x->attempt != y->attempt)
		return x->attempt < y->attempt ? -1 : 1;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->which - y->which;
}

static bool known(const struct ctx *c, int attempt, size_t idx, int which)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->s[i].attempt == attempt && c->s[i].idx == idx && c->s[i].which == which)
			return true;
	return false;
}

/*
 * A live file of the job directory @dirfd, or -1. DB.live may be planted by whoever can write
 * beside the database, and `logs` may run as root: only a regular file with one link, owned
 * like its directory, is read (a FIFO would block the open, a hard link show another file).
 */
static int open_live(int dirfd, const char *name)
{
	struct stat dst, st;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(dirfd, &dst) < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || st.st_uid != dst.st_uid) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The step name in ATTEMPT-IDX.step (owned). */
static char *read_step_name(int dirfd, int attempt, size_t idx)
{
	char name[64], buf[1024];
	ssize_t n = -1;
	int fd;

	snprintf(name, sizeof(name), "%d-%zu.step", attempt, idx);
	if ((fd = open_live(dirfd, name)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	return arl_xstrdup(buf);
}

/* Opens the job's live streams not followed yet; returns how many it added. */
static size_t scan(struct ctx *c, int dirfd)
{
	DIR *d;
	struct dirent *e;
	size_t added = 0;
	int fd = dup(dirfd);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		int attempt, len = 0;
		size_t idx;
		char ext[4] = "";
		struct stream *s;
		struct stat st;
		char *step;

		if (sscanf(e->d_name, "%d-%zu.%3[a-z]%n", &attempt, &idx, ext, &len) != 3 ||
		    e->d_name[len] || (size_t)len >= sizeof(s->name) ||
		    (strcmp(ext, "out") && strcmp(ext, "err")))
			continue;
		if (known(c, attempt, idx, ext[0] == 'e'))
			continue;
		step = read_step_name(dirfd, attempt, idx);
		if (!wanted(c, attempt, step)) {
			free(step);
			continue;
		}
		ARL_GROW(c->s, c->cap, c->n + 1);
		s = &c->s[c->n];
		memset(s, 0, sizeof(*s));
		s->attempt = attempt;
		s->idx = idx;
		s->which = ext[0] == 'e';
		s->step = step;
		memcpy(s->name, e->d_name, (size_t)len + 1);
		s->fd = open_live(dirfd, e->d_name);
		if (s->fd >= 0 && fstat(s->fd, &st) == 0)
			s->ino = st.st_ino;
		c->n++;
		added++;
	}
	closedir(d);
	if (added)
		qsort(c->s, c->n, sizeof(*c->s), stream_cmp);
	return added;
}

/* Skips a rotated file's first line (ARL_LIVE_ROTATED): we read what it stands for. */
static void skip_marker(int fd)
{
	char b;

	while (read(fd, &b, 1) == 1 && b != '\n')
		;
}

/* Prints what stream @s has past what we read; follows a rotation. Returns bytes printed. */
static size_t drain(struct ctx *c, int dirfd, struct stream *s, char *buf)
{
	size_t total = 0;
	ssize_t n;
	struct stat st;

	while (s->fd >= 0) {
		while ((n = read(s->fd, buf, READ_CHUNK)) > 0) {
			put_header(c, s->attempt, s->idx, s->which, s->step);
			put_bytes(c, buf, (size_t)n);
			total += (size_t)n;
		}
		/* At its end: if a fresh file replaced it, go on with that one. */
		if (dirfd < 0 || fstatat(dirfd, s->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_ino == s->ino)
			break;
		close(s->fd);
		s->fd = open_live(dirfd, s->name);
		s->ino = st.st_ino;
		if (s->fd >= 0)
			skip_marker(s->fd);
	}
	return total;
}

/* The job's state now: 1 while Pending or Running, 0 once final, -1 on a read error. */
static int still_running(struct ctx *c)
{
	struct arl_job_view j = {0};
	int rc = arl_job_get(c->reader, c->job_id, &j, &c->err);

	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	rc = j.state == ARL_STATE_PENDING || j.state == ARL_STATE_RUNNING;
	arl_job_view_release(&j);
	return rc;
}

/* DB.live/RUN/JOB, or -1 while it does not exist. */
static int open_job_dir(const char *db, int64_t run_id, int64_t job_id)
{
	char *root = arl_live_root(db), *path;
	struct stat st;
	int fd;

	path = arl_xasprintf("%s/%lld/%lld", root, (long long)run_id, (long long)job_id);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	free(path);
	free(root);
	/* The runner makes it 0700 (live.c): one others can write is not its. */
	if (fd >= 0 && (fstat(fd, &st) < 0 || (st.st_mode & 0077))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * Opens the database again: a read-write open repairs the runs of runners that died (their
 * jobs become Cancelled), so a runner killed with -9 does not leave us following for ever.
 */
static int reopen(struct ctx *c)
{
	arl_job_reader_free(c->reader);
	c->reader = NULL;
	arl_store_close(c->store);
	c->store = NULL;
	if (arl_store_open(&c->store, c->db, ARL_STORE_NOCREATE, &c->err) < 0)
		return -1;
	arl_job_reader_new(c->store, &c->reader);
	return 0;
}

static int print_live(struct ctx *c, const char *db, int64_t run_id, bool follow)
{
	char *buf = arl_xmalloc(READ_CHUNK);
	int dirfd = -1, running, ret = -1, quiet = 0;
	struct timespec pause = {0, POLL_NS};

	for (;;) {
		size_t printed = 0;

		if (quiet >= REOPEN_POLLS) {
			quiet = 0;
			if (reopen(c) < 0)
				goto out;
		}

		if ((running = still_running(c)) < 0)
			goto out;
		if (dirfd < 0)
			dirfd = open_job_dir(db, run_id, c->job_id);
		if (dirfd >= 0)
			scan(c, dirfd);
		for (size_t i = 0; i < c->n; i++)
			printed += drain(c, dirfd, &c->s[i], buf);
		fflush(stdout);
		if (!running) {
			/* Committed: whatever was not seen live is in the database now. */
			if (print_stored(c, c->job_id, true) < 0)
				goto out;
			break;
		}
		if (!follow)
			break;
		if (!printed) {
			quiet++;
			nanosleep(&pause, NULL);
		} else {
			quiet = 0;
		}
	}
	ret = 0;
out:
	for (size_t i = 0; i < c->n; i++) {
		if (c->s[i].fd >= 0)
			close(c->s[i].fd);
		free(c->s[i].step);
	}
	if (dirfd >= 0)
		close(dirfd);
	free(buf);
	return ret;
}

int cmd_logs(int argc, char **argv)
{
	struct ctx c = {.err = ARL_ERR_INIT};
	const char *db = NULL, *run = NULL, *job;
	struct arl_job_view j = {0};
	int64_t run_id = 0;
	bool follow = false, have_job = false;
	int rc, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db),
	    ARL_OPT_JOB_RUN(&run),
	    ARL_OPT_FLAG('f', "follow", &follow,
	                 "follow a running job's output until the job ends"),
	    ARL_OPT_INT(0, "attempt", &c.attempt, 1, 1000, "N", "only attempt N"),
	    ARL_OPT_STRING(0, "step", &c.step, "NAME", "only the steps named NAME"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {.name = "logs",
	                                    .synopsis = synopsis,
	                                    .about = about,
	                                    .options = opts,
	                                    .epilog = epilog};

	if ((rc = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (rc != 1)
		return arl_cli_one_job_error(&u, rc);
	ret = ARL_EXIT_INCOMPLETE;
	job = argv[0];
	c.tty = isatty(STDOUT_FILENO);

	c.db = arl_cli_db_path(db);
	if (arl_store_open(&c.store, c.db, ARL_STORE_NOCREATE, &c.err) < 0)
		goto out;
	arl_job_reader_new(c.store, &c.reader);
	/* On failure it has said why. */
	if ((ret = arl_cli_find_job(c.store, c.reader, run, job, &c.job_id, &c.err)) !=
	    ARL_EXIT_OK) {
		arl_job_reader_free(c.reader);
		arl_store_close(c.store);
		return ret;
	}
	ret = ARL_EXIT_INCOMPLETE;
	if ((rc = arl_job_get(c.reader, c.job_id, &j, &c.err)) <= 0)
		goto out;
	have_job = true;
	run_id = j.run_id;
	if (j.state == ARL_STATE_PENDING || j.state == ARL_STATE_RUNNING) {
		if (print_live(&c, arl_cli_db_path(db), run_id, follow) < 0)
			goto out;
	} else {
		/* A Skipped job ran nothing: its output is the result's it stands for. */
		if (print_stored(&c, j.from_null ? j.id : j.from_id, false) < 0)
			goto out;
	}
	if (c.midline)
		putchar('\n');
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&c.err);
	if (have_job)
		arl_job_view_release(&j);
	arl_job_reader_free(c.reader);
	arl_store_close(c.store);
	free(c.s);
	return ret;
}
