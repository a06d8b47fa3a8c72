/*
 * Adaptive concurrency for object creation on the API server (AIMD, as in TCP congestion
 * control): a window of creates allowed in flight at once, halved when the server keeps
 * refusing (HTTP 429, 5xx, a reset, refused or timed-out connection) and grown back by one
 * for every window's worth of successes. A create holds a slot from its first try to its final answer,
 * retries and their backoff included, so while the server is away one or two creates probe
 * it with their backoff and the others wait here instead of retrying in parallel.
 *
 * Use, per request: acquire a slot (waits while the window is full), mark each try with
 * arl_http_throttle_sent(), report each refused try with arl_http_throttle_refused() (which
 * says when to give the slot up before retrying), and release the slot with the outcome.
 *
 * Thread-safety: every function may be called from any thread; a slot belongs to one thread.
 */
#ifndef ARL_HTTP_THROTTLE_H
#define ARL_HTTP_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct arl_http_throttle;

/* One request's hold on the window; a value the caller keeps on its stack. */
struct arl_http_throttle_slot {
	bool held;
	uint64_t epoch; /* the window generation its current try was sent in */
};
#define ARL_HTTP_THROTTLE_SLOT_INIT                                                                \
	{                                                                                          \
		false, 0                                                                           \
	}

/* The changes worth a log line: few per outage, whatever the number of refusals. */
enum arl_http_throttle_change {
	ARL_HTTP_THROTTLE_SHRANK,    /* the first decrease since the window was last whole */
	ARL_HTTP_THROTTLE_FLOOR,     /* the episode's first decrease down to 1 */
	ARL_HTTP_THROTTLE_RECOVERED, /* grown back to where the first decrease started */
};

/*
 * Called without the throttle's lock held, from the thread whose report caused the change;
 * it must not call back into the throttle. SHRANK and FLOOR: the window went from @from to
 * @to; RECOVERED: it grew from its episode's smallest, @from, back to @to.
 */
typedef void (*arl_http_throttle_fn)(void *arg, enum arl_http_throttle_change what, int from,
                                     int to);

/*
 * A window that starts at (and never grows past) @max, at least 1. @fn (may be NULL) hears of
 * the changes above. Never fails (allocation failure aborts, like arl_xmalloc).
 */
struct arl_http_throttle *arl_http_throttle_new(int max, arl_http_throttle_fn fn, void *arg);
/* NULL is a no-op. No slot may be held or waited for. */
void arl_http_throttle_free(struct arl_http_throttle *t);
/* The clock of acquire's deadlines (default arl_now_ms); set before any other use. */
void arl_http_throttle_set_clock(struct arl_http_throttle *t, struct arl_clock clock);

enum arl_http_throttle_wait {
	ARL_HTTP_THROTTLE_OK,
	ARL_HTTP_THROTTLE_TIMEOUT,   /* @deadline_ms passed first */
	ARL_HTTP_THROTTLE_CANCELLED, /* @cancel_fd turned readable first */
};

/*
 * Takes a slot for @s, waiting (first come, first served) while the window is full, until
 * @deadline_ms (the throttle's clock; 0: none) or until @cancel_fd (-1: none) is readable,
 * which is checked at least every 100 ms. @s must not be held; it is held only on OK.
 * A NULL @t is a window without limit.
 */
enum arl_http_throttle_wait arl_http_throttle_acquire(struct arl_http_throttle *t,
                                                      struct arl_http_throttle_slot *s,
                                                      int64_t deadline_ms, int cancel_fd);

/* A try of @s's request goes out now (call before every try, the first one included). */
void arl_http_throttle_sent(struct arl_http_throttle *t, struct arl_http_throttle_slot *s);

/*
 * The last try of @s was refused. Halves the window when recent tries were mostly refused
 * (not for a stray error) unless it was already halved since that try went out. Returns
 * true when more slots are held than the window now allows: the caller should release @s
 * before its backoff and acquire again before the next try.
 */
bool arl_http_throttle_refused(struct arl_http_throttle *t, struct arl_http_throttle_slot *s);

/*
 * Gives back @s (a no-op unless held). @succeeded: the request got its answer (grows the
 * window); false: it gave up or failed for another reason (no change).
 */
void arl_http_throttle_release(struct arl_http_throttle *t, struct arl_http_throttle_slot *s,
                               bool succeeded);

struct arl_http_throttle_stats {
	int window, in_flight, waiting, max;
	unsigned decreases, increases;
};
void arl_http_throttle_get_stats(struct arl_http_throttle *t, struct arl_http_throttle_stats *out);

#endif
