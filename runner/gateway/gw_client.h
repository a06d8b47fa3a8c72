/*
 * The ARL gateway's HTTP API (../shared/arl-gateway.md, docs/gateway.md) over the shared HTTP
 * client (http/http.h): one gateway (URL and API key) per struct arl_gw, any number of them
 * on one struct arl_http. The API key goes out as "Authorization: Bearer KEY" on every /v1
 * request and nowhere else: never in a message, a log line or a record.
 *
 * Thread-safety: any thread, once made; arl_gw_free() after all other use.
 */
#ifndef ARL_GW_CLIENT_H
#define ARL_GW_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "http/http.h"

struct arl_gw;

/* @url without a trailing slash is fine; @key may be NULL (a gateway without auth). */
struct arl_gw *arl_gw_new(struct arl_http *http, const char *url, const char *key);
void arl_gw_free(struct arl_gw *g);
const char *arl_gw_url(const struct arl_gw *g);

/* What one call may do: bounds, cancellation, the creation window. */
struct arl_gw_call {
	int64_t deadline_ms; /* 0: none */
	int cancel_fd;       /* -1: none */
	int max_tries;       /* 0: the client's; -1: as many as the deadline allows */
	int64_t timeout_ms;  /* one try; 0: the client's */
	struct arl_http_throttle *throttle;
	int64_t cancel_grace_ms;
	/*
	 * The answer's bytes (it is parsed whole): 0 is ARL_GW_SMALL_ANSWER, and for execute
	 * and polls ARL_GW_STEP_ANSWER(ARL_SPAWN_DEFAULT_CAPTURE). A download takes its @max.
	 */
	size_t max_body;
};
#define ARL_GW_CALL_INIT                                                                           \
	{                                                                                          \
		0, -1, 0, 0, NULL, 0, 0                                                            \
	}
/* What one answer may cost (a JSON array of small items costs ~40x its bytes once parsed). */
#define ARL_GW_SMALL_ANSWER ((size_t)64 << 10)
/* A step's answer holds its stdout and stderr, each kept up to @capture bytes. */
#define ARL_GW_STEP_ANSWER(capture) (2 * (size_t)(capture) + ARL_GW_SMALL_ANSWER)

struct arl_gw_resp {
	long status; /* 0: no answer */
	cJSON *json; /* the parsed body, or NULL */
	bool cancelled, ambiguous;
	int tries;
	char sha256[65];    /* download: the X-ARL-SHA256 trailer, or "" */
	int64_t size;       /* download: the X-ARL-Size-Bytes trailer, or -1 */
	struct arl_buf raw; /* download: the body */
};
void arl_gw_resp_release(struct arl_gw_resp *r);

/* The gateway's explanation of a failure ({"error","detail"}, else the body's start). */
void arl_gw_message(const struct arl_gw_resp *r, char *buf, size_t len);

/*
 * POST /v1/sessions with @body: blocks until allocated. Never repeated once it may have
 * reached the gateway (creation is not idempotent): only a 429 or a connection that was
 * never made is tried again.
 */
int arl_gw_create(struct arl_gw *g, const cJSON *body, const struct arl_gw_call *c,
                  struct arl_gw_resp *resp, struct arl_err *err);
/* DELETE /v1/sessions/ID; a 404 (already gone) is success. Repeated until answered. */
int arl_gw_delete(struct arl_gw *g, const char *id, const struct arl_gw_call *c,
                  struct arl_gw_resp *resp, struct arl_err *err);
/* POST .../execute with @body (it carries its operationID: repeating it is safe). */
int arl_gw_execute(struct arl_gw *g, const char *id, const cJSON *body, const struct arl_gw_call *c,
                   struct arl_gw_resp *resp, struct arl_err *err);
/* GET .../operations/OP. A 404 is for the caller to judge (resp->status). */
int arl_gw_operation(struct arl_gw *g, const char *id, const char *op, const struct arl_gw_call *c,
                     struct arl_gw_resp *resp, struct arl_err *err);
/* GET /v1/sessions/ID: a 404 (or 410) is for the caller to judge. */
int arl_gw_get(struct arl_gw *g, const char *id, const struct arl_gw_call *c,
               struct arl_gw_resp *resp, struct arl_err *err);
/* POST .../upload-file: @len bytes to absolute @path, checked by their SHA-256 there. */
int arl_gw_upload(struct arl_gw *g, const char *id, const char *path, const void *data, size_t len,
                  const struct arl_gw_call *c, struct arl_gw_resp *resp, struct arl_err *err);
/*
 * POST .../download-file: the file at @path into resp->raw (at most @max bytes), with its
 * trailers; the body's SHA-256 must match the X-ARL-SHA256 trailer (a transfer cut after it
 * began has none).
 */
int arl_gw_download(struct arl_gw *g, const char *id, const char *path, size_t max,
                    const struct arl_gw_call *c, struct arl_gw_resp *resp, struct arl_err *err);

/* A fresh uuid v4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") from the kernel's random source. */
void arl_gw_uuid(char out[37]);

#endif
