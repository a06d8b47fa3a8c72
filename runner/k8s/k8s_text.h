/*
 * Text formats of the Kubernetes API that the client, the kubeconfig loader and the backend
 * share: RFC 3339 times, Go durations (Task spec.timeout and status.duration), DNS-label
 * object names, label values and base64 (*-data fields of a kubeconfig). Pure functions:
 * thread-safe, no allocation unless the comment says so.
 */
#ifndef ARL_K8S_TEXT_H
#define ARL_K8S_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * RFC 3339 ("2026-01-08T11:41:36Z", "2026-01-08T11:41:36.5+02:00") to Unix milliseconds.
 * Returns -1 when malformed; *ms is written only on success.
 */
int arl_k8s_parse_time(const char *s, int64_t *ms);

/*
 * A Go time.Duration string as Duration.String() and time.ParseDuration write it ("1.5s",
 * "2m3.004s", "1h0m0s", "500ms", "3µs", "-1s", "0") to nanoseconds. Returns -1 when malformed
 * or out of range; *ns is written only on success.
 */
int arl_k8s_parse_go_duration(const char *s, int64_t *ns);

/*
 * The whole-second Go duration ("7s") for a limit of @ms milliseconds: rounded up, at least
 * 1s, so the operator (which truncates to seconds, "0" meaning no limit) never gets less time
 * than the runner allows. Writes at most @len bytes; returns @buf.
 */
const char *arl_k8s_format_timeout(int64_t ms, char *buf, size_t len);

/*
 * @s turned into a valid label value (at most 63 of [A-Za-z0-9._-], alphanumeric at both
 * ends): other bytes become '_' ('/' becomes '.'), and a long value keeps its head plus a
 * hash of the whole, so distinct inputs stay distinct. "" stays "". Writes into @out (64 bytes).
 */
void arl_k8s_label_value(const char *s, char out[64]);

/* True when @s is a valid label value (including the empty one). */
bool arl_k8s_is_label_value(const char *s);

/* 32-bit FNV-1a of @s, for short stable hashes in names. */
uint32_t arl_k8s_hash32(const char *s);

/*
 * The name of an attempt's Sandbox: "arl-<run>-<8 hex of the job key>-<attempt>-<@rand>",
 * a DNS label of at most ARL_K8S_SANDBOX_NAME_MAX characters, so that "<name>-<n>" Task
 * names stay within 63. @rand is lowercased and cut to 6 characters of [a-z0-9].
 */
#define ARL_K8S_SANDBOX_NAME_MAX 52
void arl_k8s_sandbox_name(int64_t run_id, const char *job_key, int attempt, const char *rand,
                          char out[ARL_K8S_SANDBOX_NAME_MAX + 1]);

/* @n random characters of [a-z0-9] from getrandom() (a counter-based fallback), NUL-ended. */
void arl_k8s_random_suffix(char *out, size_t n);

/*
 * Decodes standard base64 (padding optional; whitespace ignored). Returns a malloc'd buffer
 * (NUL-terminated for convenience) and its length in *len, or NULL when the text is invalid.
 */
char *arl_k8s_base64_decode(const char *s, size_t *len);
/* Encodes @len bytes; returns a malloc'd NUL-terminated string. */
char *arl_k8s_base64_encode(const void *data, size_t len);

/*
 * @url for messages: userinfo ("https://user:pass@host") is a credential and becomes
 * "REDACTED@". Returns a malloc'd string.
 */
char *arl_k8s_redact_url(const char *url);
/* Where the host part of @url (after "scheme://" and any userinfo) starts. */
const char *arl_k8s_url_host(const char *url);

#endif
