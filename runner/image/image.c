/*
 * The image store (image.h). On disk, under the store's directory:
 *
 *   index.json          tags -> image ids, images (their layers), archive references seen;
 *                       rewritten whole (temp file + rename) under an exclusive flock of
 *                       index.lock, read under a shared one
 *   blobs/sha256/HEX    configs and layer blobs as the archive had them (any uid may need a
 *                       layer unpacked later); content-addressed, written by rename
 *   layers/UID-GID/HEX  a layer unpacked for one owner, HEX its diff_id; made in a temp dir
 *                       .tmp-HEX-XXXXXX under an exclusive flock of HEX.lock and renamed into
 *                       place, so a layer dir that exists is complete
 *   inuse/PID-XXXXXX    the layers one open store handle gave out, flocked by it: prune keeps
 *                       them (one fd per handle, however many images a run uses)
 *   tmp/PID-*           blobs being loaded; a dead PID's are deleted by prune
 *   refs/HEX.lock       one per archive reference (HEX: sha256 of its path and tag): held while
 *                       it is looked up and loaded, so it is loaded once
 *
 * Lock order: a reference's lock, a layer's lock, then index.lock (never the other way round).
 */
#include "image/image.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "image/unpack.h"
#include "log.h"
#include "util.h"

#define JSON_MAX    (4u << 20)   /* manifests, configs, indexes: far above real ones */
#define INDEX_MAX   (256u << 20) /* our own index.json: ~3 KB an image, SWE-bench has 2,294 */
#define SMALL_BLOB  (1u << 20)   /* archive members kept in memory while loading */
#define SMALL_TOTAL (64u << 20)  /* and all of them at most: the rest goes to tmp/ */
#define MAX_MEMBERS 100000       /* files in an archive: a few per layer in real ones */

struct arl_image_store {
	char *dir;
	char *layers; /* DIR/layers/UID-GID */
	uid_t uid;
	gid_t gid;
	bool chown;
	atomic_size_t unpacks;
	/* The layers this handle handed out, one "HEX\n" a line in inuse/PID-XXXXXX, which it
	 * holds an exclusive flock on while open: prune keeps them (see prune_layers). */
	pthread_mutex_t inuse_mu; /* lock order: after a layer's lock; never with the index's */
	int inuse_fd;
	char *inuse_path;
};

/* ---- small helpers ---- */

static bool is_digest(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) || strlen(d) != 71)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static int mkdir_p(const char *path, mode_t mode, struct arl_err *err)
{
	char *p = arl_xstrdup(path);
	int ret = 0;

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			ret = arl_error_errno(err, errno, "cannot make '%s'", p);
			break;
		}
		if (!c)
			break;
		*s = c;
	}
	free(p);
	return ret;
}

static int write_file_atomic(const char *path, const void *data, size_t len, struct arl_err *err)
{
	char *tmp = arl_xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ret = -1;

	if (fd < 0)
		goto fail;
	if (!arl_write_all(fd, data, len))
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	ret = 0;
	goto out;
fail:
	arl_error_errno(err, errno, "cannot write '%s'", path);
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(tmp);
	return ret;
}

/* Opens @path and flocks it (@op); retries when it was deleted and made again meanwhile. */
static int lock_file(const char *path, int op, struct arl_err *err)
{
	for (;;) {
		struct stat a, b;
		int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0)
			return arl_error_errno(err, errno, "cannot open the lock '%s'", path);
		while (flock(fd, op) < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			if (e == EWOULDBLOCK)
				return -2;
			return arl_error_errno(err, e, "cannot lock '%s'", path);
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return fd;
		close(fd); /* prune removed it while we waited: lock the new one */
	}
}

static int read_json(const char *path, cJSON **out, bool missing_ok, size_t max,
                     struct arl_err *err)
{
	struct arl_buf b = ARL_BUF_INIT;
	cJSON *j;

	if (missing_ok && access(path, F_OK) < 0 && errno == ENOENT) {
		*out = NULL;
		return 0;
	}
	if (arl_buf_read_file(&b, path, max, err) < 0)
		return -1;
	j = cJSON_ParseWithLength(b.p ? b.p : "", b.len);
	arl_buf_release(&b);
	if (!j)
		return arl_error(err, ARL_E_PARSE, "'%s' is not valid JSON", path);
	*out = j;
	return 0;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *jobj(cJSON *parent, const char *key)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);

	if (!cJSON_IsObject(v)) {
		cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
		v = cJSON_AddObjectToObject(parent, key);
	}
	return v;
}

/* ---- the store ---- */

char *arl_image_store_default_dir(void)
{
	const char *env = getenv("ARL_BATCH_IMAGES");
	const char *xdg, *home;

	if (env && *env)
		return arl_xstrdup(env);
	if (geteuid() == 0)
		return arl_xstrdup("/var/lib/arl-batch/images");
	xdg = getenv("XDG_DATA_HOME");
	if (xdg && *xdg == '/')
		return arl_xasprintf("%s/arl-batch/images", xdg);
	home = getenv("HOME");
	return arl_xasprintf("%s/.local/share/arl-batch/images", home && *home ? home : "/tmp");
}

int arl_image_store_open(struct arl_image_store **out, const char *dir, uid_t uid, gid_t gid,
                         struct arl_err *err)
{
	struct arl_image_store *s = arl_xcalloc(1, sizeof(*s));
	char *d = NULL;

	pthread_mutex_init(&s->inuse_mu, NULL);
	s->inuse_fd = -1;

	s->dir = dir ? arl_xstrdup(dir) : arl_image_store_default_dir();
	if (s->dir[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd))) {
			arl_error_errno(err, errno, "cannot tell the current directory");
			goto fail;
		}
		d = arl_xasprintf("%s/%s", cwd, s->dir);
		free(s->dir);
		s->dir = d;
		d = NULL;
	}
	s->uid = uid == (uid_t)-1 ? geteuid() : uid;
	s->gid = gid == (gid_t)-1 ? getegid() : gid;
	s->chown = geteuid() == 0;
	if (!s->chown && (s->uid != geteuid() || s->gid != getegid())) {
		arl_error(err, ARL_E_USAGE, "only root can unpack image layers owned by uid %lu",
		          (unsigned long)s->uid);
		goto fail;
	}
	s->layers = arl_xasprintf("%s/layers/%lu-%lu", s->dir, (unsigned long)s->uid,
	                          (unsigned long)s->gid);
	/* 0711: a sandbox's uid must reach its layers, but not list the store. */
	if (mkdir_p(s->dir, 0711, err) < 0 || mkdir_p(s->layers, 0711, err) < 0)
		goto fail;
	for (size_t i = 0; i < 4; i++) {
		static const char *const sub[] = {"blobs/sha256", "tmp", "inuse", "refs"};
		d = arl_xasprintf("%s/%s", s->dir, sub[i]);
		if (mkdir_p(d, 0700, err) < 0)
			goto fail;
		free(d);
		d = NULL;
	}
	*out = s;
	return 0;
fail:
	arl_err_prefix(err, "image store");
	free(d);
	arl_image_store_close(s);
	return -1;
}

void arl_image_store_close(struct arl_image_store *s)
{
	if (!s)
		return;
	if (s->inuse_fd >= 0) {
		unlink(s->inuse_path); /* before the unlock: prune never reads a released list */
		close(s->inuse_fd);
	}
	free(s->inuse_path);
	pthread_mutex_destroy(&s->inuse_mu);
	free(s->dir);
	free(s->layers);
	free(s);
}

const char *arl_image_store_dir(const struct arl_image_store *s)
{
	return s->dir;
}

size_t arl_image_store_unpacks(const struct arl_image_store *s)
{
	return atomic_load(&((struct arl_image_store *)s)->unpacks);
}

/* ---- references ---- */

enum ref_kind { REF_NAME, REF_ID, REF_DOCKER_ARCHIVE, REF_OCI, REF_OCI_ARCHIVE };

struct ref {
	enum ref_kind kind;
	char *path; /* archive or layout, as written */
	char *tag;  /* oci and oci-archive: the ref.name to pick, or NULL */
	char *name; /* REF_NAME: normalised "NAME:TAG"; REF_ID: "sha256:HEX..." */
};

static void ref_release(struct ref *r)
{
	free(r->path);
	free(r->tag);
	free(r->name);
}

/* "python" -> "python:latest"; docker.io/library/ and localhost/ prefixes dropped. */
static char *normalise_name(const char *n)
{
	static const char *const drop[] = {"docker.io/library/", "index.docker.io/library/",
	                                   "docker.io/", "localhost/"};
	const char *slash, *colon;

	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (!strncmp(n, drop[i], strlen(drop[i]))) {
			n += strlen(drop[i]);
			break;
		}
	slash = strrchr(n, '/');
	colon = strrchr(n, ':');
	if (!colon || (slash && colon < slash))
		return arl_xasprintf("%s:latest", n);
	return arl_xstrdup(n);
}

