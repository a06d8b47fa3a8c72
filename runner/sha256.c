#include "sha256.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "banned.h"

/* libcrypto fails here only when it cannot allocate: as arl_xmalloc(), give up. */
static void die(const char *what)
{
	arl_log_fatal("libcrypto: %s", what);
	abort();
}

void arl_sha256_init(struct arl_sha256 *c)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		die("cannot start a sha256 digest");
	c->ctx = ctx;
}

void arl_sha256_update(struct arl_sha256 *c, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(c->ctx, p, n) != 1)
		die("sha256 update failed");
}

void arl_sha256_hex(struct arl_sha256 *c, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(c->ctx, md, &len) != 1 || len != 32)
		die("sha256 final failed");
	for (unsigned i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	arl_sha256_release(c);
}

void arl_sha256_release(struct arl_sha256 *c)
{
	EVP_MD_CTX_free(c->ctx);
	c->ctx = NULL;
}
