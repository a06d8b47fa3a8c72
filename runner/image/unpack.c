/*
 * Unpacking one layer (unpack.h). Two libarchive readers are stacked: the outer one ("raw"
 * format, gzip/zstd filters) turns the blob into the uncompressed tar, hashed as it passes (the
 * diff_id), and feeds the inner tar reader. Entries are written with *at() calls relative to
 * directory fds opened with O_NOFOLLOW, never by path from the cwd: a symlink in the layer is
 * kept as a symlink but never followed, so nothing lands outside the layer's directory, and
 * threads may unpack at the same time (archive_write_disk works relative to the cwd).
 */
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util.h"

#define ZBUF_SIZE (1u << 20)
#define UBUF_SIZE (256u << 10)
#define MAX_DEPTH 256 /* path components of one entry: far beyond real images */
#define OPAQUE    ".wh..wh..opq"
#define WH_PREFIX ".wh."
#define WH_META   ".wh..wh."

struct late_dir { /* a directory whose mode drops the owner's rwx: set once it is filled */
	char *path;
	mode_t mode;
};

struct ctx {
	const struct arl_unpack_opts *o;
	struct arl_err *err;
	int fd, root;
	EVP_MD_CTX *hz, *hu;
	unsigned char *zbuf, *ubuf;
	struct archive *outer;
	uint64_t tar_bytes;
	bool read_failed;
	char read_errmsg[256];
	/* the parent directory of the last entry, kept open: tar entries come dir by dir */
	char *cache_path;
	int cache_fd;
	struct late_dir *late;
	size_t nlate, late_cap;
};

void arl_unpack_sha256_hex(const void *p, size_t len, char hex[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(p, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void md_hex(EVP_MD_CTX *c, char hex[72])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_DigestFinal_ex(c, md, &n);
	memcpy(hex, "sha256:", 7);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
}

static la_ssize_t outer_read(struct archive *a, void *arg, const void **buf)
{
	struct ctx *c = arg;
	ssize_t n;

	do
		n = read(c->fd, c->zbuf, ZBUF_SIZE);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "read error");
		return -1;
	}
	EVP_DigestUpdate(c->hz, c->zbuf, (size_t)n);
	*buf = c->zbuf;
	return n;
}

static la_ssize_t inner_read(struct archive *a, void *arg, const void **buf)
{
	struct ctx *c = arg;
	la_ssize_t n = archive_read_data(c->outer, c->ubuf, UBUF_SIZE);

	if (n < 0) {
		c->read_failed = true;
		snprintf(c->read_errmsg, sizeof(c->read_errmsg), "%s",
		         archive_error_string(c->outer) ? archive_error_string(c->outer)
		                                        : "cannot decompress");
		archive_set_error(a, EIO, "%s", c->read_errmsg);
		return -1;
	}
	EVP_DigestUpdate(c->hu, c->ubuf, (size_t)n);
	c->tar_bytes += (uint64_t)n;
	*buf = c->ubuf;
	return n;
}

static int entry_error(struct ctx *c, const char *entry, const char *fmt, ...) ARL_PRINTF(3, 4);
static int entry_error(struct ctx *c, const char *entry, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return arl_error(c->err, ARL_E_INVALID, "layer %s: entry '%s': %s", c->o->layer, entry,
	                 msg);
}

static int entry_errno(struct ctx *c, const char *entry, int e, const char *what)
{
	char eb[128];

	return entry_error(c, entry, "%s: %s", what, arl_strerror(e, eb, sizeof(eb)));
}

/*
 * Splits @name into components in @buf (modified): no absolute names, no '..', '.' and empty
 * components dropped. Returns the count, or -1 with the error set.
 */
static int split(struct ctx *c, const char *name, char *buf, char **comp, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	if (name[0] == '/')
		return entry_error(c, name, "absolute names are refused");
	for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (!strcmp(t, "."))
			continue;
		if (!strcmp(t, ".."))
			return entry_error(c, name, "'..' in a name is refused (path traversal)");
		if (n == max)
			return entry_error(c, name, "more than %d path components", MAX_DEPTH);
		comp[n++] = t;
	}
	return (int)n;
}

static void cache_drop(struct ctx *c)
{
	if (c->cache_fd >= 0)
		close(c->cache_fd);
	c->cache_fd = -1;
	free(c->cache_path);
	c->cache_path = NULL;
}

