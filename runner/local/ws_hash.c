/* The digest of a workspace tree (ws_hash.h). */
#include "local/ws_hash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "util.h"
#include "banned.h"

/* Deeper than any real tree; a bound on the recursion. */
#define MAX_DEPTH 256

/* Length-prefixed, so that ("ab", "c") and ("a", "bc") differ. */
static void put_str(struct arl_sha256 *h, const char *s, size_t n)
{
	uint64_t len = n;

	arl_sha256_update(h, &len, sizeof(len));
	arl_sha256_update(h, s, n);
}

static void put_u64(struct arl_sha256 *h, uint64_t v)
{
	arl_sha256_update(h, &v, sizeof(v));
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int hash_file(struct arl_sha256 *h, int dfd, const char *name, const char *rel,
                     struct arl_err *err)
{
	char buf[65536];
	ssize_t n;
	uint64_t total = 0;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;

	if (fd < 0)
		return arl_error_errno(err, errno, "cannot read workspace file '%s'", rel);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return arl_error(err, ARL_E_IO, "workspace file '%s' changed while hashed", rel);
	}
	put_u64(h, (uint64_t)st.st_size);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return arl_error_errno(err, errno, "cannot read workspace file '%s'", rel);
		}
		arl_sha256_update(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	close(fd);
	/* The size said first and the bytes read must agree, or the file changed meanwhile. */
	if (total != (uint64_t)st.st_size)
		return arl_error(err, ARL_E_IO, "workspace file '%s' changed while hashed", rel);
	return 0;
}

/* @dfd is the directory @rel (relative to the workspace; "" for its top); it is closed. */
static int hash_dir(struct arl_sha256 *h, int dfd, const char *rel, int depth, struct arl_err *err)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int ret = -1;

	if (!d) {
		close(dfd);
		return arl_error_errno(err, errno, "cannot list workspace directory '%s'", rel);
	}
	if (depth > MAX_DEPTH) {
		arl_error(err, ARL_E_LIMIT, "workspace directory '%s' is nested too deeply", rel);
		goto out;
	}
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		ARL_GROW(names, cap, n + 1);
		names[n++] = arl_xstrdup(e->d_name);
		errno = 0;
	}
	if (errno) {
		arl_error_errno(err, errno, "cannot list workspace directory '%s'", rel);
		goto out;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	put_u64(h, n);
	for (size_t i = 0; i < n; i++) {
		char *path = *rel ? arl_xasprintf("%s/%s", rel, names[i]) : arl_xstrdup(names[i]);
		struct stat st;
		int rc = 0;

		put_str(h, names[i], strlen(names[i]));
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = arl_error_errno(err, errno, "cannot stat workspace entry '%s'", path);
		} else {
			put_u64(h, (uint64_t)(st.st_mode & 07777));
			if (S_ISREG(st.st_mode)) {
				put_u64(h, 'f');
				rc = hash_file(h, dirfd(d), names[i], path, err);
			} else if (S_ISLNK(st.st_mode)) {
				char target[4096];
				ssize_t len =
				    readlinkat(dirfd(d), names[i], target, sizeof(target));

				put_u64(h, 'l');
				if (len < 0 || (size_t)len >= sizeof(target))
					rc = arl_error_errno(err, len < 0 ? errno : ENAMETOOLONG,
					                     "cannot read workspace link '%s'",
					                     path);
				else
					put_str(h, target, (size_t)len);
			} else if (S_ISDIR(st.st_mode)) {
				int sub = openat(dirfd(d), names[i],
				                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

				put_u64(h, 'd');
				rc = sub < 0
				         ? arl_error_errno(err, errno,
				                           "cannot open workspace directory '%s'",
				                           path)
				         : hash_dir(h, sub, path, depth + 1, err);
			} else {
				rc = arl_error(
				    err, ARL_E_INVALID,
				    "workspace entry '%s' is not a file, directory or symbolic"
				    " link: hashWorkspace cannot hash it",
				    path);
			}
		}
		free(path);
		if (rc < 0)
			goto out;
	}
	ret = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

int arl_ws_hash(const char *dir, char out[65], struct arl_err *err)
{
	struct arl_sha256 h;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return arl_error_errno(err, errno, "cannot open workspace '%s'", dir);
	arl_sha256_init(&h);
	put_str(&h, "arl-batch workspace v1", strlen("arl-batch workspace v1"));
	if (hash_dir(&h, fd, "", 0, err) < 0) {
		arl_sha256_release(&h);
		arl_err_prefix(err, "hashWorkspace of '%s'", dir);
		return -1;
	}
	arl_sha256_hex(&h, out);
	return 0;
}
