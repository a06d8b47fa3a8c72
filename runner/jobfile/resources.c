#include "jobfile/resources.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

/* Far below INT64_MAX, so that scaling in 128 bits never overflows before the check. */
#define QUANTITY_MAX ((__int128)1 << 62)
#define DIGITS_MAX   30 /* significant digits kept; 10^30 * 2^60 * 1000 fits in 128 bits */

/* resource.Quantity's suffixes: binary SI, decimal SI, or a decimal exponent. */
static int suffix_scale(const char *s, int *exp2, int *exp10)
{
	static const struct {
		const char *sfx;
		int exp2, exp10;
	} table[] = {{"Ki", 10, 0}, {"Mi", 20, 0}, {"Gi", 30, 0}, {"Ti", 40, 0},
	             {"Pi", 50, 0}, {"Ei", 60, 0}, {"n", 0, -9},  {"u", 0, -6},
	             {"m", 0, -3},  {"", 0, 0},    {"k", 0, 3},   {"M", 0, 6},
	             {"G", 0, 9},   {"T", 0, 12},  {"P", 0, 15},  {"E", 0, 18}};
	int64_t e;

	*exp2 = *exp10 = 0;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (!strcmp(s, table[i].sfx)) {
			*exp2 = table[i].exp2;
			*exp10 = table[i].exp10;
			return 0;
		}
	}
	/* e or E and an optionally signed integer ("1E" alone is exa, above). */
	if ((s[0] == 'e' || s[0] == 'E') && s[1] &&
	    ((s[1] >= '0' && s[1] <= '9') ||
	     ((s[1] == '+' || s[1] == '-') && s[2] >= '0' && s[2] <= '9')) &&
	    arl_parse_i64(s + 1, -100, 100, &e) == 0) {
		*exp10 = (int)e;
		return 0;
	}
	return -1;
}

int arl_quantity_parse(const char *s, int64_t per_unit, int64_t *out)
{
	const char *p = s;
	__int128 v = 0;
	int ndigits = 0, exp2, exp10, frac = 0;
	bool digits = false, neg = false, dropped = false, rest;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	for (; *p >= '0' && *p <= '9'; p++, digits = true) {
		if (ndigits >= DIGITS_MAX)
			return -1;
		v = v * 10 + (*p - '0');
		ndigits += v > 0;
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits = true) {
			if (ndigits >= DIGITS_MAX) {
				dropped |= *p != '0'; /* past what matters, but it rounds up */
				continue;
			}
			v = v * 10 + (*p - '0');
			ndigits += v > 0;
			frac++;
		}
	}
	if (!digits || suffix_scale(p, &exp2, &exp10) < 0)
		return -1;
	exp10 -= frac;
	v *= per_unit;
	for (; exp2 > 0 && v; exp2--)
		if ((v *= 2) > QUANTITY_MAX)
			return -1;
	for (; exp10 > 0 && v; exp10--)
		if ((v *= 10) > QUANTITY_MAX)
			return -1;
	/* Kubernetes rounds a fraction of the unit up. */
	rest = dropped;
	for (; exp10 < 0 && v; exp10++) {
		rest |= v % 10 != 0;
		v /= 10;
	}
	if (rest)
		v++;
	if (v > QUANTITY_MAX)
		return -1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Why @s is not a valid value of @key (owned), or NULL with *@out set. */
static char *parse_limit(const char *key, const char *s, int64_t *out)
{
	static const char *const examples[] = {"512Mi, 2Gi or 1.5G", "\"1.5\", 500m or 2", "1024"};
	int which = !strcmp(key, "memory") ? 0 : !strcmp(key, "cpus") ? 1 : 2;
	int rc = which == 2 ? arl_parse_i64(s, INT64_MIN, INT64_MAX, out)
	                    : arl_quantity_parse(s, which == 1 ? 1000 : 1, out);

	if (rc < 0)
		return arl_xasprintf("resources: %s '%s' is not %s (e.g. %s)", key, s,
		                     which == 2 ? "an integer" : "a Kubernetes quantity",
		                     examples[which]);
	/* The kernel's CFS quota is at least 1 ms per 100 ms period. */
	if (which == 1 && *out < 10)
		return arl_xasprintf("resources: cpus '%s' must be at least 10m (0.01 CPU)", s);
	if (*out <= 0)
		return arl_xasprintf("resources: %s '%s' must be more than 0", key, s);
	return NULL;
}

static void check(struct arl_pool_ctx *c, const struct arl_node *v, const char *key, const char *s)
{
	int64_t ignored;
	char *why = parse_limit(key, s, &ignored);

	if (why)
		arl_pool_error(c, v, "%s", why);
	free(why);
}

void arl_resources_check_memory(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	check(c, v, "memory", *(char **)field);
}

void arl_resources_check_cpus(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	check(c, v, "cpus", *(char **)field);
}

void arl_resources_check_pids(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	check(c, v, "pids", *(char **)field);
}

int arl_resources_limits(const struct arl_pool_resources *r, struct arl_limits *out, char **why)
{
	const struct {
		const char *key, *val;
		int64_t *dst;
	} keys[] = {{"memory", r->memory, &out->memory_bytes},
	            {"cpus", r->cpus, &out->cpu_millis},
	            {"pids", r->pids, &out->pids}};

	memset(out, 0, sizeof(*out));
	*why = NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].val && (*why = parse_limit(keys[i].key, keys[i].val, keys[i].dst)))
			return -1;
	return 0;
}

void arl_resources_hash(const struct arl_pool_resources *r, struct arl_spec_hasher *h)
{
	struct arl_limits l;
	char *why;

	if (!r->set)
		return;
	/* The values, not the text: 1Gi and 1024Mi are the same limit. */
	arl_spec_hash_str(h, "resources");
	if (arl_resources_limits(r, &l, &why) < 0) {
		arl_spec_hash_str(h, why);
		free(why);
		return;
	}
	arl_spec_hash_i64(h, l.memory_bytes);
	arl_spec_hash_i64(h, l.cpu_millis);
	arl_spec_hash_i64(h, l.pids);
}
