/* Small helpers shared by every module: allocation, numbers, durations, clocks. */
#ifndef ARL_UTIL_H
#define ARL_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Abort with a message on out-of-memory: a batch runner cannot do much better. */
void *arl_xmalloc(size_t n);
void *arl_xcalloc(size_t n, size_t size);
void *arl_xrealloc(void *p, size_t n);
char *arl_xstrdup(const char *s);
char *arl_xstrndup(const char *s, size_t n);
char *arl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Grows *v (of *cap elements of @size) to hold at least @need; doubling. */
void arl_grow(void **v, size_t *cap, size_t need, size_t size);
#define ARL_GROW(v, cap, need) arl_grow((void **)&(v), &(cap), (need), sizeof(*(v)))

/* Whole decimal string to int64 in [min, max]; returns -1 when not a number or out of range. */
int arl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Go/Kubernetes durations ("300ms", "1.5s", "1h30m") or a bare integer of seconds.
 * Returns -1 on a malformed or negative value.
 */
int arl_parse_duration(const char *s, int64_t *ms);
/* Formats @ms compactly ("1h30m", "30s", "250ms") into @buf. */
const char *arl_fmt_duration(int64_t ms, char *buf, size_t len);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t arl_now_ms(void);
/*
 * The clock a module with timeouts reads: arl_now_ms() unless @now is set (tests drive time
 * with it). Waits stay on the real clock, for the distance the injected clock gives.
 */
struct arl_clock {
	int64_t (*now)(void *arg);
	void *arg;
};
int64_t arl_clock_now(const struct arl_clock *c);
/* Current UTC time as RFC 3339 with milliseconds ("2026-01-02T03:04:05.678Z"). */
void arl_rfc3339_now(char buf[32]);
void arl_rfc3339(int64_t unix_ms, char buf[32]);
int64_t arl_wall_ms(void);

/* True when @s is a DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 chars. */
bool arl_is_dns_label(const char *s);

/*
 * FNV-1a of a string: stable across machines and versions, which is what shard splits, lock
 * file names and hash tables need (not a cryptographic hash).
 */
uint64_t arl_fnv1a(const char *s);
uint64_t arl_fnv1a_n(const char *p, size_t n);

/*
 * A hash index over strings its owner keeps (open addressing, at most half full, so lookups
 * stay O(1) on average): a slot holds 1 + the number of an entry, 0 when empty. @key_of names
 * entry i of @owner. Zero-initialised it is empty; free(slot) releases it.
 */
struct arl_strindex {
	size_t *slot;
	size_t nslot; /* a power of two, 0 while empty */
};
typedef const char *(*arl_strindex_key_fn)(const void *owner, size_t i);

/* The slot of @key: its entry's, or the empty one where it would go. @x must not be empty. */
size_t *arl_strindex_slot(const struct arl_strindex *x, const char *key, arl_strindex_key_fn key_of,
                          const void *owner);
/*
 * Makes room for @want entries, re-indexing entries 0..@n-1 in order when it grows (so of
 * equal keys the later one holds the slot).
 */
void arl_strindex_reserve(struct arl_strindex *x, size_t want, size_t n, arl_strindex_key_fn key_of,
                          const void *owner);

/*
 * Condition variables that time out on CLOCK_MONOTONIC, the clock of arl_now_ms() deadlines
 * (a wall-clock step must not stretch or cut a wait). arl_cond_wait_until() waits, @mu held,
 * until signalled or the arl_now_ms() time @until_ms; spurious wake-ups are the caller's.
 */
void arl_cond_init_monotonic(pthread_cond_t *cv);
void arl_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms);

/* Writes all @n bytes of @p to @fd, again after EINTR; false with errno set on an error. */
bool arl_write_all(int fd, const void *p, size_t n);

/* True when @fd (-1: never) is readable now, e.g. a cancel pipe that was written. */
bool arl_fd_readable(int fd);

/*
 * State (field 3, 'Z' for a zombie) and start time (field 22, clock ticks since boot) of
 * @pid from /proc/PID/stat; -1 when unreadable (gone, or hidden by hidepid).
 */
int arl_proc_stat(long pid, char *state, unsigned long long *start);

/*
 * A runner's identity, as recorded for its runs and sandboxes: a pid names one process only
 * within one boot and one PID namespace, and only while it is the process that started at
 * @start. 0 or "" is unknown (older records, an unreadable /proc).
 */
struct arl_owner {
	long pid;
	unsigned long long start; /* /proc/PID/stat field 22, clock ticks since boot */
	char boot[40];            /* /proc/sys/kernel/random/boot_id, or a prefix of it */
	char pidns[24];           /* inode of /proc/self/ns/pid, decimal */
};

/* This process. Never fails: what cannot be read stays unknown. */
void arl_owner_self(struct arl_owner *out);

/*
 * Judges recorded owner @o from here (@me, from arl_owner_self()). Returns why it is gone
 * ("the host rebooted since", "not running", "exited", "its pid is another process now"), or
 * NULL when it may be alive: a PID namespace not ours is never judged (its pids mean nothing
 * here), nor is a pid whose /proc entry cannot be read. Unknown fields are not compared, so a
 * record with a pid alone is judged by that pid. Boot ids are compared on the shorter length
 * (at least 8 characters), for names that carry a short form.
 */
const char *arl_owner_gone(const struct arl_owner *o, const struct arl_owner *me);

/*
 * arl_owner_gone(), except that an owner of another boot is gone only if @other_boot_dead;
 * otherwise (another machine of the same name, say) it is NULL, never judged by its pid.
 */
const char *arl_owner_gone_boot(const struct arl_owner *o, const struct arl_owner *me,
                                bool other_boot_dead);

/* Levenshtein distance, capped; for did-you-mean suggestions. */
unsigned arl_edit_distance(const char *a, const char *b);

/*
 * Display columns of UTF-8 text, one per code point: East Asian wide characters count one,
 * which misaligns them slightly, but wcwidth() would need setlocale() and a locale the host may
 * lack. arl_utf8_prefix() is how many bytes of @s fit in @w columns, never splitting a code point.
 */
size_t arl_utf8_cols(const char *s);
size_t arl_utf8_prefix(const char *s, size_t w);

/* True when the @len bytes at @s are valid UTF-8 (no overlongs, no surrogates). */
bool arl_utf8_valid(const char *s, size_t len);

#endif
