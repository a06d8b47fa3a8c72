/*
 * libFuzzer target: the image store's readers of docker-archive and OCI layouts (manifest.json,
 * index.json, manifests, configs) and the layer reader, through arl_image_load and
 * arl_image_get as `image load` and a pool's first use run them.
 *
 * The input is parts separated by "\n====\n". Part 0 is manifest.json when it starts with '['
 * (a docker-archive), else index.json (an OCI layout). Every later part i is stored twice in
 * the archive, as "pI" and as "blobs/sha256/HEX" of its bytes; "@I" in a part is replaced by
 * "sha256:HEX" of part I first (only I > the part's own number, so digests can match:
 * parts are finished from the last one back).
 */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "image/image.h"
#include "image/unpack.h"
#include "util.h"

#define MAXPARTS 8
#define SEP      "\n====\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void add(struct archive *a, const char *name, const char *p, size_t n)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)n);
	archive_write_header(a, e);
	archive_write_data(a, p, n);
	archive_entry_free(e);
}

/* @s with every "@I" (I > @self) replaced by "sha256:" and the hex digest of part I. */
static char *substitute(const char *s, size_t len, size_t *outlen, char hex[][65], size_t n,
                        size_t self)
{
	char *out = arl_xmalloc(len * 72 + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		size_t k = (size_t)(s[i + (i + 1 < len)] - '0');
		if (s[i] == '@' && i + 1 < len && k < n && k > self) {
			o += (size_t)sprintf(out + o, "sha256:%s", hex[k]);
			i++;
			continue;
		}
		out[o++] = s[i];
	}
	*outlen = o;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[64];
	const char *parts[MAXPARTS], *in = (const char *)data, *end = in + size;
	size_t lens[MAXPARTS], n = 0, plen[MAXPARTS];
	char hex[MAXPARTS][65], *fin[MAXPARTS] = {0}, name[128], path[64];
	struct arl_image_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	struct archive *a;
	int fd;

	if (!*dir)
		snprintf(dir, sizeof(dir), "/tmp/arl-fuzz-image-%ld", (long)getpid());
	while (n < MAXPARTS) {
		const char *sep = memmem(in, (size_t)(end - in), SEP, strlen(SEP));
		parts[n] = in;
		lens[n++] = sep ? (size_t)(sep - in) : (size_t)(end - in);
		if (!sep)
			break;
		in = sep + strlen(SEP);
	}
	for (size_t i = n; i-- > 0;) {
		fin[i] = substitute(parts[i], lens[i], &plen[i], hex, n, i);
		arl_unpack_sha256_hex(fin[i], plen[i], hex[i]);
	}
	fd = memfd_create("archive", MFD_CLOEXEC);
	a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_open_fd(a, fd);
	if (plen[0] && fin[0][0] == '[') {
		add(a, "manifest.json", fin[0], plen[0]);
	} else {
		add(a, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
		add(a, "index.json", fin[0], plen[0]);
	}
	for (size_t i = 1; i < n; i++) {
		snprintf(name, sizeof(name), "p%zu", i);
		add(a, name, fin[i], plen[i]);
		snprintf(name, sizeof(name), "blobs/sha256/%s", hex[i]);
		add(a, name, fin[i], plen[i]);
	}
	archive_write_close(a);
	archive_write_free(a);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (arl_image_store_open(&s, dir, (uid_t)-1, (gid_t)-1, &err) == 0) {
		char **tags = NULL;
		size_t nt = 0;

		if (arl_image_load(s, path, &tags, &nt, &err) == 0) {
			for (size_t i = 0; i < nt; i++) {
				struct arl_image *im = NULL;
				struct arl_err e2 = ARL_ERR_INIT;
				if (arl_image_get(s, tags[i], &im, &e2) == 0)
					arl_image_free(im);
				if (getenv("FUZZ_IMAGE_DEBUG"))
					printf("get %s: %s\n", tags[i], e2.code ? e2.msg : "ok");
			}
			arl_image_strv_free(tags, nt);
		} else if (getenv("FUZZ_IMAGE_DEBUG")) { /* to check that a seed loads */
			printf("load: %s\n", err.msg);
		}
	}
	arl_image_store_close(s);
	close(fd);
	for (size_t i = 0; i < n; i++)
		free(fin[i]);
	/* A fresh store for the next input. */
	snprintf(name, sizeof(name), "rm -rf %s", dir);
	if (system(name) != 0)
		abort();
	return 0;
}
