#include "k8s/k8s_text.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Reads exactly @n digits at *p into *v and advances; -1 when they are not all digits. */
static int digits(const char **p, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit((*p)[i]))
			return -1;
		x = x * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*v = x;
	return 0;
}

/*
 * metav1.Time is RFC 3339 with second precision; status fields written by other tools may
 * carry fractions or offsets, so both are accepted. timegm() because the result is UTC.
 */
int arl_k8s_parse_time(const char *s, int64_t *ms)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int y, mo, d, h, mi, sec, frac_ms = 0, off = 0;
	struct tm tm;
	time_t t;

	if (!s || digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
	    digits(&p, 2, &d) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p++;
	if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 || *p++ != ':' ||
	    digits(&p, 2, &sec) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -1;
	if (*p == '.') {
		int scale = 100;

		p++;
		if (!is_digit(*p))
			return -1;
		for (; is_digit(*p); p++, scale /= 10)
			frac_ms += (*p - '0') * scale;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;

		if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 || oh > 23 ||
		    om > 59)
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*ms = ((int64_t)t - off) * 1000 + frac_ms;
	return 0;
}

/*
 * time.ParseDuration's grammar: [-+]? ( digits? [.digits]? unit )+, or "0" alone. A bare
 * number without a unit is refused as Go refuses it, which matters because the operator
 * cannot decode an object whose spec.timeout does not parse (docs/kubernetes.md, 'Traps').
 */
int arl_k8s_parse_go_duration(const char *s, int64_t *ns)
{
	static const struct {
		const char *unit;
		int64_t ns;
	} units[] = {
	    /* Longest first where one unit is a prefix of another ("ms" before "m"). */
	    {"ns", 1},
	    {"us", 1000},
	    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
	    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
	    {"ms", 1000000},
	    {"s", 1000000000},
	    {"m", 60 * (int64_t)1000000000},
	    {"h", 3600 * (int64_t)1000000000},
	};
	const char *p = s;
	bool neg = false;
	double total = 0;

	if (!s || !*s)
		return -1;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (!strcmp(p, "0")) {
		*ns = 0;
		return 0;
	}
	if (!*p)
		return -1;
	while (*p) {
		double whole = 0, frac = 0, scale = 1;
		bool any = false;
		size_t i;

		for (; is_digit(*p); p++, any = true)
			whole = whole * 10 + (*p - '0');
		if (*p == '.') {
			for (p++; is_digit(*p); p++, any = true) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
		}
		if (!any)
			return -1;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (!strncmp(p, units[i].unit, strlen(units[i].unit)))
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			return -1;
		total += (whole + frac) * (double)units[i].ns;
		p += strlen(units[i].unit);
		if (total >= 9223372036854774784.0) /* past INT64_MAX ns, as Go refuses */
			return -1;
	}
	*ns = (int64_t)(total + 0.5) * (neg ? -1 : 1);
	return 0;
}

/* "%llds" and nothing fancier: the operator truncates to seconds anyway. */
const char *arl_k8s_format_timeout(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms <= 0 ? 1 : (ms + 999) / 1000;

	snprintf(buf, len, "%llds", (long long)s);
	return buf;
}

/* FNV-1a: stable across runs and hosts, which matters for names that identify a job. */
uint32_t arl_k8s_hash32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