static int parse_ref(const char *ref, struct ref *r, struct arl_err *err)
{
	static const struct {
		const char *prefix;
		enum ref_kind kind;
	} forms[] = {{"docker-archive:", REF_DOCKER_ARCHIVE},
	             {"oci-archive:", REF_OCI_ARCHIVE},
	             {"oci:", REF_OCI}};

	memset(r, 0, sizeof(*r));
	if (!ref || !*ref)
		return arl_error(err, ARL_E_INVALID, "empty image reference");
	for (const char *p = ref; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return arl_error(err, ARL_E_INVALID,
			                 "image reference '%s' has a space or control character",
			                 ref);
	if (strlen(ref) > 4096)
		return arl_error(err, ARL_E_INVALID, "image reference longer than 4096 bytes");
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		size_t n = strlen(forms[i].prefix);
		if (strncmp(ref, forms[i].prefix, n))
			continue;
		r->kind = forms[i].kind;
		r->path = arl_xstrdup(ref + n);
		if (r->kind != REF_DOCKER_ARCHIVE) {
			char *c = strrchr(r->path, ':');
			if (c && !strchr(c, '/')) {
				r->tag = arl_xstrdup(c + 1);
				*c = 0;
			}
		}
		if (!*r->path) {
			ref_release(r);
			return arl_error(err, ARL_E_INVALID, "image reference '%s' names no file",
			                 ref);
		}
		return 0;
	}
	if (!strncmp(ref, "sha256:", 7)) {
		size_t n = strspn(ref + 7, "0123456789abcdef");
		if (n < 4 || ref[7 + n] || n > 64)
			return arl_error(err, ARL_E_INVALID,
			                 "image reference '%s': an id is sha256: and hex digits",
			                 ref);
		r->kind = REF_ID;
		r->name = arl_xstrdup(ref);
		return 0;
	}
	if (strchr(ref, '@'))
		return arl_error(err, ARL_E_INVALID,
		                 "image reference '%s': NAME@DIGEST is not supported; use NAME:TAG "
		                 "or the image id (sha256:...)",
		                 ref);
	if (ref[0] == '/' || ref[0] == '.' || ref[strlen(ref) - 1] == ':' || strstr(ref, "//"))
		return arl_error(
		    err, ARL_E_INVALID,
		    "image reference '%s' is neither NAME[:TAG] nor docker-archive:FILE, "
		    "oci:DIR[:TAG] or oci-archive:FILE[:TAG]",
		    ref);
	r->kind = REF_NAME;
	r->name = normalise_name(ref);
	return 0;
}

int arl_image_ref_check_syntax(const char *ref, struct arl_err *err)
{
	struct ref r;

	if (parse_ref(ref, &r, err) < 0)
		return -1;
	ref_release(&r);
	return 0;
}

/* ---- the index ---- */

static char *index_path(const struct arl_image_store *s, const char *what)
{
	return arl_xasprintf("%s/%s", s->dir, what);
}

/* Locks index.lock (LOCK_SH or LOCK_EX) and reads index.json (an empty one when missing). */
static int index_open(struct arl_image_store *s, int op, cJSON **out, int *lock,
                      struct arl_err *err)
{
	char *lp = index_path(s, "index.lock"), *ip = index_path(s, "index.json");
	cJSON *j = NULL;
	int fd = lock_file(lp, op, err), ret = -1;

	if (fd < 0)
		goto out;
	if (read_json(ip, &j, true, INDEX_MAX, err) < 0)
		goto out;
	if (!j)
		j = cJSON_CreateObject();
	if (!cJSON_IsObject(j)) {
		arl_error(err, ARL_E_PARSE, "'%s' is not an object", ip);
		goto out;
	}
	jobj(j, "tags");
	jobj(j, "images");
	jobj(j, "refs");
	*out = j;
	j = NULL;
	*lock = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	cJSON_Delete(j);
	free(lp);
	free(ip);
	return ret;
}

static int index_save(struct arl_image_store *s, cJSON *j, struct arl_err *err)
{
	char *ip = index_path(s, "index.json"), *text = cJSON_Print(j);
	int r;

	if (!text)
		arl_log_fatal("out of memory");
	r = write_file_atomic(ip, text, strlen(text), err);
	free(text);
	free(ip);
	return r;
}

static void index_close(cJSON *j, int lock)
{
	cJSON_Delete(j);
	if (lock >= 0)
		close(lock);
}

/* The image id @ref names in @idx (a tag, an id or a unique prefix of one), or NULL. */
static const char *index_find(cJSON *idx, const struct ref *r)
{
	const cJSON *img, *found = NULL;

	if (r->kind == REF_NAME) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(jobj(idx, "tags"), r->name);
		return cJSON_IsObject(t) ? jstr(t, "id") : NULL;
	}
	cJSON_ArrayForEach(img, jobj(idx, "images"))
	{
		if (!strncmp(img->string, r->name, strlen(r->name))) {
			if (found)
				return NULL; /* ambiguous */
			found = img;
		}
	}
	return found ? found->string : NULL;
}

/* ---- loading: archives and layouts into blobs/ and the index ---- */

struct member { /* a file of the archive or layout being loaded */
	char *name;
	char *mem; /* small ones in memory */
	size_t len;
	char *tmp; /* big ones in the store's tmp/ */
	char digest[72];
};

struct source {
	const char *what; /* for messages */
	bool no_tags;     /* an archive reference: loaded under no name */
	char *dir;        /* an OCI layout directory; else members from a tar */
	struct member *m;
	size_t n, cap;
};

static void source_release(struct source *src)
{
	for (size_t i = 0; i < src->n; i++) {
		free(src->m[i].name);
		free(src->m[i].mem);
		if (src->m[i].tmp) {
			unlink(src->m[i].tmp);
			free(src->m[i].tmp);
		}
	}
	free(src->m);
	free(src->dir);
}

static void hex_of(EVP_MD_CTX *c, char out[72])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_DigestFinal_ex(c, md, &n);
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

static char *clean_name(const char *n)
{
	while (n[0] == '.' && n[1] == '/')
		n += 2;
	while (*n == '/')
		n++;
	return arl_xstrdup(n);
}

/* Reads every regular file of the tar on @fd: small ones kept, big ones to tmp/, hashed. */
static int source_read_tar(struct arl_image_store *s, int fd, struct source *src,
                           struct arl_err *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	char *buf = arl_xmalloc(1u << 20);
	int r, ret = -1, out = -1;
	size_t in_mem = 0;

	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	if (archive_read_open_fd(a, fd, 1u << 20) != ARCHIVE_OK) {
		arl_error(err, ARL_E_INVALID, "%s: not a tar: %s", src->what,
		          archive_error_string(a) ? archive_error_string(a) : "?");
		goto done;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		struct member *m;
		la_ssize_t n;

		if (archive_entry_filetype(e) != AE_IFREG || !archive_entry_pathname(e))
			continue;
		if (src->n == MAX_MEMBERS) {
			arl_error(err, ARL_E_LIMIT, "%s: more than %d files: not an image archive",
			          src->what, MAX_MEMBERS);
			goto done;
		}
		ARL_GROW(src->m, src->cap, src->n + 1);
		m = &src->m[src->n++];
		memset(m, 0, sizeof(*m));
		m->name = clean_name(archive_entry_pathname(e));
		EVP_DigestInit_ex(h, EVP_sha256(), NULL);
		if (archive_entry_size(e) <= SMALL_BLOB && in_mem + SMALL_BLOB <= SMALL_TOTAL) {
			in_mem += (size_t)archive_entry_size(e);
			m->mem = arl_xmalloc((size_t)archive_entry_size(e) + 1);
		} else {
			m->tmp = arl_xasprintf("%s/tmp/%ld-XXXXXX", s->dir, (long)getpid());
			out = mkostemp(m->tmp, O_CLOEXEC);
			if (out < 0) {
				arl_error_errno(err, errno, "cannot make a temp file in '%s/tmp'",
				                s->dir);
				free(m->tmp);
				m->tmp = NULL;
				goto done;
			}
		}
		while ((n = archive_read_data(a, buf, 1u << 20)) > 0) {
			EVP_DigestUpdate(h, buf, (size_t)n);
			if (m->mem) {
				if (m->len + (size_t)n > (size_t)archive_entry_size(e)) {
					arl_error(err, ARL_E_INVALID,
					          "%s: '%s' is longer than its size", src->what,
					          m->name);
					goto done;
				}
				memcpy(m->mem + m->len, buf, (size_t)n);
				m->len += (size_t)n;
				continue;
			}
			for (char *p = buf; n > 0;) {
				ssize_t w = write(out, p, (size_t)n);
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0) {
					arl_error_errno(err, errno, "cannot write '%s'", m->tmp);
					goto done;
				}
				p += w, n -= w;
				m->len += (size_t)w;
			}
		}
		if (n < 0) {
			arl_error(err, ARL_E_INVALID, "%s: '%s': %s", src->what, m->name,
			          archive_error_string(a) ? archive_error_string(a) : "read error");
			goto done;
		}
		if (m->mem)
			m->mem[m->len] = 0;
		if (out >= 0) {
			close(out);
			out = -1;
		}
		hex_of(h, m->digest);
	}
	if (r != ARCHIVE_EOF) {
		arl_error(err, ARL_E_INVALID, "%s: %s", src->what,
		          archive_error_string(a) ? archive_error_string(a) : "not a tar");
		goto done;
	}
	ret = 0;
