#include "store/store_artifacts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
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
	/* The same content stored before: keep that file. */
	if (access(dst, F_OK) == 0) {
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
