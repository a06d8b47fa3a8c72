/*
 * Watches over the Kubernetes client: arl_k8s_watch is one long-running watch stream of one
 * kind in one namespace, filtered by a label selector, shared by all workers. It reconnects
 * when the stream ends or is cut (resuming from the last resourceVersion), asks for
 * bookmarks, and re-lists when the server answers 410 Gone. Workers register the names they
 * care about and block on a condition variable until the object reaches the state they want:
 * waiting costs no request.
 *
 * Thread-safety: everything here may be called from any thread once arl_k8s_watch_start()
 * returned, except arl_k8s_watch_stop(), which must come after all other use.
 */
#ifndef ARL_K8S_WATCH_H
#define ARL_K8S_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "k8s/k8s_client.h"

struct arl_k8s_watch;

/*
 * Lists @plural in @ns with @selector (so that a missing CRD or a forbidden watch fails
 * here), then streams changes from a thread of its own. When @cancel_fd (may be -1) turns
 * readable, every waiter returns ARL_K8S_WAIT_CANCELLED. *out only on success.
 */
int arl_k8s_watch_start(struct arl_k8s *c, const char *api, const char *plural, const char *ns,
                        const char *selector, int cancel_fd, struct arl_k8s_watch **out,
                        struct arl_err *err);
/* Stops the stream, joins its thread and frees everything. NULL is a no-op. */
void arl_k8s_watch_stop(struct arl_k8s_watch *w);

/* Starts keeping the latest state of object @name; call before creating it. */
void arl_k8s_watch_track(struct arl_k8s_watch *w, const char *name);
/*
 * Stops keeping @name once the server reports it gone (at once when it already is): call
 * after deleting it. arl_k8s_watch_drain() waits for these.
 */
void arl_k8s_watch_forget(struct arl_k8s_watch *w, const char *name);
/* Stops keeping @name at once (an object that stays, or was never created). */
void arl_k8s_watch_untrack(struct arl_k8s_watch *w, const char *name);
/*
 * Waits until every forgotten object was reported deleted, @deadline_ms passes, or the
 * stream has been failing to reconnect for a few seconds (an unreachable server would
 * report nothing); returns how many remain.
 */
size_t arl_k8s_watch_drain(struct arl_k8s_watch *w, int64_t deadline_ms);

/*
 * Called with the watch's lock held, on the latest object (NULL before the first event) and
 * whether it was deleted; returns non-zero when the wait is over. It must not block; it may
 * copy what it needs into @arg.
 */
typedef int (*arl_k8s_watch_fn)(const cJSON *obj, bool deleted, void *arg);

enum arl_k8s_wait {
	ARL_K8S_WAIT_DONE,
	ARL_K8S_WAIT_TIMEOUT,
	ARL_K8S_WAIT_CANCELLED,
	ARL_K8S_WAIT_ERROR, /* the watch failed for good (err says why) */
};

/*
 * Blocks until @fn says done for @name (tracked), @deadline_ms passes (arl_now_ms clock;
 * 0: none), the cancel fd fires, or the watch fails.
 */
enum arl_k8s_wait arl_k8s_watch_wait(struct arl_k8s_watch *w, const char *name, arl_k8s_watch_fn fn,
                                     void *arg, int64_t deadline_ms, struct arl_err *err);

#endif