done:
	if (out >= 0)
		close(out);
	archive_read_free(a);
	EVP_MD_CTX_free(h);
	free(buf);
	return ret;
}

static struct member *source_find(struct source *src, const char *name)
{
	for (size_t i = 0; i < src->n; i++)
		if (!strcmp(src->m[i].name, name))
			return &src->m[i];
	return NULL;
}

/* A small JSON file of the source. */
/*
 * Opens the layout's file @name for reading: beneath the layout, through no symlink (we may be
 * root, the layout someone else's), a regular file (a FIFO would block, a device never end).
 */
static int layout_open(struct source *src, const char *name, struct arl_err *err)
{
	struct open_how how = {.flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
	                       .resolve =
	                           RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	int dfd = open(src->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;
	struct stat st;

	if (dfd < 0)
		return arl_error_errno(err, errno, "%s: cannot open the directory", src->what);
	fd = (int)syscall(SYS_openat2, dfd, name, &how, sizeof(how));
	if (fd < 0) {
		int e = errno;
		close(dfd);
		if (e == ELOOP || e == EXDEV)
			return arl_error(err, ARL_E_INVALID,
			                 "%s: '%s' is a symlink or goes through one: refused",
			                 src->what, name);
		return arl_error_errno(err, e, "%s: cannot open '%s'", src->what, name);
	}
	close(dfd);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return arl_error(err, ARL_E_INVALID, "%s: '%s' is not a regular file: refused",
		                 src->what, name);
	}
	return fd;
}

/* A descriptor's size (-1: none given); @max when it is not a sane byte count. */
static int64_t desc_size(const cJSON *desc)
{
	const cJSON *z = cJSON_GetObjectItemCaseSensitive(desc, "size");

	if (!cJSON_IsNumber(z))
		return -1;
	if (z->valuedouble < 0 || z->valuedouble > 9007199254740992.0)
		return INT64_MAX; /* refused when read: no file is that long */
	return (int64_t)z->valuedouble;
}

/* Reads the layout's file @name, at most @max bytes: more is refused. */
static int layout_read(struct source *src, const char *name, size_t max, struct arl_buf *b,
                       struct arl_err *err)
{
	char chunk[65536];
	int fd = layout_open(src, name, err), ret = -1;

	if (fd < 0)
		return -1;
	b->max = max;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			arl_error_errno(err, errno, "%s: cannot read '%s'", src->what, name);
			goto out;
		}
		if (n == 0)
			break;
		if (arl_buf_add(b, chunk, (size_t)n) < 0) {
			arl_error(
			    err, ARL_E_LIMIT,
			    "%s: '%s' is longer than the %zu bytes its descriptor (or the limit) "
			    "gives: refused",
			    src->what, name, max);
			goto out;
		}
	}
	if (!b->p)
		arl_buf_add(b, "", 0);
	ret = 0;
out:
	close(fd);
	return ret;
}

/* @size: the descriptor's (-1: none, JSON_MAX bounds it). */
static int source_json(struct source *src, const char *name, int64_t size, cJSON **out,
                       char digest[72], struct arl_err *err)
{
	struct member *m;
	cJSON *j;

	if (src->dir) {
		struct arl_buf b = ARL_BUF_INIT;
		size_t max = size >= 0 && (uint64_t)size < JSON_MAX ? (size_t)size : JSON_MAX;
		if (layout_read(src, name, max, &b, err) < 0) {
			arl_buf_release(&b);
			return -1;
		}
		if (digest) {
			EVP_MD_CTX *h = EVP_MD_CTX_new();
			EVP_DigestInit_ex(h, EVP_sha256(), NULL);
			EVP_DigestUpdate(h, b.p ? b.p : "", b.len);
			hex_of(h, digest);
			EVP_MD_CTX_free(h);
		}
		j = cJSON_ParseWithLength(b.p ? b.p : "", b.len);
		arl_buf_release(&b);
	} else {
		if (!(m = source_find(src, name)) || !m->mem)
			return arl_error(err, ARL_E_INVALID, "%s: no '%s' in it (or too big)",
			                 src->what, name);
		if (digest)
			memcpy(digest, m->digest, 72);
		j = cJSON_ParseWithLength(m->mem, m->len);
	}
	if (!j)
		return arl_error(err, ARL_E_PARSE, "%s: '%s' is not valid JSON", src->what, name);
	*out = j;
	return 0;
}

/* A layer's bytes in a memfd, to verify before they are stored. */
static int mem_fd(const char *mem, size_t len, struct arl_err *err)
{
	int fd = memfd_create("layer", MFD_CLOEXEC);

	if (fd < 0)
		return arl_error_errno(err, errno, "memfd_create");
	if (!arl_write_all(fd, mem, len)) {
		arl_error_errno(err, errno, "cannot write a memfd");
		close(fd);
		return -1;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

struct layer_check {
	const char *diff_id, *name; /* its config's diff_id, and its name for messages */
	uint64_t tar_bytes;         /* out: its size unpacked */
};

/*
 * Puts the source's file @name into blobs/ as @want (or its own digest when @want is NULL).
 * A layer (@lyr set) is checked against its diff_id BEFORE it is stored: a refused one never
 * replaces nor deletes a blob of the same digest another image uses. @created: whether this
 * call made the blob (NULL: not wanted).
 */
static int source_store_blob(struct arl_image_store *s, struct source *src, const char *name,
                             const char *want, int64_t size, char got[72], struct layer_check *lyr,
                             bool *created, struct arl_err *err)
{
	char *dst = NULL, *tmp = NULL;
	int ret = -1, in = -1, out = -1;
	struct member *m = NULL;
	bool exists;

	if (created)
		*created = false;

	if (src->dir) { /* copy from the layout, hashing */
		EVP_MD_CTX *h = EVP_MD_CTX_new();
		char *buf = arl_xmalloc(1u << 20);
		uint64_t total = 0;
		ssize_t n;

		/* The OCI spec requires a size: without one a huge (sparse) file has no bound. */
		in = size < 0 ? arl_error(err, ARL_E_INVALID,
		                          "%s: the descriptor of '%s' gives no size: refused",
		                          src->what, name)
		              : layout_open(src, name, err);
		if (in >= 0) {
			tmp = arl_xasprintf("%s/tmp/%ld-XXXXXX", s->dir, (long)getpid());
			out = mkostemp(tmp, O_CLOEXEC);
			if (out < 0)
				arl_error_errno(err, errno, "cannot make a temp file in '%s/tmp'",
				                s->dir);
		}
		EVP_DigestInit_ex(h, EVP_sha256(), NULL);
		while (out >= 0 && (n = read(in, buf, 1u << 20)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				arl_error_errno(err, errno, "%s: cannot read '%s'", src->what,
				                name);
				break;
			}
			total += (uint64_t)n;
			if (size >= 0 && total > (uint64_t)size) {
				arl_error(err, ARL_E_INVALID,
				          "%s: '%s' is longer than the %lld bytes its descriptor "
				          "gives: refused",
				          src->what, name, (long long)size);
				break;
			}
			EVP_DigestUpdate(h, buf, (size_t)n);
			for (char *q = buf; n > 0;) {
				ssize_t w = write(out, q, (size_t)n);
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0) {
					arl_error_errno(err, errno, "cannot write '%s'", tmp);
					n = -1;
					break;
				}
				q += w, n -= w;
			}
			if (n < 0)
				break;
		}
		hex_of(h, got);
		EVP_MD_CTX_free(h);
		free(buf);
		if (err->code)
			goto out;
	} else {
		if (!(m = source_find(src, name))) {
			arl_error(err, ARL_E_INVALID, "%s: no '%s' in it", src->what, name);
			goto out;
		}
		memcpy(got, m->digest, 72);
	}
	if (want && strcmp(got, want)) {
		arl_error(err, ARL_E_INVALID,
		          "%s: '%s' has sha256 %s, not the %s its manifest gives (corrupted or "
		          "altered): refused",
		          src->what, name, got, want);
		goto out;
	}
	dst = arl_xasprintf("%s/blobs/sha256/%s", s->dir, got + 7);
	exists = access(dst, F_OK) == 0;
	if (lyr) {
		struct arl_unpack_opts o = {
		    .layer = lyr->name, .digest = got, .diff_id = lyr->diff_id};
		int vfd, r;

		if (exists)
			vfd = open(dst, O_RDONLY | O_CLOEXEC);
		else if (m && m->mem)
			vfd = mem_fd(m->mem, m->len, err);
		else
			vfd = open(m ? m->tmp : tmp, O_RDONLY | O_CLOEXEC);
		if (vfd < 0) {
			if (!err->code)
				arl_error_errno(err, errno, "cannot open layer %s", lyr->name);
			goto out;
		}
		r = arl_unpack_verify(vfd, &o, &lyr->tar_bytes, err);
		close(vfd);
		if (r < 0)
			goto out; /* the temp file (ours) is deleted below, a stored blob kept */
	}
	if (exists) { /* content-addressed: already there */
		ret = 0;
		goto out;
	}
	if (m && m->mem) {
		ret = write_file_atomic(dst, m->mem, m->len, err);
		if (ret == 0 && created)
			*created = true;
		goto out;
	}
	if (m) {
		tmp = m->tmp;
		m->tmp = NULL;
	}
	if (rename(tmp, dst) < 0) {
		arl_error_errno(err, errno, "cannot store blob '%s'", dst);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if (created)
		*created = true;
	ret = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dst);
	return ret;
}

static const char *host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#else
	return "";
#endif
}