bool arl_k8s_is_label_value(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return true;
	if (n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/*
 * Job keys become label values so that `kubectl get sandboxes -l arl.infra.io/job=...`
 * works; the common case (FILE_STEM/JOB_NAME of DNS-ish words) maps to a readable value.
 */
void arl_k8s_label_value(const char *s, char out[64])
{
	char tmp[64];
	size_t n = 0, start = 0, len = strlen(s);
	bool cut = len > 63;

	out[0] = '\0';
	if (!len)
		return;
	/* Only the head is needed: a cut value keeps 54 characters and adds "-<hash>". */
	for (size_t i = 0; i < len && n < 63; i++) {
		char c = s[i];

		tmp[n++] = is_alnum(c) || c == '.' || c == '_' || c == '-' ? c
		           : c == '/'                                      ? '.'
		                                                           : '_';
	}
	tmp[n] = '\0';
	if (cut) {
		n = 54;
		tmp[n] = '\0';
	}
	while (start < n && !is_alnum(tmp[start]))
		start++;
	while (n > start && !is_alnum(tmp[n - 1]))
		n--;
	tmp[n] = '\0';
	if (cut || n == start)
		snprintf(out, 64, "%.54s%s%08x", tmp + start, n > start ? "-" : "h",
		         arl_k8s_hash32(s));
	else
		snprintf(out, 64, "%s", tmp + start);
}

/*
 * The sandbox name becomes a pod label value too (arl.infra.io/sandbox=<name>): a longer
 * name would make the operator's pod update fail and leave the Sandbox Pending forever.
 */
void arl_k8s_sandbox_name(int64_t run_id, const char *job_key, int attempt, const char *rand,
                          char out[ARL_K8S_SANDBOX_NAME_MAX + 1])
{
	char r[7];
	size_t n = 0;

	for (; rand && *rand && n < 6; rand++) {
		char c = *rand;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (is_digit(c) || (c >= 'a' && c <= 'z'))
			r[n++] = c;
	}
	r[n] = '\0';
	snprintf(out, ARL_K8S_SANDBOX_NAME_MAX + 1, "arl-%lld-%08x-%d%s%s",
	         (long long)(run_id < 0 ? 0 : run_id), arl_k8s_hash32(job_key ? job_key : ""),
	         attempt < 0 ? 0 : attempt, n ? "-" : "", r);
}

/*
 * Random, not a timestamp: the SDK's session-<seconds> names collide when two sessions
 * start within a second (docs/kubernetes.md, 'Traps'); modulo bias over 36 letters is
 * irrelevant here.
 */
void arl_k8s_random_suffix(char *out, size_t n)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	static atomic_uint counter;
	unsigned char raw[64];

	if (n > sizeof(raw))
		n = sizeof(raw);
	if (getrandom(raw, n, GRND_NONBLOCK) != (ssize_t)n) {
		/* No entropy yet (early boot): unique enough within this process and host. */
		uint32_t x = arl_k8s_hash32("") ^ (uint32_t)getpid() ^ (uint32_t)arl_wall_ms() ^
		             (atomic_fetch_add(&counter, 1) * 2654435761u);

		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			raw[i] = (unsigned char)x;
		}
	}
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[raw[i] % 36];
	out[n] = '\0';
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (is_digit(c))
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* kubectl writes *-data on one line, hand-edited files wrap it: whitespace is skipped. */
char *arl_k8s_base64_decode(const char *s, size_t *len)
{
	size_t cap = strlen(s) / 4 * 3 + 4, n = 0;
	char *out = arl_xmalloc(cap);
	uint32_t acc = 0;
	int bits = 0, pad = 0;

	for (; *s; s++) {
		int v;

		if (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
			continue;
		if (*s == '=') {
			pad++;
			continue;
		}
		if (pad || (v = b64_value(*s)) < 0)
			goto bad; /* data after padding, or not base64 */
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)(acc >> bits & 0xff);
		}
	}
	/* 6 leftover bits cannot come from whole bytes; more than 2 '=' is not base64. */
	if (bits >= 6 || pad > 2)
		goto bad;
	out[n] = '\0';
	*len = n;
	return out;
bad:
	free(out);
	return NULL;
}

char *arl_k8s_base64_encode(const void *data, size_t len)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char *out = arl_xmalloc((len + 2) / 3 * 4 + 1), *o = out;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		*o++ = i + 1 < len ? a[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? a[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* After "scheme://", else @url itself. */
static const char *url_authority(const char *url)
{
	const char *p = strstr(url, "://");

	return p ? p + 3 : url;
}

const char *arl_k8s_url_host(const char *url)
{
	const char *a = url_authority(url), *end = a + strcspn(a, "/?#"), *at = NULL;

	/* The last '@' of the authority: a password may hold another, unescaped. */
	for (const char *p = a; p < end; p++)
		if (*p == '@')
			at = p;
	return at ? at + 1 : a;
}

char *arl_k8s_redact_url(const char *url)
{
	const char *a = url_authority(url), *host = arl_k8s_url_host(url);

	if (host == a)
		return arl_xstrdup(url);
	return arl_xasprintf("%.*sREDACTED@%s", (int)(a - url), url, host);
}
