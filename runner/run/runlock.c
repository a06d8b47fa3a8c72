#include "run/runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

/* "<db>.lock-<name>" with the name reduced to safe characters plus a hash to keep it unique. */
static char *lock_path(const char *db, const char *name)
{
	char safe[64];
	size_t n = 0;
	uint64_t h = arl_fnv1a(name);

	for (const char *p = name; *p; p++) {
		if (n < sizeof(safe) - 1)
			safe[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
			                ? *p
			                : '_';
	}
	safe[n] = '\0';
	return arl_xasprintf("%s.lock-%s-%08llx", db, safe, (unsigned long long)(h & 0xffffffffu));
}

/* A second hard link would let the rewrite land in another file, e.g. one planted as a link. */
static int check_plain_file(int fd, const char *path, struct arl_err *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return arl_error_errno(err, errno, "cannot stat the run lock '%s'", path);
	if (!S_ISREG(st.st_mode))
		return arl_error(err, ARL_E_IO, "run lock '%s' is not a regular file; refusing it",
		                 path);
	if (st.st_nlink != 1)
		return arl_error(err, ARL_E_IO,
		                 "run lock '%s' has more than one hard link; refusing it", path);
	return 0;
}

int arl_runlock_take(const char *db, const char *name, enum arl_overlap mode, int *fd_out,
                     struct arl_err *err)
{
	char *path = NULL, host[256] = "?", since[32], holder[512];
	int fd = -1, ret = -1;
	ssize_t n;

	*fd_out = -1;
	if (mode == ARL_OVERLAP_ALLOW)
		return 0;
	path = lock_path(db, name);
	/*
	 * Whoever can write beside the database could plant a link or a FIFO here, and the file is
	 * truncated and rewritten below, as root too: only our own regular file is taken.
	 */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
	if (fd < 0 && errno == ELOOP) {
		arl_error(err, ARL_E_IO, "run lock '%s' is a symbolic link; refusing it", path);
		goto out;
	}
	if (fd < 0) {
		arl_error_errno(err, errno, "cannot open the run lock '%s'", path);
		goto out;
	}
	if (check_plain_file(fd, path, err) < 0)
		goto out;
	while (flock(fd, mode == ARL_OVERLAP_WAIT ? LOCK_EX : LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			arl_error_errno(err, errno, "cannot lock '%s'", path);
			goto out;
		}
		n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		arl_error(err, ARL_E_USAGE, "run '%s' is already running (%s); not starting", name,
		          holder[0] ? holder : "holder unknown");
		ret = 1;
		goto out;
	}
	gethostname(host, sizeof(host) - 1);
	arl_rfc3339_now(since);
	if (ftruncate(fd, 0) == 0) {
		char line[512];
		int len = snprintf(line, sizeof(line), "pid %d on %s since %s\n", (int)getpid(),
		                   host, since);

		(void)!pwrite(fd, line, (size_t)len, 0);
	}
	*fd_out = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return ret;
}

void arl_runlock_release(int fd)
{
	if (fd >= 0)
		close(fd); /* the lock goes with the descriptor; the file stays for the next run */
}