/* One image to record: config digest, layer blob digests (BOTTOM FIRST), tags. */
struct found {
	char *config;
	char **blobs;
	size_t nblobs;
	char **tags;
	size_t ntags;
};

static void found_release(struct found *f)
{
	free(f->config);
	arl_image_strv_free(f->blobs, f->nblobs);
	arl_image_strv_free(f->tags, f->ntags);
	memset(f, 0, sizeof(*f));
}

static void strv_add(char ***v, size_t *n, const char *s)
{
	*v = arl_xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = arl_xstrdup(s);
}

static char *blob_path_name(const char *digest)
{
	return arl_xasprintf("blobs/sha256/%s", digest + 7);
}

/* Deletes the config blob @id this load stored for an image it refused, unless an image
 * with that id was recorded meanwhile (under the index lock, as the recording is). */
static void drop_config(struct arl_image_store *s, const char *id)
{
	struct arl_err e = ARL_ERR_INIT;
	cJSON *idx = NULL;
	int lock = -1;

	if (index_open(s, LOCK_EX, &idx, &lock, &e) < 0)
		return;
	if (!cJSON_GetObjectItemCaseSensitive(jobj(idx, "images"), id)) {
		char *p = arl_xasprintf("%s/blobs/sha256/%s", s->dir, id + 7);
		unlink(p);
		free(p);
	}
	index_close(idx, lock);
}

/*
 * Stores the config and layers of one image from @src (@cfg_name, @layer_names in the source;
 * @cfg_digest/@layer_digests what they must hash to, NULL: whatever they hash to), verifies each
 * layer against the config's diff_ids and records it in the index with @tags.
 */
static int record_image(struct arl_image_store *s, struct source *src, const char *cfg_name,
                        const char *cfg_digest, int64_t cfg_size, char **layer_names,
                        char **layer_digests, const int64_t *layer_sizes, size_t nlayers,
                        char **tags, size_t ntags, char id_out[72], struct arl_err *err)
{
	char got[72], *p = NULL, *lname = NULL;
	cJSON *cfg = NULL, *diffs, *rec = NULL, *arr, *idx = NULL;
	int ret = -1, lock = -1;
	uint64_t total = 0;
	bool cfg_created = false;

	if (source_store_blob(s, src, cfg_name, cfg_digest, cfg_size, id_out, NULL, &cfg_created,
	                      err) < 0)
		goto out;
	p = arl_xasprintf("%s/blobs/sha256/%s", s->dir, id_out + 7);
	if (read_json(p, &cfg, false, JSON_MAX, err) < 0)
		goto out;
	diffs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "rootfs"),
	                                         "diff_ids");
	if (!cJSON_IsArray(diffs) || (size_t)cJSON_GetArraySize(diffs) != nlayers) {
		arl_error(err, ARL_E_INVALID,
		          "%s: the config's rootfs.diff_ids does not list its %zu layers",
		          src->what, nlayers);
		goto out;
	}
	rec = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(rec, "layers");
	for (size_t i = 0; i < nlayers; i++) {
		const cJSON *d = cJSON_GetArrayItem(diffs, (int)i);
		struct layer_check lc = {0};
		uint64_t tar_bytes;
		cJSON *l;

		if (!cJSON_IsString(d) || !is_digest(d->valuestring)) {
			arl_error(err, ARL_E_INVALID, "%s: diff_id %zu is not a sha256 digest",
			          src->what, i);
			goto out;
		}
		lname = arl_xasprintf("'%s' of %s", layer_names[i], src->what);
		lc.diff_id = d->valuestring;
		lc.name = lname;
		if (source_store_blob(s, src, layer_names[i],
		                      layer_digests ? layer_digests[i] : NULL,
		                      layer_sizes ? layer_sizes[i] : -1, got, &lc, NULL, err) < 0)
			goto out;
		tar_bytes = lc.tar_bytes;
		free(lname);
		lname = NULL;
		l = cJSON_CreateObject();
		cJSON_AddStringToObject(l, "blob", got);
		cJSON_AddStringToObject(l, "diff_id", d->valuestring);
		cJSON_AddNumberToObject(l, "size", (double)tar_bytes);
		cJSON_AddItemToArray(arr, l);
		total += tar_bytes;
	}
	cJSON_AddNumberToObject(rec, "size", (double)total);
	if (index_open(s, LOCK_EX, &idx, &lock, err) < 0)
		goto out;
	cJSON_DeleteItemFromObjectCaseSensitive(jobj(idx, "images"), id_out);
	cJSON_AddItemToObject(jobj(idx, "images"), id_out, rec);
	rec = NULL;
	for (size_t i = 0; i < ntags; i++) {
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "id", id_out);
		cJSON_AddNumberToObject(t, "created", (double)time(NULL));
		cJSON_DeleteItemFromObjectCaseSensitive(jobj(idx, "tags"), tags[i]);
		cJSON_AddItemToObject(jobj(idx, "tags"), tags[i], t);
	}
	ret = index_save(s, idx, err);
out:
	index_close(idx, lock);
	if (ret < 0 && cfg_created) /* a refused image's config: ours, unless recorded since */
		drop_config(s, id_out);
	cJSON_Delete(rec);
	cJSON_Delete(cfg);
	free(lname);
	free(p);
	return ret;
}

/* docker save's manifest.json: [{Config, RepoTags, Layers}], each image recorded. */
static int load_docker(struct arl_image_store *s, struct source *src, struct found *all,
                       struct arl_err *err)
{
	cJSON *man = NULL, *img;
	int ret = -1;

	if (source_json(src, "manifest.json", -1, &man, NULL, err) < 0)
		goto out;
	if (!cJSON_IsArray(man) || !cJSON_GetArraySize(man)) {
		arl_error(err, ARL_E_INVALID, "%s: manifest.json lists no image", src->what);
		goto out;
	}
	cJSON_ArrayForEach(img, man)
	{
		const char *cfg = jstr(img, "Config");
		cJSON *layers = cJSON_GetObjectItemCaseSensitive(img, "Layers"), *l, *t;
		char **names = NULL, **tags = NULL, id[72];
		size_t n = 0, nt = 0;
		int r;

		if (!cfg || !cJSON_IsArray(layers)) {
			arl_error(err, ARL_E_INVALID,
			          "%s: manifest.json: an entry without Config or "
			          "Layers",
			          src->what);
			goto out;
		}
		cJSON_ArrayForEach(l, layers)
		{
			if (!cJSON_IsString(l)) {
				arl_image_strv_free(names, n);
				arl_error(err, ARL_E_INVALID,
				          "%s: manifest.json: a layer is not a name", src->what);
				goto out;
			}
			strv_add(&names, &n, l->valuestring);
		}
		cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(img, "RepoTags"))
		{
			if (!src->no_tags && cJSON_IsString(t) &&
			    arl_image_ref_check_syntax(t->valuestring, NULL) == 0) {
				char *nn = normalise_name(t->valuestring);
				strv_add(&tags, &nt, nn);
				free(nn);
			}
		}
		r = record_image(s, src, cfg, NULL, -1, names, NULL, NULL, n, tags, nt, id, err);
		arl_image_strv_free(names, n);
		if (r < 0) {
			arl_image_strv_free(tags, nt);
			goto out;
		}
		if (!nt)
			strv_add(&tags, &nt, id);
		for (size_t i = 0; i < nt; i++)
			strv_add(&all->tags, &all->ntags, tags[i]);
		arl_image_strv_free(tags, nt);
		if (!all->config)
			all->config = arl_xstrdup(id);
		if (src->no_tags) /* a reference names the first image */
			break;
	}
	ret = 0;
