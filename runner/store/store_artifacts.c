#include "store/store_artifacts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "util.h"
#include "banned.h"

struct arl_blob {
	char *dir;
	char *tmp; /* its temporary name */
	int fd;
	struct arl_sha256 sha;
};

char *arl_artifacts_dir(const char *db_path)
{
	return arl_xasprintf("%s.artifacts", db_path);
}

static bool is_digest(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

char *arl_artifacts_file(const char *dir, const char *sha256)
{
	if (!sha256 || !is_digest(sha256))
		return NULL;
	return arl_xasprintf("%s/sha256/%.2s/%s", dir, sha256, sha256);
}

/* mkdir 0700 that accepts an existing directory (not a symlink to one). */
static int mkdir_private(const char *path, struct arl_err *err)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return arl_error_errno(err, errno, "cannot create '%s'", path);
	if (lstat(path, &st) < 0)
		return arl_error_errno(err, errno, "cannot read '%s'", path);
	if (!S_ISDIR(st.st_mode))
		return arl_error(err, ARL_E_IO, "'%s' is not a directory", path);
	return 0;
}

int arl_blob_begin(const char *dir, struct arl_blob **out, struct arl_err *err)
{
	struct arl_blob *b;
	char *tmpdir = arl_xasprintf("%s/tmp", dir);
	int rc = -1;

	*out = NULL;
	if (mkdir_private(dir, err) < 0 || mkdir_private(tmpdir, err) < 0)
		goto out;
	b = arl_xcalloc(1, sizeof(*b));
	b->dir = arl_xstrdup(dir);
	b->tmp = arl_xasprintf("%s/XXXXXX", tmpdir);
	if ((b->fd = mkostemp(b->tmp, O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot create a file in '%s'", tmpdir);
		free(b->tmp);
		b->tmp = NULL;
		arl_blob_abort(b);
		goto out;
	}
	arl_sha256_init(&b->sha);
	*out = b;
	rc = 0;
out:
	free(tmpdir);
	return rc;
}

int arl_blob_write(struct arl_blob *b, const void *p, size_t n, struct arl_err *err)
{
	const char *c = p;

	arl_sha256_update(&b->sha, p, n);
	while (n) {
		ssize_t w = write(b->fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return arl_error_errno(err, errno, "cannot write '%s'", b->tmp);
		c += w, n -= (size_t)w;
	}
	return 0;
}

int arl_blob_commit(struct arl_blob *b, char sha256[65], struct arl_err *err)
{
	char *sub = NULL, *sub2 = NULL, *dst = NULL;
	int rc = -1;

	arl_sha256_hex(&b->sha, sha256);
	if (fdatasync(b->fd) < 0) {
		arl_error_errno(err, errno, "cannot write '%s'", b->tmp);
		goto out;
	}
	sub = arl_xasprintf("%s/sha256", b->dir);
	sub2 = arl_xasprintf("%s/sha256/%.2s", b->dir, sha256);
	dst = arl_artifacts_file(b->dir, sha256);
	if (mkdir_private(sub, err) < 0 || mkdir_private(sub2, err) < 0)
		goto out;
	/* The same content stored before: keep that file, touched so a sweep spares it. */
	if (utimensat(AT_FDCWD, dst, NULL, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = 0;
		goto out;
	}
	if (rename(b->tmp, dst) < 0) {
		arl_error_errno(err, errno, "cannot store '%s'", dst);
		goto out;
	}
	free(b->tmp);
	b->tmp = NULL;
	rc = 0;
out:
	free(sub);
	free(sub2);
	free(dst);
	arl_blob_abort(b);
	return rc;
}

void arl_blob_abort(struct arl_blob *b)
{
	if (!b)
		return;
	arl_sha256_release(&b->sha);
	if (b->fd >= 0)
		close(b->fd);
	if (b->tmp)
		unlink(b->tmp);
	free(b->tmp);
	free(b->dir);
	free(b);
}

/* Unix seconds from which stored files are spared: the oldest running run's start, if any. */
static int sweep_cutoff(struct arl_store *s, int64_t *cutoff, struct arl_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*cutoff = INT64_MAX;
	if (arl_store_prepare(s,
	                      "SELECT CAST(strftime('%s', min(started_at)) AS INTEGER) FROM runs"
	                      " WHERE status = 'running'",
	                      &st, NULL, err) < 0)
		return -1;
	rc = arl_store_step(s, st, err);
	if (rc == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*cutoff = sqlite3_column_int64(st, 0) - 1;
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

/* Deletes @name in @dfd when it is a regular file last changed before @cutoff. */
static void drop_old(int dfd, const char *name, int64_t cutoff, int64_t *files, int64_t *bytes)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    (int64_t)st.st_mtime >= cutoff)
		return;
	if (unlinkat(dfd, name, 0) == 0) {
		(*files)++;
		*bytes += st.st_size;
	}
}

int arl_artifacts_sweep(struct arl_store *s, int64_t *files, int64_t *bytes, struct arl_err *err)
{
	char *dir = arl_artifacts_dir(arl_store_path(s)), *sub = NULL;
	sqlite3_stmt *used = NULL;
	int64_t cutoff;
	DIR *top = NULL;
	struct dirent *de;
	int ret = -1;

	*files = *bytes = 0;
	if (sweep_cutoff(s, &cutoff, err) < 0 ||
	    arl_store_prepare(s, "SELECT 1 FROM artifacts WHERE sha256 = ?1 LIMIT 1", &used, NULL,
	                      err) < 0)
		goto out;
	/* What a runner killed while storing a file left. */
	sub = arl_xasprintf("%s/tmp", dir);
	if ((top = opendir(sub))) {
		while ((de = readdir(top)))
			if (de->d_name[0] != '.')
				drop_old(dirfd(top), de->d_name, cutoff, files, bytes);
		closedir(top);
		top = NULL;
	}
	free(sub);
	sub = arl_xasprintf("%s/sha256", dir);
	if (!(top = opendir(sub))) {
		ret = errno == ENOENT ? 0 : arl_error_errno(err, errno, "cannot read '%s'", sub);
		goto out;
	}
	while ((de = readdir(top))) {
		int dfd;
		DIR *d;
		struct dirent *e;

		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		dfd =
		    openat(dirfd(top), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 || !(d = fdopendir(dfd))) {
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		while ((e = readdir(d))) {
			int rc;

			if (!is_digest(e->d_name) || strncmp(e->d_name, de->d_name, 2))
				continue;
			sqlite3_reset(used);
			sqlite3_bind_text(used, 1, e->d_name, -1, SQLITE_TRANSIENT);
			if ((rc = arl_store_step(s, used, err)) < 0) {
				closedir(d);
				goto out;
			}
			if (rc == 0)
				drop_old(dirfd(d), e->d_name, cutoff, files, bytes);
		}
		closedir(d);
		unlinkat(dirfd(top), de->d_name, AT_REMOVEDIR); /* when it is empty */
	}
	ret = 0;
out:
	if (top)
		closedir(top);
	sqlite3_finalize(used);
	free(sub);
	free(dir);
	return ret;
}
