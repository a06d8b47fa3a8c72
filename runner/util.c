#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "banned.h"

static void oom(size_t n)
{
	arl_log_fatal("out of memory allocating %zu bytes", n);
	abort();
}

void *arl_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *arl_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *arl_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *arl_xstrdup(const char *s)
{
	return arl_xstrndup(s, strlen(s));
}

char *arl_xstrndup(const char *s, size_t n)
{
	char *p = arl_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arl_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	s = arl_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void arl_grow(void **v, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 8;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	*v = arl_xrealloc(*v, n * size);
	*cap = n;
}

int arl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The longest duration read (about 31,700 years), either way it is written. */
#define DURATION_MAX_MS INT64_C(1000000000000000)

int arl_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	double total = 0;
	const char *p = s;

	if (!s || !*s)
		return -1;
	if (arl_parse_i64(s, 0, DURATION_MAX_MS / 1000, ms) == 0) {
		*ms *= 1000;
		return 0;
	}
	while (*p) {
		char *end;
		double v;
		size_t i;

		if ((*p < '0' || *p > '9') && *p != '.')
			return -1;
		errno = 0;
		v = strtod(p, &end);
		if (errno || end == p)
			return -1;
		p = end;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].unit);

			/* "ms" before "m": check the longer unit first. */
			if (!strncmp(p, units[i].unit, n) &&
			    !(n == 1 && p[0] == 'm' && p[1] == 's'))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return -1;
		total += v * units[i].ms;
		p += strlen(units[i].unit);
	}
	if (total > (double)DURATION_MAX_MS)
		return -1;
	*ms = (int64_t)(total + 0.5);
	return 0;
}

const char *arl_fmt_duration(int64_t ms, char *buf, size_t len)
{
	int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
	size_t o = 0;

	buf[0] = '\0';
	if (ms == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	if (h && o < len)
		o += (size_t)snprintf(buf + o, len - o, "%lldh", (long long)h);
	if (m && o < len)
		o += (size_t)snprintf(buf + o, len - o, "%lldm", (long long)m);
	if (r && o < len) {
		if (s)
			o += (size_t)snprintf(buf + o, len - o, "%lld.%03llds", (long long)s,
			                      (long long)r);
		else
			o += (size_t)snprintf(buf + o, len - o, "%lldms", (long long)r);
	} else if (s && o < len) {
		snprintf(buf + o, len - o, "%llds", (long long)s);
	}
	return buf;
}

int64_t arl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t arl_clock_now(const struct arl_clock *c)
{
	return c && c->now ? c->now(c->arg) : arl_now_ms();
}

int64_t arl_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void arl_rfc3339(int64_t unix_ms, char buf[32])
{
	int64_t sec = unix_ms / 1000, ms = unix_ms % 1000;
	time_t t;
	struct tm tm;

	if (ms < 0) { /* floored: a time before 1970 keeps its milliseconds in [0, 999] */
		ms += 1000;
		sec--;
	}
	t = (time_t)sec;

	/*
	 * Years outside 0000-9999 clamp to the ends of that range, which keeps the text in
	 * order with every other time (prune compares it as text).
	 */
	if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
		snprintf(buf, 32, "%s",
		         unix_ms < 0 ? "0000-01-01T00:00:00.000Z" : "9999-12-31T23:59:59.999Z");
		return;
	}
	/* The unsigned modulos only tell the compiler each field fits. */
	snprintf(buf, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
	         (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
	         (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
	         (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)ms);
}

void arl_rfc3339_now(char buf[32])
{
	arl_rfc3339(arl_wall_ms(), buf);
}

bool arl_is_dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

unsigned arl_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = row[0]++;

		for (size_t j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
			unsigned best = prev + cost;

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

bool arl_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str, *end = s + len;

	while (s < end) {
		unsigned c = *s, n;
		uint32_t cp;

		if (c < 0x80) {
			s++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			n = 1, cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2, cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3, cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - s) <= n)
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		s += n + 1;
	}
	return true;
}

size_t arl_utf8_cols(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

size_t arl_utf8_prefix(const char *s, size_t w)
{
	size_t i = 0, cols = 0;

	for (; s[i]; i++) {
		if (((unsigned char)s[i] & 0xC0) != 0x80) {
			if (cols == w)
				break;
			cols++;
		}
	}
	return i;
}

uint64_t arl_fnv1a_n(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

uint64_t arl_fnv1a(const char *s)
{
	return arl_fnv1a_n(s, strlen(s));
}

size_t *arl_strindex_slot(const struct arl_strindex *x, const char *key, arl_strindex_key_fn key_of,
                          const void *owner)
{
	size_t mask = x->nslot - 1, i = (size_t)arl_fnv1a(key) & mask;

	while (x->slot[i] && strcmp(key_of(owner, x->slot[i] - 1), key))
		i = (i + 1) & mask;
	return &x->slot[i];
}

void arl_strindex_reserve(struct arl_strindex *x, size_t want, size_t n, arl_strindex_key_fn key_of,
                          const void *owner)
{
	if (2 * want <= x->nslot)
		return;
	free(x->slot);
	if (!x->nslot)
		x->nslot = 32;
	while (x->nslot < 2 * want)
		x->nslot *= 2;
	x->slot = arl_xcalloc(x->nslot, sizeof(*x->slot));
	for (size_t i = 0; i < n; i++)
		*arl_strindex_slot(x, key_of(owner, i), key_of, owner) = i + 1;
}

void arl_cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

void arl_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms)
{
	struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000),
	                      .tv_nsec = (long)(until_ms % 1000) * 1000000};

	pthread_cond_timedwait(cv, mu, &ts);
}