out:
	cJSON_Delete(man);
	return ret;
}

/* An OCI manifest (or an index of them: this machine's platform is picked) -> recorded image. */
static int load_oci_manifest(struct arl_image_store *s, struct source *src, const char *digest,
                             int64_t size, char **tags, size_t ntags, char id[72], int depth,
                             struct arl_err *err)
{
	char *name = NULL, got[72], **names = NULL, **digests = NULL;
	int64_t *sizes = NULL;
	size_t n = 0;
	cJSON *man = NULL, *l, *sub;
	const char *cd;
	int ret = -1;

	if (!is_digest(digest))
		return arl_error(err, ARL_E_INVALID, "%s: '%s' is not a sha256 digest", src->what,
		                 digest ? digest : "(none)");
	name = blob_path_name(digest);
	if (source_json(src, name, size, &man, got, err) < 0)
		goto out;
	if (strcmp(got, digest)) {
		arl_error(err, ARL_E_INVALID,
		          "%s: manifest '%s' has sha256 %s (corrupted): refused", src->what, digest,
		          got);
		goto out;
	}
	if ((sub = cJSON_GetObjectItemCaseSensitive(man, "manifests"))) { /* an index */
		const cJSON *m, *pick = NULL;
		if (depth > 2) {
			arl_error(err, ARL_E_INVALID, "%s: indexes nested too deep", src->what);
			goto out;
		}
		cJSON_ArrayForEach(m, sub)
		{
			const cJSON *pl = cJSON_GetObjectItemCaseSensitive(m, "platform");
			const char *os = jstr(pl, "os"), *arch = jstr(pl, "architecture");
			if (!pl || ((!os || !strcmp(os, "linux")) &&
			            (!arch || !strcmp(arch, host_arch())))) {
				pick = m;
				break;
			}
		}
		if (!pick) {
			arl_error(err, ARL_E_INVALID, "%s: no image for linux/%s in its index",
			          src->what, host_arch());
			goto out;
		}
		ret = load_oci_manifest(s, src, jstr(pick, "digest"), desc_size(pick), tags, ntags,
		                        id, depth + 1, err);
		goto out;
	}
	cd = jstr(cJSON_GetObjectItemCaseSensitive(man, "config"), "digest");
	if (!is_digest(cd)) {
		arl_error(err, ARL_E_INVALID, "%s: manifest '%s' has no config digest", src->what,
		          digest);
		goto out;
	}
	cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(man, "layers"))
	{
		const char *ld = jstr(l, "digest");
		char *ln;
		if (!is_digest(ld)) {
			arl_error(err, ARL_E_INVALID, "%s: a layer of manifest '%s' has no digest",
			          src->what, digest);
			goto out;
		}
		ln = blob_path_name(ld);
		strv_add(&names, &n, ln);
		free(ln);
		digests = arl_xrealloc(digests, n * sizeof(*digests));
		digests[n - 1] = arl_xstrdup(ld);
		sizes = arl_xrealloc(sizes, n * sizeof(*sizes));
		sizes[n - 1] = desc_size(l);
	}
	free(name);
	name = blob_path_name(cd);
	ret = record_image(s, src, name, cd,
	                   desc_size(cJSON_GetObjectItemCaseSensitive(man, "config")), names,
	                   digests, sizes, n, tags, ntags, id, err);
out:
	free(sizes);
	arl_image_strv_free(names, n);
	arl_image_strv_free(digests, n);
	cJSON_Delete(man);
	free(name);
	return ret;
}

/* An OCI layout: the images of index.json (only the one tagged @tag when @tag is set). */
static int load_oci(struct arl_image_store *s, struct source *src, const char *tag,
                    struct found *all, struct arl_err *err)
{
	cJSON *idx = NULL, *m;
	int ret = -1, count = 0;

	if (source_json(src, "index.json", -1, &idx, NULL, err) < 0)
		goto out;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(idx, "manifests"))
	{
		const cJSON *ann = cJSON_GetObjectItemCaseSensitive(m, "annotations");
		const char *rn = jstr(ann, "org.opencontainers.image.ref.name");
		const char *full = jstr(ann, "io.containerd.image.name");
		char **tags = NULL, id[72];
		size_t nt = 0;

		if (tag && (!rn || strcmp(rn, tag)))
			continue;
		/* A ref.name with a '/' or ':' is a whole name (podman); a bare one is a tag. */
		if (src->no_tags) {
			/* an archive reference: loaded under no name */
		} else if (!tag && full && arl_image_ref_check_syntax(full, NULL) == 0) {
			char *nn = normalise_name(full);
			strv_add(&tags, &nt, nn);
			free(nn);
		} else if (!tag && rn && (strchr(rn, '/') || strchr(rn, ':')) &&
		           arl_image_ref_check_syntax(rn, NULL) == 0) {
			char *nn = normalise_name(rn);
			strv_add(&tags, &nt, nn);
			free(nn);
		}
		if (load_oci_manifest(s, src, jstr(m, "digest"), desc_size(m), tags, nt, id, 0,
		                      err) < 0) {
			arl_image_strv_free(tags, nt);
			goto out;
		}
		if (!nt)
			strv_add(&tags, &nt, id);
		for (size_t i = 0; i < nt; i++)
			strv_add(&all->tags, &all->ntags, tags[i]);
		arl_image_strv_free(tags, nt);
		if (!all->config)
			all->config = arl_xstrdup(id);
		count++;
	}
	if (!count) {
		if (tag)
			arl_error(err, ARL_E_INVALID, "%s: no image tagged '%s' in its index.json",
			          src->what, tag);
		else
			arl_error(err, ARL_E_INVALID, "%s: its index.json lists no image",
			          src->what);
		goto out;
	}
	if (!tag && count > 1 && src->no_tags) {
		arl_error(err, ARL_E_INVALID, "%s: %d images in it: name one with :TAG", src->what,
		          count);
		goto out;
	}
	ret = 0;
out:
	cJSON_Delete(idx);
	return ret;
}

/*
 * Loads @path (a tar: docker or OCI, told by manifest.json or index.json; a directory: an OCI
 * layout; NULL or "-": standard input) into the store. For an OCI source @tag picks one image.
 */
static int load_path(struct arl_image_store *s, const char *path, const char *tag, bool no_tags,
                     bool want_docker, struct found *all, struct arl_err *err)
{
	struct source src = {.what = path && strcmp(path, "-") ? path : "standard input",
	                     .no_tags = no_tags};
	struct stat st;
	int fd = -1, ret = -1;

	if (path && strcmp(path, "-") && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		src.dir = arl_xstrdup(path);
		if (access(path, R_OK | X_OK) < 0) {
			arl_error_errno(err, errno, "cannot read '%s'", path);
			goto out;
		}
	} else {
		if (!path || !strcmp(path, "-"))
			fd = dup(0);
		else
			fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			arl_error_errno(err, errno, "cannot open '%s'", src.what);
			goto out;
		}
		if (source_read_tar(s, fd, &src, err) < 0)
			goto out;
	}
	if (!src.dir && source_find(&src, "manifest.json") && (want_docker || !tag))
		ret = load_docker(s, &src, all, err);
	else if (want_docker)
		arl_error(err, ARL_E_INVALID, "%s: not a docker-archive (no manifest.json)",
		          src.what);
	else if (src.dir ? true : source_find(&src, "index.json") != NULL)
		ret = load_oci(s, &src, tag, all, err);
	else
		arl_error(err, ARL_E_INVALID,
		          "%s: neither a docker-archive (manifest.json) nor an OCI layout "
		          "(index.json)",
		          src.what);
out:
	if (fd >= 0)
		close(fd);
	source_release(&src);
	return ret;
}

int arl_image_load(struct arl_image_store *s, const char *path, char ***tags, size_t *ntags,
                   struct arl_err *err)
{
	struct found all = {0};

	if (load_path(s, path, NULL, false, false, &all, err) < 0) {
		found_release(&all);
		return -1;
	}
	if (tags) {
		*tags = all.tags;
		*ntags = all.ntags;
		all.tags = NULL;
		all.ntags = 0;
	}
	found_release(&all);
	return 0;
}

/* ---- get: an image's layers unpacked for the store's owner ---- */

/* Deletes .tmp-HEX-* left in the layers dir by a killed unpack (we hold HEX's lock). */
static void sweep_tmp(struct arl_image_store *s, const char *hex)
{
	DIR *d = opendir(s->layers);
	struct dirent *de;
	char prefix[80];
	struct arl_err e = ARL_ERR_INIT;

	snprintf(prefix, sizeof(prefix), ".tmp-%s-", hex);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			(void)arl_unpack_rmtree(dirfd(d), de->d_name, &e);
	closedir(d);
}

