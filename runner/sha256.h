/*
 * SHA-256 (FIPS 180-4), for the content-addressed artifact store: a stored file's name is its
 * digest. Small and dependency-free so that no crypto library is needed for one hash.
 */
#ifndef ARL_SHA256_H
#define ARL_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct arl_sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed */
	unsigned char buf[64];
	size_t nbuf;
};

void arl_sha256_init(struct arl_sha256 *c);
void arl_sha256_update(struct arl_sha256 *c, const void *p, size_t n);
/* The digest as 64 lowercase hex digits and a NUL. */
void arl_sha256_hex(struct arl_sha256 *c, char out[65]);

#endif
