#include "gateway/gw_cred.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

#define CRED_FILE_MAX (64 * 1024)

struct cred {
	char origin[ARL_GW_ORIGIN_MAX];
	char *key; /* NULL: the origin takes no key */
};

struct arl_gw_creds {
	struct cred *v;
	size_t n;
	char env_origin[ARL_GW_ORIGIN_MAX]; /* "" when $ARL_GATEWAY_URL is unset */
	const char *file;                   /* $ARL_GATEWAY_CREDENTIALS, or NULL */
};

/* A URL as it may be printed: one that may hold credentials is not. */
static const char *shown(const char *url)
{
	return strchr(url, '@') ? "(not shown: it holds an '@')" : url;
}

int arl_gw_origin(const char *url, char out[ARL_GW_ORIGIN_MAX], struct arl_err *err)
{
	const char *scheme, *host, *end, *port = NULL, *hend;
	size_t skip;

	if (!strncmp(url, "http://", 7)) {
		scheme = "http";
		skip = 7;
	} else if (!strncmp(url, "https://", 8)) {
		scheme = "https";
		skip = 8;
	} else {
		return arl_error(err, ARL_E_USAGE,
		                 "gateway URL '%s' must start with http:// or https://",
		                 shown(url));
	}
	host = url + skip;
	end = host + strcspn(host, "/?#");
	/* Credentials would be printed and recorded (leases.location), and bound to no origin. */
	if (memchr(host, '@', (size_t)(end - host)))
		return arl_error(err, ARL_E_USAGE,
		                 "a gateway URL must not hold credentials (user@host): the API key "
		                 "is the operator's ($ARL_API_KEY, $ARL_GATEWAY_CREDENTIALS)");
	if (*host == '[') {
		hend = memchr(host, ']', (size_t)(end - host));
		if (!hend)
			goto bad;
		hend++;
	} else {
		hend = memchr(host, ':', (size_t)(end - host));
		if (!hend)
			hend = end;
	}
	if (hend == host || (hend < end && *hend != ':'))
		goto bad;
	if (hend < end) {
		port = hend + 1;
		if (port == end || (size_t)(end - port) > 5)
			goto bad;
		for (const char *p = port; p < end; p++)
			if (!isdigit((unsigned char)*p))
				goto bad;
	}
	if ((size_t)(hend - host) > ARL_GW_ORIGIN_MAX - 16)
		goto bad;
	{
		size_t n = (size_t)snprintf(out, ARL_GW_ORIGIN_MAX, "%s://", scheme);

		for (const char *p = host; p < hend; p++)
			out[n++] = (char)tolower((unsigned char)*p);
		if (port) {
			long v = strtol(port, NULL, 10);

			if (v < 1 || v > 65535)
				goto bad;
			snprintf(out + n, ARL_GW_ORIGIN_MAX - n, ":%ld", v);
		} else {
			snprintf(out + n, ARL_GW_ORIGIN_MAX - n, ":%s", skip == 7 ? "80" : "443");
		}
	}
	return 0;
bad:
	return arl_error(err, ARL_E_USAGE, "gateway URL '%s' has no valid host[:port]", shown(url));
}

static void creds_add(struct arl_gw_creds *c, const char *origin, const char *key)
{
	struct cred *e;

	c->v = arl_xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	e = &c->v[c->n++];
	snprintf(e->origin, sizeof(e->origin), "%s", origin);
	e->key = key ? arl_xstrdup(key) : NULL;
}