/* The layer @diff_id unpacked (from blob @blob) and locked shared; returns the lock fd. */
static int layer_get(struct arl_image_store *s, const char *diff_id, const char *blob,
                     struct arl_err *err)
{
	const char *hex = diff_id + 7;
	char *lp = arl_xasprintf("%s/%s.lock", s->layers, hex);
	char *dp = arl_xasprintf("%s/%s", s->layers, hex);
	char *tmp = NULL, *bp = NULL;
	int lock = -1, bfd = -1, dfd = -1, ret = -1;

	for (;;) {
		lock = lock_file(lp, LOCK_SH, err);
		if (lock < 0)
			goto out;
		if (access(dp, F_OK) == 0)
			goto done;
		close(lock);
		lock = lock_file(lp, LOCK_EX, err);
		if (lock < 0)
			goto out;
		if (access(dp, F_OK) == 0) {
			close(lock); /* another process unpacked it meanwhile */
			continue;
		}
		break;
	}
	sweep_tmp(s, hex);
	bp = arl_xasprintf("%s/blobs/sha256/%s", s->dir, blob + 7);
	bfd = open(bp, O_RDONLY | O_CLOEXEC);
	if (bfd < 0) {
		arl_error_errno(err, errno,
		                "layer %s: its blob is not in the store (pruned?): load the image "
		                "again",
		                diff_id);
		goto out;
	}
	tmp = arl_xasprintf("%s/.tmp-%s-XXXXXX", s->layers, hex);
	if (!mkdtemp(tmp)) {
		arl_error_errno(err, errno, "cannot make a temp dir in '%s'", s->layers);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		arl_error_errno(err, errno, "cannot open '%s'", tmp);
		goto out;
	}
	{
		/* The blob's own digest was checked when it was stored (content-addressed, in a dir
		 * only we write); the diff_id, which names the unpacked layer, is checked here. */
		struct arl_unpack_opts o = {.layer = blob,
		                            .diff_id = diff_id,
		                            .chown = s->chown,
		                            .uid = s->uid,
		                            .gid = s->gid};
		if (arl_unpack_layer(bfd, dfd, &o, NULL, err) < 0)
			goto out;
	}
	/* Ours alone (mkdtemp's 0700) while it is filled: only now the owner's, traversable. */
	if ((s->chown && fchown(dfd, s->uid, s->gid) < 0) || fchmod(dfd, 0755) < 0) {
		arl_error_errno(err, errno, "cannot set up '%s'", tmp);
		goto out;
	}
	if (rename(tmp, dp) < 0) {
		arl_error_errno(err, errno, "cannot rename '%s'", tmp);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	atomic_fetch_add(&s->unpacks, 1);
	/* Down to shared; flock converts by unlocking first, so check it is still there. */
	while (flock(lock, LOCK_SH) < 0 && errno == EINTR)
		;
	if (access(dp, F_OK) < 0) {
		arl_error(err, ARL_E_IO, "layer %s was removed while it was being unpacked",
		          diff_id);
		goto out;
	}
done:
	ret = lock;
	lock = -1;
out:
	if (tmp) {
		struct arl_err e2 = ARL_ERR_INIT;
		char *slash = strrchr(tmp, '/');
		int pfd = open(s->layers, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) {
			(void)arl_unpack_rmtree(pfd, slash + 1, &e2);
			close(pfd);
		}
		free(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	if (bfd >= 0)
		close(bfd);
	if (lock >= 0)
		close(lock);
	free(bp);
	free(lp);
	free(dp);
	return ret;
}

static int config_read(struct arl_image_store *s, const char *id, struct arl_image_config *c,
                       struct arl_err *err)
{
	char *p = arl_xasprintf("%s/blobs/sha256/%s", s->dir, id + 7);
	cJSON *j = NULL, *cc, *v;
	int ret = -1;

	if (read_json(p, &j, false, JSON_MAX, err) < 0)
		goto out;
	cc = cJSON_GetObjectItemCaseSensitive(j, "config");
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cc, "Env"))
	{
		if (cJSON_IsString(v) && strchr(v->valuestring, '='))
			strv_add(&c->env, &c->nenv, v->valuestring);
	}
	if (jstr(cc, "WorkingDir") && *jstr(cc, "WorkingDir"))
		c->workdir = arl_xstrdup(jstr(cc, "WorkingDir"));
	if (jstr(cc, "User") && *jstr(cc, "User"))
		c->user = arl_xstrdup(jstr(cc, "User"));
	ret = 0;
out:
	cJSON_Delete(j);
	free(p);
	return ret;
}

/* A key telling whether an archive changed since it was loaded. */
static char *file_key(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return NULL;
	return arl_xasprintf("%lu:%lu:%lld:%lld.%09ld", (unsigned long)st.st_dev,
	                     (unsigned long)st.st_ino, (long long)st.st_size,
	                     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static const char *how_to_load(void)
{
	return "load it with `docker save NAME | arl-batch image load` (or `arl-batch image load "
	       "FILE`), or name an archive: docker-archive:FILE, oci:DIR[:TAG], "
	       "oci-archive:FILE[:TAG]";
}

/* The image id @r stands for, loading an archive reference when it is new or changed. */
static int resolve(struct arl_image_store *s, const struct ref *r, const char *ref, char id[72],
                   struct arl_err *err)
{
	cJSON *idx = NULL;
	int lock = -1, ret = -1, reflock = -1;
	char *key = NULL, *abs = NULL;
	const char *found;

	if (r->kind == REF_NAME || r->kind == REF_ID) {
		if (index_open(s, LOCK_SH, &idx, &lock, err) < 0)
			goto out;
		found = index_find(idx, r);
		if (!found) {
			arl_error(err, ARL_E_INVALID,
			          "image '%s' is not in the image store (%s): %s", ref, s->dir,
			          how_to_load());
			goto out;
		}
		snprintf(id, 72, "%s", found);
		ret = 0;
		goto out;
	}
	abs = realpath(r->path, NULL);
	if (!abs || !(key = file_key(abs))) {
		arl_error_errno(err, errno, "image '%s': cannot read '%s'", ref, r->path);
		goto out;
	}
	{
		char *canon =
		    arl_xasprintf("%s|%s|%s", r->kind == REF_DOCKER_ARCHIVE ? "docker" : "oci", abs,
		                  r->tag ? r->tag : "");
		const cJSON *e;
		struct found f = {0};
		char hex[65], *lp;

		/* One loader per reference: the others wait, then find it recorded. */
		arl_unpack_sha256_hex(canon, strlen(canon), hex);
		lp = arl_xasprintf("%s/refs/%s.lock", s->dir, hex);
		reflock = lock_file(lp, LOCK_EX, err);
		free(lp);
		if (reflock < 0 || index_open(s, LOCK_SH, &idx, &lock, err) < 0) {
			free(canon);
			goto out;
		}
		e = cJSON_GetObjectItemCaseSensitive(jobj(idx, "refs"), canon);
		if (e && jstr(e, "key") && !strcmp(jstr(e, "key"), key) && jstr(e, "id") &&
		    cJSON_GetObjectItemCaseSensitive(jobj(idx, "images"), jstr(e, "id"))) {
			snprintf(id, 72, "%s", jstr(e, "id"));
			free(canon);
			ret = 0;
			goto out;
		}
		index_close(idx, lock);
		idx = NULL;
		lock = -1;
		/* Loaded under no name: the reference itself finds it again. */
		ret = load_path(s, abs, r->tag, true, r->kind == REF_DOCKER_ARCHIVE, &f, err);
		if (ret == 0 && index_open(s, LOCK_EX, &idx, &lock, err) == 0) {
			cJSON *rec = cJSON_CreateObject();
			cJSON_AddStringToObject(rec, "id", f.config);
			cJSON_AddStringToObject(rec, "key", key);
			cJSON_DeleteItemFromObjectCaseSensitive(jobj(idx, "refs"), canon);
			cJSON_AddItemToObject(jobj(idx, "refs"), canon, rec);
			ret = index_save(s, idx, err);
			snprintf(id, 72, "%s", f.config);
		} else {
			ret = -1;
		}
		if (ret < 0)
			arl_err_prefix(err, "image '%s'", ref);
		found_release(&f);
		free(canon);
	}
out:
	index_close(idx, lock);
	if (reflock >= 0)
		close(reflock);
	free(key);
	free(abs);
	return ret;
}

/* Marks layer @hex in use by this handle (see struct arl_image_store). */
static int inuse_add(struct arl_image_store *s, const char *hex, struct arl_err *err)
{
	char line[80];
	int ret = -1, n = snprintf(line, sizeof(line), "%s\n", hex);

	pthread_mutex_lock(&s->inuse_mu);
	if (s->inuse_fd < 0) {
		/* Locked under a dot name, then renamed: prune takes an unlocked file as dead. */
		char *p = arl_xasprintf("%s/inuse/.new-%ld-XXXXXX", s->dir, (long)getpid());
		int fd = mkostemp(p, O_CLOEXEC | O_APPEND);
		char *final = NULL;

		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
			final = arl_xasprintf("%s/inuse/%s", s->dir, strrchr(p, '/') + 6);
			if (rename(p, final) < 0) {
				free(final);
				final = NULL;
			}
		}
		if (!final) {
			arl_error_errno(err, errno, "cannot make '%s'", p);
			if (fd >= 0) {
				close(fd);
				unlink(p);
			}
			free(p);
			goto out;
		}
		free(p);
		s->inuse_fd = fd;
		s->inuse_path = final;
	}
	/* One short O_APPEND write: a reader sees whole lines. */
	if (write(s->inuse_fd, line, (size_t)n) != n) {
		arl_error_errno(err, errno, "cannot write '%s'", s->inuse_path);
		goto out;
	}
	ret = 0;
out:
	pthread_mutex_unlock(&s->inuse_mu);
	return ret;
}

void arl_image_free(struct arl_image *im)
{
	if (!im)
		return;
	free(im->ref);
	free(im->id);
	arl_image_strv_free(im->layers, im->nlayers);
	arl_image_strv_free(im->config.env, im->config.nenv);
	free(im->config.workdir);
	free(im->config.user);
	free(im);
}

int arl_image_get(struct arl_image_store *s, const char *ref, struct arl_image **out,
                  struct arl_err *err)
{
	struct ref r;
	struct arl_image *p = NULL;
	char id[72];
	cJSON *idx = NULL, *layers, *l;
	int lock = -1, ret = -1;
	char **diffs = NULL, **blobs = NULL;
	size_t n = 0, nb = 0;

	if (parse_ref(ref, &r, err) < 0)
		return -1;
	if (resolve(s, &r, ref, id, err) < 0)
		goto out;
	if (index_open(s, LOCK_SH, &idx, &lock, err) < 0)
		goto out;
	layers = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(jobj(idx, "images"), id), "layers");
	if (!cJSON_IsArray(layers)) {
		arl_error(err, ARL_E_INVALID, "image '%s' (%s) lost its record: %s", ref, id,
		          how_to_load());
		goto out;
	}
	cJSON_ArrayForEach(l, layers)
	{
		const char *d = jstr(l, "diff_id"), *b = jstr(l, "blob");
		if (!is_digest(d) || !is_digest(b)) {
			arl_error(err, ARL_E_PARSE, "image '%s': a layer record is damaged", ref);
			goto out;
		}
		strv_add(&diffs, &n, d);
		strv_add(&blobs, &nb, b);
	}
	index_close(idx, lock); /* lock order: a layer's lock before the index's */
	idx = NULL;
	lock = -1;
	p = arl_xcalloc(1, sizeof(*p));
	p->ref = arl_xstrdup(ref);
	p->id = arl_xstrdup(id);
	if (config_read(s, id, &p->config, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int fd;
		char *dir;

		/* In use before it is looked at: prune then keeps it or we see it gone. */
		if (inuse_add(s, diffs[i] + 7, err) < 0 ||
		    (fd = layer_get(s, diffs[i], blobs[i], err)) < 0) {
			arl_err_prefix(err, "image '%s'", ref);
			goto out;
		}
		close(fd);
		dir = arl_xasprintf("%s/%s", s->layers, diffs[i] + 7);
		strv_add(&p->layers, &p->nlayers, dir);
		free(dir);
	}
	*out = p;
	p = NULL;
	ret = 0;
out:
	arl_image_free(p);
	index_close(idx, lock);
	arl_image_strv_free(diffs, n);
	arl_image_strv_free(blobs, nb);
	ref_release(&r);
	return ret;
}

int arl_image_check(struct arl_image_store *s, const char *ref, struct arl_err *err)
{
	struct ref r;
	int ret = -1;

	if (parse_ref(ref, &r, err) < 0)
		return -1;
	if (r.kind == REF_NAME || r.kind == REF_ID) {
		cJSON *idx = NULL;
		int lock = -1;
		if (index_open(s, LOCK_SH, &idx, &lock, err) == 0) {
			if (index_find(idx, &r))
				ret = 0;
			else
				arl_error(err, ARL_E_INVALID,
				          "image '%s' is not in the image store (%s): %s", ref,
				          s->dir, how_to_load());
		}
		index_close(idx, lock);
	} else {
		char *need = r.kind == REF_OCI ? arl_xasprintf("%s/index.json", r.path)
		                               : arl_xstrdup(r.path);
		if (access(need, R_OK) < 0)
			arl_error_errno(err, errno, "image '%s': cannot read '%s'", ref, need);
		else
			ret = 0;
		free(need);
	}
	ref_release(&r);
	return ret;
}

void arl_image_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- list, rm, prune ---- */

static int info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct arl_image_info *)a)->name,
	              ((const struct arl_image_info *)b)->name);
}

