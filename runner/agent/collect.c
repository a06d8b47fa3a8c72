#include "agent/collect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/protocol.h"

/* Most directory entries read to match one component: a bound on the walk's memory. */
#define MAX_NAMES 100000

struct walk {
	arl_collect_fn fn;
	void *arg;
	size_t spec, left;
	char path[4096];
};

static bool has_glob(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[')
			return true;
	return false;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(struct walk *w, int dirfd, const char *rest, size_t plen);

/* @name (a component) in @dirfd: the file, or the directory the walk goes on in. */
static int visit(struct walk *w, int dirfd, const char *name, const char *rest, size_t plen)
{
	size_t n = strlen(name);
	int fd, rc;

	if (plen + 1 + n >= sizeof(w->path))
		return 0;
	w->path[plen] = '/';
	memcpy(w->path + plen + 1, name, n + 1);
	if (!rest) {
		if (!w->left)
			return 0;
		w->left--;
		return w->fn(w->arg, w->spec, dirfd, name, w->path);
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* missing, a symlink, not a directory: nothing matches under it */
	rc = walk(w, fd, rest, plen + 1 + n);
	close(fd);
	return rc;
}

/* @rest: the pattern's components still to match, after a '/'. */
static int walk(struct walk *w, int dirfd, const char *rest, size_t plen)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	char comp[256], **names = NULL;
	size_t nnames = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if (n == 0 || n >= sizeof(comp))
		return 0;
	memcpy(comp, rest, n);
	comp[n] = '\0';
	if (!has_glob(comp, n))
		return visit(w, dirfd, comp, slash ? slash + 1 : NULL, plen);
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 0;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d)) && nnames < MAX_NAMES) {
		char **nv;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fnmatch(comp, de->d_name, FNM_PERIOD) != 0)
			continue;
		if (nnames == cap) {
			cap = cap ? 2 * cap : 16;
			if (!(nv = realloc(names, cap * sizeof(*names))))
				break;
			names = nv;
		}
		if (!(names[nnames] = strdup(de->d_name)))
			break;
		nnames++;
	}
	closedir(d);
	if (nnames)
		qsort(names, nnames, sizeof(*names), cmp_names);
	for (size_t i = 0; i < nnames && rc == 0; i++)
		rc = visit(w, dirfd, names[i], slash ? slash + 1 : NULL, plen);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	return rc;
}

int arl_collect_glob(int rootfd, const char *pattern, size_t skip, size_t spec, size_t max,
                     arl_collect_fn fn, void *arg)
{
	struct walk w = {.fn = fn, .arg = arg, .spec = spec, .left = max};
	const char *rest = pattern + skip;
	size_t plen = skip < sizeof(w.path) ? skip : 0;

	if (strlen(pattern) < skip || (rest[0] && rest[0] != '/'))
		return 0;
	memcpy(w.path, pattern, plen);
	w.path[plen] = '\0';
	if (!rest[0] || !rest[1])
		return 0; /* the root itself is a directory, never a file */
	return walk(&w, rootfd, rest + 1, plen);
}

int arl_collect_too_large(int64_t size, int64_t max, char *msg, size_t len)
{
	if (size <= max)
		return 0;
	snprintf(msg, len, "larger than its maxSize (%lld bytes; %lld allowed)", (long long)size,
	         (long long)max);
	return 1;
}

int arl_collect_open(int dirfd, const char *name, int64_t *size, const char **why)
{
	struct stat st = {0};
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	*why = NULL;
	if (fd < 0) {
		if (errno == ELOOP)
			*why = "a symlink: not followed";
		else if (errno != ENOENT)
			*why = errno == EACCES ? "permission denied" : "cannot be opened";
		if (errno == ENXIO) /* a socket */
			*why = "not a regular file";
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = S_ISDIR(st.st_mode) ? "a directory" : "not a regular file";
		close(fd);
		return -1;
	}
	*size = st.st_size;
	return fd;
}

/* ---- the agent's side: `--collect` writes the stream on stdout ---- */

struct out {
	int64_t total_left; /* bytes the attempt may still keep */
	int64_t max_size;   /* of the current pattern */
	bool failed;        /* stdout is gone: stop */
};

static void put(struct out *o, const void *p, size_t n)
{
	const char *c = p;

	while (n && !o->failed) {
		ssize_t w = write(1, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			o->failed = true;
			return;
		}
		c += w, n -= (size_t)w;
	}
}

static void record(struct out *o, char type, const void *p, size_t n)
{
	unsigned char h[5];

	h[0] = (unsigned char)type;
	arl_proto_put_u32(h + 1, (uint32_t)n);
	put(o, h, sizeof(h));
	put(o, p, n);
}

static void end_text(struct out *o, const char *text)
{
	record(o, 'E', text, strlen(text));
}

static int send_file(void *arg, size_t spec, int dirfd, const char *name, const char *path)
{
	struct out *o = arg;
	unsigned char h[16];
	static char buf[ARL_COLLECT_CHUNK];
	const char *why;
	char msg[128];
	int64_t sent = 0;
	int64_t size = -1;
	int fd;

	if ((fd = arl_collect_open(dirfd, name, &size, &why)) < 0 && !why)
		return 0;
	arl_proto_put_u32(h, (uint32_t)spec);
	arl_proto_put_u32(h + 4, (uint32_t)((uint64_t)size & 0xffffffffu));
	arl_proto_put_u32(h + 8, (uint32_t)((uint64_t)size >> 32));
	arl_proto_put_u32(h + 12, (uint32_t)strlen(path));
	put(o, "B", 1);
	put(o, h, sizeof(h));
	put(o, path, strlen(path));
	if (fd < 0) {
		end_text(o, why);
		return o->failed ? -1 : 0;
	}
	if (arl_collect_too_large(size, o->max_size, msg, sizeof(msg))) {
		end_text(o, msg);
		close(fd);
		return o->failed ? -1 : 0;
	}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			end_text(o, "cannot be read");
			break;
		}
		if (r == 0) {
			record(o, 'E', "", 0);
			break;
		}
		sent += r;
		o->total_left -= r;
		/* One byte over is enough for the runner to refuse it: stop reading. */
		if (sent > o->max_size || o->total_left < 0) {
			end_text(o, sent > o->max_size ? "larger than its maxSize"
			                               : "over the attempt's total");
			break;
		}
		record(o, 'D', buf, (size_t)r);
		if (o->failed)
			break;
	}
	close(fd);
	return o->failed ? -1 : 0;
}

static bool parse_num(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return !errno && end != s && !*end && *out >= 0;
}

int arl_collect_main(int argc, char **argv)
{
	struct out o = {0};
	long long total, files, max;
	int root;

	if (argc < 6 || (argc - 4) % 2 || !parse_num(argv[2], &total) ||
	    !parse_num(argv[3], &files)) {
		return 2;
	}
	if ((root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 1;
	o.total_left = total;
	for (int i = 4; i + 1 < argc && !o.failed; i += 2) {
		if (!parse_num(argv[i], &max) || argv[i + 1][0] != '/')
			return 2;
		o.max_size = max;
		arl_collect_glob(root, argv[i + 1], 0, (size_t)(i - 4) / 2, (size_t)files + 1,
		                 send_file, &o);
	}
	close(root);
	return o.failed ? 1 : 0;
}