/* Like a netrc: a file others can read or write, or that is not ours, is refused. */
static int read_file(const char *path, struct arl_buf *b, struct arl_err *err)
{
	struct stat st;
	char eb[128];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc = -1;

	if (fd < 0)
		return arl_error_errno(err, errno, "$ARL_GATEWAY_CREDENTIALS '%s'", path);
	if (fstat(fd, &st) < 0) {
		arl_error(err, ARL_E_IO, "$ARL_GATEWAY_CREDENTIALS '%s': %s", path,
		          arl_strerror(errno, eb, sizeof(eb)));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		arl_error(err, ARL_E_USAGE, "$ARL_GATEWAY_CREDENTIALS '%s' is not a regular file",
		          path);
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		arl_error(
		    err, ARL_E_USAGE,
		    "$ARL_GATEWAY_CREDENTIALS '%s' must be owned by uid %u and not readable or "
		    "writable by others (chmod 600)",
		    path, (unsigned)geteuid());
		goto out;
	}
	for (;;) {
		char chunk[4096];
		ssize_t r = read(fd, chunk, sizeof(chunk));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			arl_error(err, ARL_E_IO, "$ARL_GATEWAY_CREDENTIALS '%s': %s", path,
			          arl_strerror(errno, eb, sizeof(eb)));
			goto out;
		}
		if (r == 0)
			break;
		if (b->len + (size_t)r > CRED_FILE_MAX) {
			arl_error(err, ARL_E_LIMIT,
			          "$ARL_GATEWAY_CREDENTIALS '%s' is over %d bytes", path,
			          CRED_FILE_MAX);
			goto out;
		}
		arl_buf_add(b, chunk, (size_t)r);
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int parse_file(struct arl_gw_creds *c, const char *path, struct arl_err *err)
{
	struct arl_buf b = ARL_BUF_INIT;
	unsigned line = 0;
	int rc = -1;
	char *p, *nl;

	if (read_file(path, &b, err) < 0)
		goto out;
	arl_buf_add(&b, "", 1);
	for (p = b.p; p && *p; p = nl) {
		char *f[3] = {0}, *save = NULL, origin[ARL_GW_ORIGIN_MAX];
		int nf = 0;

		line++;
		nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		for (char *t = strtok_r(p, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save))
			if (t[0] != '#' || nf)
				f[nf < 3 ? nf++ : 2] = t;
			else
				break; /* a comment line */
		if (nf == 0)
			continue;
		if (nf != 2) {
			arl_error(err, ARL_E_USAGE,
			          "%s:%u: a line is 'URL KEY' (KEY '-' for a gateway without keys)",
			          path, line);
			goto out;
		}
		if (arl_gw_origin(f[0], origin, err) < 0) {
			arl_err_prefix(err, "%s:%u", path, line);
			goto out;
		}
		creds_add(c, origin, strcmp(f[1], "-") ? f[1] : NULL);
	}
	rc = 0;
out:
	if (b.p)
		explicit_bzero(b.p, b.len);
	arl_buf_release(&b);
	return rc;
}

int arl_gw_creds_load(struct arl_gw_creds **out, struct arl_err *err)
{
	struct arl_gw_creds *c = arl_xcalloc(1, sizeof(*c));
	const char *url = getenv("ARL_GATEWAY_URL"), *key = getenv("ARL_API_KEY");
	const char *file = getenv("ARL_GATEWAY_CREDENTIALS");

	*out = NULL;
	if (url && *url) {
		if (arl_gw_origin(url, c->env_origin, err) < 0) {
			arl_err_prefix(err, "$ARL_GATEWAY_URL");
			goto fail;
		}
		if (key && *key)
			creds_add(c, c->env_origin, key);
	}
	if (file && *file) {
		c->file = file;
		if (parse_file(c, file, err) < 0)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	arl_gw_creds_free(c);
	return -1;
}

void arl_gw_creds_free(struct arl_gw_creds *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].key) {
			explicit_bzero(c->v[i].key, strlen(c->v[i].key));
			free(c->v[i].key);
		}
	free(c->v);
	free(c);
}

int arl_gw_creds_key(const struct arl_gw_creds *c, const char *url, char **key, struct arl_err *err)
{
	char origin[ARL_GW_ORIGIN_MAX];

	*key = NULL;
	if (arl_gw_origin(url, origin, err) < 0)
		return -1;
	/* The first binding wins: $ARL_API_KEY's, then the file's in order. */
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].origin, origin)) {
			*key = c->v[i].key ? arl_xstrdup(c->v[i].key) : NULL;
			return 0;
		}
	if (c->env_origin[0] && !strcmp(c->env_origin, origin))
		return arl_error(err, ARL_E_USAGE,
		                 "no API key for %s: set $ARL_API_KEY, or say in "
		                 "$ARL_GATEWAY_CREDENTIALS '%s -' that it takes none",
		                 origin, origin);
	return arl_error(err, ARL_E_USAGE,
	                 "no API key is bound to %s: $ARL_API_KEY goes only to $ARL_GATEWAY_URL's "
	                 "origin (%s); bind this one with a line '%s KEY' (or '%s -' for a gateway "
	                 "without keys) in the file $ARL_GATEWAY_CREDENTIALS (mode 0600)%s%s",
	                 origin, c->env_origin[0] ? c->env_origin : "unset", origin, origin,
	                 c->file ? ", now " : "", c->file ? c->file : "");
}