static int own(struct ctx *c, int dfd, const char *base, const char *entry)
{
	if (c->o->chown && fchownat(dfd, base, c->o->uid, c->o->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_errno(c, entry, errno, "cannot chown");
	return 0;
}

/*
 * The directory of components comp[0..n) under the layer's root, opened without following
 * symlinks; @create makes missing ones (0755). Returns a borrowed fd (the cache's) or -1.
 */
static int open_parent(struct ctx *c, char **comp, size_t n, bool create, const char *entry)
{
	char path[8192];
	size_t len = 0;
	int fd;

	path[0] = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(path + len, sizeof(path) - len, "%s%s", i ? "/" : "", comp[i]);
		if (w < 0 || (size_t)w >= sizeof(path) - len)
			return entry_error(c, entry, "name too long");
		len += (size_t)w;
	}
	if (c->cache_path && !strcmp(c->cache_path, path))
		return c->cache_fd;
	cache_drop(c);
	fd = dup(c->root);
	if (fd < 0)
		return entry_errno(c, entry, errno, "dup");
	for (size_t i = 0; i < n; i++) {
		int next = openat(fd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp[i], 0755) < 0 && errno != EEXIST) {
				entry_errno(c, entry, errno, "cannot make its directory");
				goto fail;
			}
			if (own(c, fd, comp[i], entry) < 0)
				goto fail;
			next = openat(fd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0) {
			if (errno == ELOOP || errno == ENOTDIR)
				entry_error(c, entry,
				            "'%s' in its path is a symlink or not a directory "
				            "(writing through a link is refused)",
				            comp[i]);
			else
				entry_errno(c, entry, errno, "cannot open its directory");
			goto fail;
		}
		close(fd);
		fd = next;
	}
	c->cache_fd = fd;
	c->cache_path = arl_xstrdup(path);
	return fd;
fail:
	close(fd);
	return -1;
}

/* Makes room for a new @base in @dfd: removes what is there unless @keep_dir and it is one. */
static int clear_name(struct ctx *c, int dfd, const char *base, bool keep_dir, bool *is_dir,
                      const char *entry)
{
	struct stat st;

	*is_dir = false;
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return entry_errno(c, entry, errno, "cannot stat");
	}
	if (S_ISDIR(st.st_mode)) {
		if (keep_dir) {
			*is_dir = true;
			return 0;
		}
		/* The cached parent may be under it; @dfd may be that cache: kept open by a dup. */
		int keep = dup(dfd), r;
		if (keep < 0)
			return entry_errno(c, entry, errno, "dup");
		cache_drop(c);
		r = arl_unpack_rmtree(keep, base, c->err);
		close(keep);
		return r;
	}
	if (unlinkat(dfd, base, 0) < 0)
		return entry_errno(c, entry, errno, "cannot replace");
	return 0;
}

/* chmod of the directory @base in @dfd, never through a symlink a later entry put there. */
static int chmod_dir(int dfd, const char *base, mode_t mode)
{
	int fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), r;

	if (fd < 0)
		return -1;
	r = fchmod(fd, mode);
	close(fd);
	return r;
}

static int set_dir_mode(struct ctx *c, int dfd, const char *base, const char *path, mode_t mode,
                        const char *entry)
{
	if ((mode & S_IRWXU) != S_IRWXU) {
		ARL_GROW(c->late, c->late_cap, c->nlate + 1);
		c->late[c->nlate].path = arl_xstrdup(path);
		c->late[c->nlate++].mode = mode;
		mode |= S_IRWXU;
	}
	/* Ours, just made or checked to be a directory, in a directory nobody else writes. */
	if (chmod_dir(dfd, base, mode) < 0)
		return entry_errno(c, entry, errno, "cannot chmod");
	return 0;
}

static int write_data(struct ctx *c, struct archive *a, int fd, int64_t size, const char *entry)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
		const char *p = buf;
		while (len) {
			ssize_t w = pwrite(fd, p, len, off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return entry_errno(c, entry, errno, "cannot write");
			p += w, len -= (size_t)w, off += w;
		}
	}
	if (r != ARCHIVE_EOF)
		return entry_error(c, entry, "%s",
		                   c->read_failed ? c->read_errmsg : archive_error_string(a));
	if (size >= 0 && ftruncate(fd, size) < 0) /* sparse files end in a hole */
		return entry_errno(c, entry, errno, "cannot truncate");
	return 0;
}

