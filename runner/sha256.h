/*
 * SHA-256 through OpenSSL's libcrypto (EVP), streamed: the content-addressed stores (artifacts,
 * image layers) name a stored file by its digest.
 */
#ifndef ARL_SHA256_H
#define ARL_SHA256_H

#include <stddef.h>

struct arl_sha256 {
	void *ctx; /* EVP_MD_CTX: libcrypto's header stays out of the callers' */
};

/* Aborts when libcrypto cannot allocate, as arl_xmalloc() does. */
void arl_sha256_init(struct arl_sha256 *c);
void arl_sha256_update(struct arl_sha256 *c, const void *p, size_t n);
/* The digest as 64 lowercase hex digits and a NUL; releases @c (init it again to reuse it). */
void arl_sha256_hex(struct arl_sha256 *c, char out[65]);
/* Releases @c without a digest (an abandoned stream); a released @c is a no-op. */
void arl_sha256_release(struct arl_sha256 *c);

#endif
