/* Live step output files (see live.h). */
#include "live.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

#define LIVE_DEFAULT_CAP (1024 * 1024)

struct live_stream {
	int fd;         /* -1: not made yet, or no live copy (dead) */
	bool dead;      /* a create or write failed: no live copy of this stream */
	size_t len;     /* bytes in the current file */
	uint64_t total; /* bytes of the stream so far */
	char name[64];
	char *pend; /* with a mask: the unwritten end, a secret's start perhaps */
	size_t npend;
};

/*
 * Nothing is created until a stream has bytes to write: most steps of most jobs print nothing,
 * and a file made on ext4 costs more than such a step's own bookkeeping (inode allocation
 * walks the recently freed ones). `logs` shows only streams with bytes, so an empty file
 * never showed anything.
 */
struct arl_live {
	int run_dirfd; /* the run's directory (borrowed) */
	int dirfd;     /* the job's directory, -1 until made */
	bool dir_failed;
	int64_t job_id;
	int attempt;
	size_t idx;
	char *name; /* the step's name, written to ATTEMPT-IDX.step with the first stream */
	size_t half;
	bool wrote;
	bool masked;
	struct arl_live_mask mask;
	struct live_stream s[2];
};

char *arl_live_root(const char *db_path)
{
	return arl_xasprintf("%s.live", db_path);
}

/* mkdirat 0700 (existing is fine), then opened without following a symlink and checked ours. */
static int open_dir(int at, const char *path, struct arl_err *err)
{
	struct stat st;
	int fd;

	if (mkdirat(at, path, 0700) < 0 && errno != EEXIST)
		return arl_error_errno(err, errno, "cannot create '%s'", path);
	fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return arl_error_errno(err, errno, "cannot open '%s'", path);
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 0077)) {
		close(fd);
		return arl_error(err, ARL_E_IO,
		                 "'%s' is not a private directory of ours (owner and mode 0700 "
		                 "expected); live output is off",
		                 path);
	}
	return fd;
}

int arl_live_run_open(const char *db_path, int64_t run_id, int *dirfd, struct arl_err *err)
{
	char *root = arl_live_root(db_path), run[24];
	int rfd = open_dir(AT_FDCWD, root, err);

	free(root);
	*dirfd = -1;
	if (rfd < 0)
		return -1;
	snprintf(run, sizeof(run), "%lld", (long long)run_id);
	*dirfd = open_dir(rfd, run, err);
	close(rfd);
	return *dirfd < 0 ? -1 : 0;
}

/* Deletes the files in @name under @at, then the directory. */
static void remove_dir(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *e;

	if (fd < 0)
		return;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			if (unlinkat(fd, e->d_name, 0) < 0 && errno == EISDIR)
				remove_dir(fd, e->d_name);
	closedir(d);
	unlinkat(at, name, AT_REMOVEDIR);
}

void arl_live_job_done(int run_dirfd, int64_t job_id)
{
	char job[24];

	if (run_dirfd < 0)
		return;
	snprintf(job, sizeof(job), "%lld", (long long)job_id);
	remove_dir(run_dirfd, job);
}

void arl_live_sweep(int run_dirfd, int64_t keep, bool (*gone)(void *arg, int64_t run_id), void *arg)
{
	int rfd = run_dirfd >= 0 ? openat(run_dirfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	DIR *d;
	struct dirent *e;

	if (rfd < 0)
		return;
	if (!(d = fdopendir(rfd))) {
		close(rfd);
		return;
	}
	while ((e = readdir(d))) {
		char *end;
		long long id = strtoll(e->d_name, &end, 10);

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || id == keep)
			continue;
		if (gone(arg, id))
			remove_dir(dirfd(d), e->d_name);
	}
	closedir(d);
}