bool arl_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return false;
		}
		c += w;
		n -= (size_t)w;
	}
	return true;
}

bool arl_fd_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return fd >= 0 && poll(&p, 1, 0) > 0;
}

int arl_proc_stat(long pid, char *state, unsigned long long *start)
{
	char path[64], text[1024];
	const char *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "re")))
		return -1;
	p = fgets(text, sizeof(text), f);
	fclose(f);
	/* Counted after the ")" that ends the command name, which may hold spaces and ")". */
	if (!p || !(p = strrchr(text, ')')) ||
	    sscanf(
	        p + 1,
	        " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
	        state, start) != 2)
		return -1;
	return 0;
}

static void read_boot_id(char out[40])
{
	char line[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	size_t n;

	out[0] = '\0';
	if (!f)
		return;
	if (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		n = strlen(line);
		/* A UUID: also safe in a file name and a Kubernetes label value. */
		if (n >= 8 && n < 40 && strspn(line, "0123456789abcdef-") == n)
			memcpy(out, line, n + 1);
	}
	fclose(f);
}

static void read_pidns(char out[24])
{
	char link[64];
	ssize_t n = readlink("/proc/self/ns/pid", link, sizeof(link) - 1);
	unsigned long long ino;

	out[0] = '\0';
	if (n > 0) {
		link[n] = '\0';
		if (sscanf(link, "pid:[%llu]", &ino) == 1)
			snprintf(out, 24, "%llu", ino);
	}
}

void arl_owner_self(struct arl_owner *out)
{
	char state;

	memset(out, 0, sizeof(*out));
	out->pid = (long)getpid();
	if (arl_proc_stat(out->pid, &state, &out->start) < 0)
		out->start = 0;
	read_boot_id(out->boot);
	read_pidns(out->pidns);
}

const char *arl_owner_gone(const struct arl_owner *o, const struct arl_owner *me)
{
	return arl_owner_gone_boot(o, me, true);
}

const char *arl_owner_gone_boot(const struct arl_owner *o, const struct arl_owner *me,
                                bool other_boot_dead)
{
	size_t a = strlen(o->boot), b = strlen(me->boot);
	unsigned long long start;
	char state;

	/* Another boot's pids mean nothing here either: judged by the boot alone. */
	if (a >= 8 && b >= 8 && strncmp(o->boot, me->boot, a < b ? a : b) != 0)
		return other_boot_dead ? "the host rebooted since" : NULL;
	if (o->pidns[0] && me->pidns[0] && strcmp(o->pidns, me->pidns) != 0)
		return NULL;
	if (o->pid <= 0 || o->pid > INT32_MAX)
		return NULL;
	/* EPERM: it exists but belongs to someone else, which is still "alive". */
	if (kill((pid_t)o->pid, 0) < 0 && errno == ESRCH)
		return "not running";
	/* Unreadable (hidepid, or gone this instant): alive, the safe side. */
	if (arl_proc_stat(o->pid, &state, &start) < 0)
		return NULL;
	/* A runner killed but not yet reaped is a zombie, which kill(pid, 0) still finds. */
	if (state == 'Z' || state == 'X')
		return "exited";
	if (o->start && start != o->start)
		return "its pid is another process now";
	return NULL;
}