int arl_image_list(struct arl_image_store *s, struct arl_image_info **out, size_t *n,
                   struct arl_err *err)
{
	cJSON *idx = NULL, *t;
	int lock = -1;
	struct arl_image_info *v = NULL;
	size_t cnt = 0, cap = 0;

	if (index_open(s, LOCK_SH, &idx, &lock, err) < 0)
		return -1;
	cJSON_ArrayForEach(t, jobj(idx, "tags"))
	{
		const char *id = jstr(t, "id");
		const cJSON *img =
		    id ? cJSON_GetObjectItemCaseSensitive(jobj(idx, "images"), id) : NULL;
		const cJSON *sz = cJSON_GetObjectItemCaseSensitive(img, "size");
		const cJSON *cr = cJSON_GetObjectItemCaseSensitive(t, "created");

		if (!img)
			continue;
		ARL_GROW(v, cap, cnt + 1);
		v[cnt].name = arl_xstrdup(t->string);
		v[cnt].id = arl_xstrdup(id);
		v[cnt].size = cJSON_IsNumber(sz) ? (uint64_t)sz->valuedouble : 0;
		v[cnt].nlayers =
		    (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(img, "layers"));
		v[cnt].created = cJSON_IsNumber(cr) ? (int64_t)cr->valuedouble : 0;
		cnt++;
	}
	index_close(idx, lock);
	if (cnt)
		qsort(v, cnt, sizeof(*v), info_cmp);
	*out = v;
	*n = cnt;
	return 0;
}

void arl_image_infos_free(struct arl_image_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].id);
	}
	free(v);
}

int arl_image_rm(struct arl_image_store *s, const char *name, struct arl_err *err)
{
	struct ref r;
	cJSON *idx = NULL, *tags, *t, *next;
	int lock = -1, ret = -1, removed = 0;
	char *id = NULL;

	if (parse_ref(name, &r, err) < 0)
		return -1;
	if (r.kind != REF_NAME && r.kind != REF_ID) {
		arl_error(err, ARL_E_USAGE, "'%s': image rm takes NAME[:TAG] or an id", name);
		goto out;
	}
	if (index_open(s, LOCK_EX, &idx, &lock, err) < 0)
		goto out;
	tags = jobj(idx, "tags");
	if (r.kind == REF_NAME) {
		if (cJSON_GetObjectItemCaseSensitive(tags, r.name)) {
			cJSON_DeleteItemFromObjectCaseSensitive(tags, r.name);
			removed = 1;
		}
	} else if (index_find(idx, &r)) {
		id = arl_xstrdup(index_find(idx, &r));
		for (t = tags->child; t; t = next) {
			next = t->next;
			if (jstr(t, "id") && !strcmp(jstr(t, "id"), id)) {
				cJSON_DeleteItemFromObjectCaseSensitive(tags, t->string);
				removed++;
			}
		}
		if (!removed) /* an untagged image: forget it now */
			cJSON_DeleteItemFromObjectCaseSensitive(jobj(idx, "images"), id),
			    removed = 1;
	}
	if (!removed) {
		arl_error(err, ARL_E_INVALID, "no image '%s' in the image store (%s)", name,
		          s->dir);
		goto out;
	}
	ret = index_save(s, idx, err);
out:
	index_close(idx, lock);
	free(id);
	ref_release(&r);
	return ret;
}

static uint64_t tree_bytes(int at, const char *name)
{
	struct stat st;
	uint64_t sum;
	DIR *d;
	struct dirent *de;
	int fd;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	sum = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return sum;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return sum;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			sum += tree_bytes(dirfd(d), de->d_name);
	closedir(d);
	return sum;
}