void arl_live_run_close(const char *db_path, int64_t run_id, int dirfd)
{
	char *root, run[24];
	int rfd;

	if (dirfd < 0)
		return;
	close(dirfd);
	root = arl_live_root(db_path);
	if ((rfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		snprintf(run, sizeof(run), "%lld", (long long)run_id);
		remove_dir(rfd, run);
		close(rfd);
		rmdir(root); /* another run's live files keep it */
	}
	free(root);
}

static int create_file(int dirfd, const char *name)
{
	return openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
}

struct arl_live *arl_live_open(int run_dirfd, int64_t job_id, int attempt, size_t idx,
                               const char *name, size_t cap, const struct arl_live_mask *mask)
{
	struct arl_live *l;

	if (run_dirfd < 0)
		return NULL;
	l = arl_xcalloc(1, sizeof(*l));
	l->run_dirfd = run_dirfd;
	l->dirfd = -1;
	l->job_id = job_id;
	l->attempt = attempt;
	l->idx = idx;
	l->name = arl_xstrdup(name ? name : "");
	if (mask && mask->fn && mask->ntexts) {
		l->masked = true;
		l->mask = *mask;
	}
	l->half = (cap ? cap : LIVE_DEFAULT_CAP) / 2;
	if (l->half < 4096)
		l->half = 4096;
	for (int i = 0; i < 2; i++) {
		snprintf(l->s[i].name, sizeof(l->s[i].name), "%d-%zu.%s", attempt, idx,
		         i ? "err" : "out");
		l->s[i].fd = -1;
	}
	return l;
}

/*
 * Makes stream @s's file on its first bytes: the job's directory and the step's .step file
 * first (with the first stream of the step), so a follower that finds the stream finds its
 * step's name. False when it cannot (the stream has no live copy then).
 */
static bool make_stream(struct arl_live *l, struct live_stream *s)
{
	if (s->fd >= 0)
		return true;
	if (s->dead || l->dir_failed)
		return false;
	if (l->dirfd < 0) {
		struct arl_err ignored = ARL_ERR_INIT;
		char job[24], meta[64];
		int fd;

		snprintf(job, sizeof(job), "%lld", (long long)l->job_id);
		if ((l->dirfd = open_dir(l->run_dirfd, job, &ignored)) < 0) {
			l->dir_failed = true;
			return false;
		}
		snprintf(meta, sizeof(meta), "%d-%zu.step", l->attempt, l->idx);
		if ((fd = create_file(l->dirfd, meta)) >= 0) {
			(void)!write(fd, l->name, strlen(l->name));
			close(fd);
		}
	}
	if ((s->fd = create_file(l->dirfd, s->name)) < 0)
		s->dead = true;
	return s->fd >= 0;
}

/* A fresh file renamed over the full one: a follower finishes the old one first. */
static void rotate(struct arl_live *l, struct live_stream *s)
{
	char tmp[80], head[128];
	int n, fd;

	snprintf(tmp, sizeof(tmp), "%s.new", s->name);
	n = snprintf(head, sizeof(head), ARL_LIVE_ROTATED, (unsigned long long)s->total);
	fd = create_file(l->dirfd, tmp);
	if (fd < 0 || !arl_write_all(fd, head, (size_t)n) ||
	    renameat(l->dirfd, tmp, l->dirfd, s->name) < 0) {
		if (fd >= 0) {
			close(fd);
			unlinkat(l->dirfd, tmp, 0);
		}
		close(s->fd);
		s->fd = -1;
		s->dead = true;
		return;
	}
	close(s->fd);
	s->fd = fd;
	s->len = (size_t)n;
}

/* Writes @n bytes to the stream's file, rotating it at the bound. */
static void emit(struct arl_live *l, struct live_stream *s, const char *p, size_t n)
{
	if (n && !make_stream(l, s))
		return;
	while (n && s->fd >= 0) {
		size_t take;

		if (s->len >= l->half)
			rotate(l, s);
		if (s->fd < 0)
			break;
		take = l->half - s->len < n ? l->half - s->len : n;
		if (!arl_write_all(s->fd, p, take)) {
			close(s->fd);
			s->fd = -1;
			s->dead = true;
			break;
		}
		s->len += take;
		s->total += take;
		p += take;
		n -= take;
	}
}

/* The longest end of @p (@n bytes) that is the start of a masked text, shorter than it. */
static size_t secret_start(const struct arl_live_mask *m, const char *p, size_t n)
{
	size_t best = 0;

	for (size_t i = 0; i < m->ntexts; i++) {
		size_t len = strlen(m->texts[i]);

		for (size_t k = len - 1 < n ? len - 1 : n; k > best; k--)
			if (!memcmp(p + n - k, m->texts[i], k)) {
				best = k;
				break;
			}
	}
	return best;
}

/*
 * The pending bytes and @p, masked; all written but an end that may begin a secret the next
 * chunk completes (unless @flush).
 */
static void emit_masked(struct arl_live *l, struct live_stream *s, const char *p, size_t n,
                        bool flush)
{
	struct arl_output o = {0};
	size_t keep;

	o.len = s->npend + n;
	o.data = arl_xmalloc(o.len + 1);
	if (s->npend)
		memcpy(o.data, s->pend, s->npend);
	if (n)
		memcpy(o.data + s->npend, p, n);
	o.data[o.len] = '\0';
	if (s->pend)
		explicit_bzero(s->pend, s->npend);
	free(s->pend);
	s->pend = NULL;
	s->npend = 0;
	l->mask.fn(l->mask.arg, &o);
	keep = flush ? 0 : secret_start(&l->mask, o.data, o.len);
	emit(l, s, o.data, o.len - keep);
	if (keep) {
		s->pend = arl_xmalloc(keep);
		memcpy(s->pend, o.data + o.len - keep, keep);
		s->npend = keep;
	}
	explicit_bzero(o.data, o.len);
	free(o.data);
}

void arl_live_write(struct arl_live *l, int stream, const char *p, size_t n)
{
	if (!l || !n || stream < 0 || stream > 1)
		return;
	l->wrote = true;
	if (l->masked)
		emit_masked(l, &l->s[stream], p, n, false);
	else
		emit(l, &l->s[stream], p, n);
}

void arl_live_on_output(void *l, int stream, const char *p, size_t n)
{
	arl_live_write(l, stream, p, n);
}

bool arl_live_wrote(const struct arl_live *l)
{
	return l && l->wrote;
}

void arl_live_close(struct arl_live *l)
{
	if (!l)
		return;
	for (int i = 0; i < 2; i++) {
		if (l->masked && l->s[i].npend)
			emit_masked(l, &l->s[i], NULL, 0, true);
		if (l->s[i].fd >= 0)
			close(l->s[i].fd);
	}
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l->name);
	free(l);
}