static int do_entry(struct ctx *c, struct archive *a, struct archive_entry *e,
                    struct arl_unpack_stats *st)
{
	const char *name = archive_entry_pathname(e);
	char *buf = NULL, *tbuf = NULL, *comp[MAX_DEPTH], *tcomp[MAX_DEPTH];
	int n, pfd, ret = -1, fd = -1;
	mode_t type = archive_entry_filetype(e);
	/* No set-id bits, and no group/other write: unpacked layers are shared by every later
	 * run and sit on the host, where a world-writable entry (a 1777 /tmp) would let any local
	 * user plant files; in the sandbox one mapped uid owns everything, so nothing is lost. */
	mode_t perm = archive_entry_perm(e) & 07777 & ~(mode_t)(S_ISUID | S_ISGID | 022);
	const char *base, *hl = archive_entry_hardlink(e);
	bool is_dir;

	if (!name || !*name)
		return entry_error(c, "", "an entry without a name");
	buf = arl_xstrdup(name);
	if ((n = split(c, name, buf, comp, MAX_DEPTH)) < 0)
		goto out;
	if (n == 0) { /* the layer's root itself */
		ret = 0;
		goto out;
	}
	base = comp[n - 1];

	/* Whiteouts: the overlay form of a deletion (docs: OCI image-spec layer.md). */
	if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX))) {
		if ((pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0)
			goto out;
		if (!strcmp(base, OPAQUE)) {
			if (fsetxattr(pfd, "user.overlay.opaque", "y", 1, 0) < 0) {
				entry_errno(c, name, errno, "cannot mark the directory opaque");
				goto out;
			}
			if (c->o->chown) /* root mounts without userxattr read the trusted one */
				(void)fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0);
			ret = 0;
			goto out;
		}
		if (!strncmp(base, WH_META, strlen(WH_META))) { /* aufs metadata: not content */
			ret = 0;
			goto out;
		}
		base += strlen(WH_PREFIX);
		if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
			entry_error(c, name, "a whiteout without a name");
			goto out;
		}
		if (clear_name(c, pfd, base, false, &is_dir, name) < 0)
			goto out;
		if ((pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0)
			goto out;
		if (mknodat(pfd, base, S_IFCHR | 0, makedev(0, 0)) < 0) {
			entry_errno(c, name, errno, "cannot make the whiteout (a 0/0 device)");
			goto out;
		}
		ret = own(c, pfd, base, name);
		goto out;
	}

	if (hl) {
		int tn, tpfd;

		tbuf = arl_xstrdup(hl);
		if (hl[0] == '/' || !strcmp(hl, "..") || !strncmp(hl, "../", 3) ||
		    strstr(hl, "/../") ||
		    (strlen(hl) >= 3 && !strcmp(hl + strlen(hl) - 3, "/.."))) {
			entry_error(c, name, "hard link to '%s' leaves the layer", hl);
			goto out;
		}
		if ((tn = split(c, hl, tbuf, tcomp, MAX_DEPTH)) < 0)
			goto out;
		if (tn == 0) {
			entry_error(c, name, "hard link to the layer's root");
			goto out;
		}
		if ((tpfd = open_parent(c, tcomp, (size_t)tn - 1, false, name)) < 0)
			goto out;
		tpfd = dup(tpfd); /* open_parent below replaces the cache */
		if ((pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0 ||
		    clear_name(c, pfd, base, false, &is_dir, name) < 0 ||
		    (pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0) {
			close(tpfd);
			goto out;
		}
		if (linkat(tpfd, tcomp[tn - 1], pfd, base, 0) < 0) {
			int en = errno;
			close(tpfd);
			entry_errno(c, name, en, "cannot hard link");
			goto out;
		}
		close(tpfd);
		ret = 0;
		goto out;
	}

	if ((pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0)
		goto out;
	switch (type) {
	case AE_IFDIR:
		if (clear_name(c, pfd, base, true, &is_dir, name) < 0 ||
		    (pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0)
			goto out;
		if (!is_dir && mkdirat(pfd, base, 0700) < 0) {
			entry_errno(c, name, errno, "cannot make the directory");
			goto out;
		}
		if (own(c, pfd, base, name) < 0)
			goto out;
		{
			/* The path of the dir itself, for a mode set late. */
			char *path = c->cache_path && *c->cache_path
			                 ? arl_xasprintf("%s/%s", c->cache_path, base)
			                 : arl_xstrdup(base);
			int r = set_dir_mode(c, pfd, base, path, perm, name);
			free(path);
			if (r < 0)
				goto out;
		}
		break;
	case AE_IFREG: {
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {0}};

		/* Created first: a name met twice in one layer (rare) is cleared on EEXIST. */
		fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST) {
			if (clear_name(c, pfd, base, false, &is_dir, name) < 0 ||
			    (pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0)
				goto out;
			fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			            0600);
		}
		if (fd < 0) {
			entry_errno(c, name, errno, "cannot create");
			goto out;
		}
		if (write_data(c, a, fd, archive_entry_size_is_set(e) ? archive_entry_size(e) : -1,
		               name) < 0)
			goto out;
		if (c->o->chown && fchown(fd, c->o->uid, c->o->gid) < 0) {
			entry_errno(c, name, errno, "cannot chown");
			goto out;
		}
		if (fchmod(fd, perm) < 0) {
			entry_errno(c, name, errno, "cannot chmod");
			goto out;
		}
		ts[1].tv_sec = archive_entry_mtime(e);
		ts[1].tv_nsec = archive_entry_mtime_nsec(e);
		(void)futimens(fd, ts);
		st->bytes += (uint64_t)archive_entry_size(e);
		break;
	}
	case AE_IFLNK: {
		const char *target = archive_entry_symlink(e);
		int r;

		if (!target) {
			entry_error(c, name, "a symlink without a target");
			goto out;
		}
		/* Kept as is, absolute or not: it resolves inside the container, never here. */
		r = symlinkat(target, pfd, base);
		if (r < 0 && errno == EEXIST) {
			if (clear_name(c, pfd, base, false, &is_dir, name) < 0 ||
			    (pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0)
				goto out;
			r = symlinkat(target, pfd, base);
		}
		if (r < 0) {
			entry_errno(c, name, errno, "cannot make the symlink");
			goto out;
		}
		if (own(c, pfd, base, name) < 0)
			goto out;
		break;
	}
	case AE_IFIFO:
		if (clear_name(c, pfd, base, false, &is_dir, name) < 0 ||
		    (pfd = open_parent(c, comp, (size_t)n - 1, true, name)) < 0)
			goto out;
		if (mkfifoat(pfd, base, perm) < 0) {
			entry_errno(c, name, errno, "cannot make the fifo");
			goto out;
		}
		if (own(c, pfd, base, name) < 0)
			goto out;
		break;
	case AE_IFCHR:
	case AE_IFBLK:
		entry_error(c, name, "device nodes are refused");
		goto out;
	default:
		entry_error(c, name, "an entry of unknown type 0%o is refused", (unsigned)type);
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(tbuf);
	return ret;
}

/* Modes that drop the owner's rwx, deepest first (a parent's would stop the child's chmod). */
static int finish_dirs(struct ctx *c)
{
	for (size_t i = c->nlate; i-- > 0;) {
		char *buf = arl_xstrdup(c->late[i].path), *comp[MAX_DEPTH];
		int n = split(c, c->late[i].path, buf, comp, MAX_DEPTH), pfd = -1;

		/* A dir a later entry replaced (by a symlink, a file) keeps that entry's mode. */
		if (n > 0 &&
		    (pfd = open_parent(c, comp, (size_t)n - 1, false, c->late[i].path)) >= 0 &&
		    chmod_dir(pfd, comp[n - 1], c->late[i].mode) < 0 && errno != ELOOP &&
		    errno != ENOTDIR && errno != ENOENT)
			n = entry_errno(c, c->late[i].path, errno, "cannot chmod");
		free(buf);
		if (n < 0 || pfd < 0)
			return -1;
	}
	return 0;
}

static int unpack(int fd, int dir_fd, const struct arl_unpack_opts *o, struct arl_unpack_stats *st,
                  struct arl_err *err)
{
	struct ctx c = {.o = o, .err = err, .fd = fd, .root = dir_fd, .cache_fd = -1};
	struct archive *in = NULL;
	struct archive_entry *e;
	struct arl_unpack_stats local = {0};
	char got[72];
	int r, ret = -1;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	c.hz = EVP_MD_CTX_new();
	c.hu = EVP_MD_CTX_new();
	c.zbuf = arl_xmalloc(ZBUF_SIZE);
	c.ubuf = arl_xmalloc(UBUF_SIZE);
	if (!c.hz || !c.hu || !EVP_DigestInit_ex(c.hz, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(c.hu, EVP_sha256(), NULL)) {
		arl_error(err, ARL_E_NOMEM, "layer %s: cannot set up sha256", o->layer);
		goto out;
	}
	c.outer = archive_read_new();
	in = archive_read_new();
	if (!c.outer || !in) {
		arl_error(err, ARL_E_NOMEM, "layer %s: cannot set up libarchive", o->layer);
		goto out;
	}
	archive_read_support_filter_gzip(c.outer);
	archive_read_support_filter_zstd(c.outer);
	archive_read_support_format_raw(c.outer);
	if (archive_read_open(c.outer, &c, NULL, outer_read, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(c.outer, &e) != ARCHIVE_OK) {
		arl_error(err, ARL_E_INVALID, "layer %s: %s", o->layer,
		          archive_error_string(c.outer) ? archive_error_string(c.outer)
		                                        : "empty or unreadable");
		goto out;
	}
	if (dir_fd < 0) /* only verifying: the tar is not read */
		goto drain;
	archive_read_support_format_tar(in);
	if (archive_read_open(in, &c, NULL, inner_read, NULL) != ARCHIVE_OK) {
		arl_error(err, ARL_E_INVALID, "layer %s: not a tar (nor gzip or zstd of one): %s",
		          o->layer, archive_error_string(in) ? archive_error_string(in) : "?");
		goto out;
	}
	while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		if (do_entry(&c, in, e, st) < 0)
			goto out;
		st->entries++;
	}
	if (r != ARCHIVE_EOF) {
		arl_error(err, ARL_E_INVALID, "layer %s: %s", o->layer,
		          c.read_failed              ? c.read_errmsg
		          : archive_error_string(in) ? archive_error_string(in)
		                                     : "not a tar");
		goto out;
	}
	/* The tar's end blocks and any padding after them count in the diff_id. */
drain:
	for (;;) {
		const void *p;
		la_ssize_t n = inner_read(in, &c, &p);
		if (n < 0) {
			arl_error(err, ARL_E_INVALID, "layer %s: %s", o->layer, c.read_errmsg);
			goto out;
		}
		if (n == 0)
			break;
	}
	{ /* and the compressed stream's rest, for the blob's digest */
		ssize_t n;
		while ((n = read(fd, c.zbuf, ZBUF_SIZE)) > 0)
			EVP_DigestUpdate(c.hz, c.zbuf, (size_t)n);
	}
	if (o->digest) {
		md_hex(c.hz, got);
		if (strcmp(got, o->digest)) {
			arl_error(err, ARL_E_INVALID,
			          "layer %s: its sha256 is %s, not the %s its manifest gives "
			          "(corrupted or altered): refused",
			          o->layer, got, o->digest);
			goto out;
		}
	}
	if (o->diff_id) {
		md_hex(c.hu, got);
		if (strcmp(got, o->diff_id)) {
			arl_error(err, ARL_E_INVALID,
			          "layer %s: its uncompressed sha256 is %s, not the diff_id %s its "
			          "config gives (corrupted or altered): refused",
			          o->layer, got, o->diff_id);
			goto out;
		}
	}
	if (finish_dirs(&c) < 0)
		goto out;
	st->tar_bytes = c.tar_bytes;
	ret = 0;
out:
	cache_drop(&c);
	for (size_t i = 0; i < c.nlate; i++)
		free(c.late[i].path);
	free(c.late);
	if (in)
		archive_read_free(in);
	if (c.outer)
		archive_read_free(c.outer);
	EVP_MD_CTX_free(c.hz);
	EVP_MD_CTX_free(c.hu);
	free(c.zbuf);
	free(c.ubuf);
	return ret;
}

int arl_unpack_layer(int fd, int dir_fd, const struct arl_unpack_opts *o,
                     struct arl_unpack_stats *st, struct arl_err *err)
{
	return unpack(fd, dir_fd, o, st, err);
}

int arl_unpack_verify(int fd, const struct arl_unpack_opts *o, uint64_t *tar_bytes,
                      struct arl_err *err)
{
	struct arl_unpack_stats st;
	int r = unpack(fd, -1, o, &st, err);

	if (!r)
		*tar_bytes = st.tar_bytes;
	return r;
}

int arl_unpack_rmtree(int at, const char *name, struct arl_err *err)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int fd, ret = 0;
	char eb[128];

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : arl_error_errno(err, errno, "cannot stat '%s'", name);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(at, name, 0) < 0 && errno != ENOENT)
			return arl_error_errno(err, errno, "cannot remove '%s'", name);
		return 0;
	}
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return arl_error_errno(err, errno, "cannot open '%s'", name);
	(void)fchmod(fd, 0700); /* a 0555 directory of ours must let us empty it */
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return arl_error_errno(err, errno, "cannot read '%s'", name);
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (arl_unpack_rmtree(dirfd(d), de->d_name, err) < 0) {
			ret = -1;
			break;
		}
	}
	closedir(d);
	if (!ret && unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		ret = arl_error(err, ARL_E_IO, "cannot remove '%s': %s", name,
		                arl_strerror(errno, eb, sizeof(eb)));
	return ret;
}