static bool strv_has(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The layers live store handles use (their inuse/ files, whose flock they hold), sorted; the
 * files of dead processes are deleted (unless @dry_run). A handle makes its file under a dot
 * name and renames it once locked, so an unlocked file is a dead one.
 */
static void inuse_read(struct arl_image_store *s, bool dry_run, char ***out, size_t *n)
{
	char *dp = arl_xasprintf("%s/inuse", s->dir);
	DIR *d = opendir(dp);
	struct dirent *de;
	char **v = NULL;
	size_t cnt = 0;

	while (d && (de = readdir(d))) {
		struct arl_buf b = ARL_BUF_INIT;
		char buf[4096];
		ssize_t r;
		int fd;

		if (de->d_name[0] == '.') {
			long pid = strtol(de->d_name + 5, NULL, 10); /* ".new-PID-XXXXXX" */
			if (!dry_run && !strncmp(de->d_name, ".new-", 5) && pid > 0 &&
			    kill((pid_t)pid, 0) < 0 && errno == ESRCH)
				unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) { /* its process is gone */
			if (!dry_run)
				unlinkat(dirfd(d), de->d_name, 0);
			close(fd);
			continue;
		}
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			arl_buf_add(&b, buf, (size_t)r);
		close(fd);
		for (char *line = b.p, *nl; line && *line; line = nl + 1) {
			if (!(nl = strchr(line, '\n')))
				break;
			if (nl - line == 64) {
				v = arl_xrealloc(v, (cnt + 1) * sizeof(*v));
				v[cnt++] = arl_xstrndup(line, 64);
			}
		}
		arl_buf_release(&b);
	}
	if (d)
		closedir(d);
	free(dp);
	if (cnt)
		qsort(v, cnt, sizeof(*v), str_cmp);
	*out = v;
	*n = cnt;
}

#define PRUNE_BATCH 128 /* layer locks held at once */

struct cand {
	char name[80]; /* HEX, or .tmp-HEX-XXXXXX */
	char hex[65];
	int lock;
};

/*
 * Deletes the candidates of @owner it can lock that no live handle uses. The locks are taken
 * before the in-use lists are read: a handle that marks a layer after that waits on the lock,
 * then finds the layer gone and unpacks it again.
 */
static void prune_batch(struct arl_image_store *s, const char *owner, struct cand *c, size_t n,
                        bool dry_run, struct arl_image_prune_stats *st)
{
	int ofd = open(owner, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **inuse = NULL;
	size_t ninuse = 0;

	for (size_t i = 0; i < n; i++) {
		char *lp = arl_xasprintf("%s/%s.lock", owner, c[i].hex);
		struct arl_err e = ARL_ERR_INIT;
		c[i].lock = lock_file(lp, LOCK_EX | LOCK_NB, &e); /* busy: being unpacked */
		free(lp);
	}
	inuse_read(s, dry_run, &inuse, &ninuse);
	for (size_t i = 0; i < n; i++) {
		bool is_tmp = c[i].name[0] == '.';
		const char *key = c[i].hex;
		struct arl_err e = ARL_ERR_INIT;
		uint64_t b;

		if (c[i].lock < 0)
			continue;
		if (is_tmp || !ninuse || !bsearch(&key, inuse, ninuse, sizeof(*inuse), str_cmp)) {
			b = ofd >= 0 ? tree_bytes(ofd, c[i].name) : 0;
			if (!dry_run && (ofd < 0 || arl_unpack_rmtree(ofd, c[i].name, &e) < 0))
				b = 0;
			else if (!is_tmp)
				st->layers++;
			st->bytes += b;
			if (!dry_run && !is_tmp && b) {
				char lk[80];
				snprintf(lk, sizeof(lk), "%s.lock", c[i].hex);
				unlinkat(ofd, lk, 0); /* waiters see a new inode (lock_file) */
			}
		}
		close(c[i].lock);
	}
	arl_image_strv_free(inuse, ninuse);
	if (ofd >= 0)
		close(ofd);
}

/* Layers of every owner (layers/UID-GID/) no kept image uses, and killed unpacks' temp dirs. */
static void prune_layers(struct arl_image_store *s, char **keep, size_t nkeep, bool dry_run,
                         struct arl_image_prune_stats *st)
{
	char *top = arl_xasprintf("%s/layers", s->dir);
	DIR *d = opendir(top), *ld;
	struct dirent *de, *le;
	struct cand *c = arl_xcalloc(PRUNE_BATCH, sizeof(*c));

	while (d && (de = readdir(d))) {
		char *owner;
		size_t n = 0;

		if (de->d_name[0] == '.')
			continue;
		owner = arl_xasprintf("%s/%s", top, de->d_name);
		ld = opendir(owner);
		while (ld && (le = readdir(ld))) {
			const char *nm = le->d_name;
			size_t len = strlen(nm);
			bool is_tmp = !strncmp(nm, ".tmp-", 5) && len > 5 + 64 && len < 80;
			char diff[72];

			if (!is_tmp && len != 64)
				continue;
			snprintf(c[n].hex, sizeof(c[n].hex), "%.64s", is_tmp ? nm + 5 : nm);
			snprintf(diff, sizeof(diff), "sha256:%s", c[n].hex);
			if (!is_tmp && strv_has(keep, nkeep, diff))
				continue;
			snprintf(c[n].name, sizeof(c[n].name), "%s", nm);
			if (++n == PRUNE_BATCH) {
				prune_batch(s, owner, c, n, dry_run, st);
				n = 0;
			}
		}
		if (n)
			prune_batch(s, owner, c, n, dry_run, st);
		if (ld)
			closedir(ld);
		free(owner);
	}
	if (d)
		closedir(d);
	free(c);
	free(top);
}

int arl_image_prune(struct arl_image_store *s, bool dry_run, struct arl_image_prune_stats *st,
                    struct arl_err *err)
{
	cJSON *idx = NULL, *img, *next, *t, *l;
	int lock = -1, ret = -1;
	char **keep_imgs = NULL, **keep_blobs = NULL, **keep_layers = NULL;
	size_t ni = 0, nb = 0, nl = 0;
	char *bdir = arl_xasprintf("%s/blobs/sha256", s->dir);
	char *tdir = arl_xasprintf("%s/tmp", s->dir);
	DIR *d = NULL;
	struct dirent *de;

	memset(st, 0, sizeof(*st));
	if (index_open(s, LOCK_EX, &idx, &lock, err) < 0)
		goto out;
	cJSON_ArrayForEach(t, jobj(idx, "tags"))
	{
		if (jstr(t, "id") && !strv_has(keep_imgs, ni, jstr(t, "id")))
			strv_add(&keep_imgs, &ni, jstr(t, "id"));
	}
	for (img = jobj(idx, "images")->child; img; img = next) {
		next = img->next;
		if (!strv_has(keep_imgs, ni, img->string)) {
			st->images++;
			if (!dry_run)
				cJSON_DeleteItemFromObjectCaseSensitive(jobj(idx, "images"),
				                                        img->string);
			continue;
		}
		strv_add(&keep_blobs, &nb, img->string);
		cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(img, "layers"))
		{
			if (jstr(l, "blob"))
				strv_add(&keep_blobs, &nb, jstr(l, "blob"));
			if (jstr(l, "diff_id"))
				strv_add(&keep_layers, &nl, jstr(l, "diff_id"));
		}
	}
	if (!dry_run) {
		cJSON_DeleteItemFromObjectCaseSensitive(idx, "refs");
		jobj(idx, "refs");
		if (index_save(s, idx, err) < 0)
			goto out;
	}
	/* Blobs: under the index's lock, so no load is recording one meanwhile. */
	if ((d = opendir(bdir))) {
		while ((de = readdir(d))) {
			char *dg;
			struct stat bst;
			if (strlen(de->d_name) != 64)
				continue;
			dg = arl_xasprintf("sha256:%s", de->d_name);
			if (!strv_has(keep_blobs, nb, dg) &&
			    fstatat(dirfd(d), de->d_name, &bst, AT_SYMLINK_NOFOLLOW) == 0) {
				st->blobs++;
				st->bytes += (uint64_t)bst.st_blocks * 512;
				if (!dry_run)
					unlinkat(dirfd(d), de->d_name, 0);
			}
			free(dg);
		}
		closedir(d);
	}
	/* Temp files of loads whose process is gone. */
	if (!dry_run && (d = opendir(tdir))) {
		while ((de = readdir(d))) {
			long pid = strtol(de->d_name, NULL, 10);
			if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
				unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	index_close(idx, lock); /* lock order: layers' locks are taken without the index's */
	idx = NULL;
	lock = -1;
	prune_layers(s, keep_layers, nl, dry_run, st);
	ret = 0;
out:
	index_close(idx, lock);
	arl_image_strv_free(keep_imgs, ni);
	arl_image_strv_free(keep_blobs, nb);
	arl_image_strv_free(keep_layers, nl);
	free(bdir);
	free(tdir);
	return ret;
}
