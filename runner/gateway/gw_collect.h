/*
 * A job's artifacts out of a gateway session (backend.h's collect): one execute lists the
 * files the patterns match (sh, od, wc and tr in the image), then each is fetched with
 * download-file and checked against its X-ARL-SHA256 trailer.
 */
#ifndef ARL_GW_COLLECT_H
#define ARL_GW_COLLECT_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "gateway/gw_client.h"

int arl_gw_collect(struct arl_gw *gw, const char *session, int cancel_fd,
                   const struct arl_artifact_spec *specs, size_t nspecs,
                   const struct arl_artifact_sink *sink, int64_t deadline_ms, struct arl_err *err);

/* Parses the lister's output (for tests): calls @fn for each line, -1 when malformed. */
struct arl_gw_found {
	char type; /* 'F' a file to fetch, 'X' one not kept (see reason) */
	size_t spec;
	int64_t size;
	char *path;         /* owned by the parser, valid during the call */
	const char *reason; /* 'X': why */
};
int arl_gw_collect_parse(char *out, size_t nspecs,
                         int (*fn)(void *arg, const struct arl_gw_found *f), void *arg);

#endif
