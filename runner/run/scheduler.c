/*
 * DESIGN: the main thread owns all scheduling state; workers only run attempts. An attempt is
 * a `struct work` that moves main -> todo list -> worker -> done list -> main, under one mutex
 * (lock order: pool.mu only, never nested). Workers announce finished work by writing a byte
 * to a notify pipe, so the main thread sleeps in a single poll() on that pipe and the signal
 * self-pipe, with a timeout for the next backoff expiry or the run's deadline.
 *
 * Ready jobs wait in one FIFO per pool slot, which makes the per-pool limit free of
 * head-of-line blocking: a full pool never holds up jobs of another pool. A job in backoff
 * sits in a small "delayed" list without a worker or a sandbox.
 *
 * Cancellation is a pipe the backends poll: writing it once kills every step in flight (their
 * attempts come back CANCELLED); nothing else is interrupted mid-write.
 */
#include "run/scheduler.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

struct work {
	struct arl_sched_job *j;
	int number;
	struct arl_attempt_result res;
	struct arl_metric *metrics;
	size_t nmetrics;
	struct work *next;
};

struct workers {
	pthread_mutex_t mu; /* lock order: mu only */
	pthread_cond_t cv;
	struct work *todo, *todo_tail;
	struct work *done;
	bool stopping;
	int notify[2];
	pthread_t *threads;
	int nthreads;
};

struct queue {
	struct arl_sched_job **v;
	size_t head, n, cap;
};

struct state {
	const struct arl_sched_opts *o;
	struct workers w;
	struct queue *ready; /* per pool slot */
	int *pool_running, *file_running;
	int running;
	struct arl_sched_job **delayed;
	size_t ndelayed, capdelayed;
	size_t remaining;
	int failures;
	struct arl_sched_outcome *out;
	bool stopping, cancelled;
};

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	sigset_t all;

	/* Signals belong to the main thread's self-pipe. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		struct work *item;

		pthread_mutex_lock(&w->mu);
		while (!w->stopping && !w->todo)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->todo) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		item = w->todo;
		w->todo = item->next;
		if (!w->todo)
			w->todo_tail = NULL;
		pthread_mutex_unlock(&w->mu);

		arl_attempt_run(&item->j->env, item->j->job, item->number, &item->res,
		                &item->metrics, &item->nmetrics);

		pthread_mutex_lock(&w->mu);
		item->next = w->done;
		w->done = item;
		pthread_mutex_unlock(&w->mu);
		/* A full pipe already holds a wake-up: EAGAIN is fine. */
		(void)!write(w->notify[1], "x", 1);
	}
	return NULL;
}

static int workers_start(struct workers *w, int n, struct arl_err *err)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pipe2(w->notify, O_CLOEXEC | O_NONBLOCK) < 0)
		return arl_error_errno(err, errno, "cannot create the scheduler's pipe");
	w->threads = arl_xcalloc((size_t)n, sizeof(*w->threads));
	for (int i = 0; i < n; i++) {
		int rc = pthread_create(&w->threads[i], NULL, worker_main, w);

		if (rc) {
			arl_error_errno(err, rc, "cannot start worker thread %d", i + 1);
			break;
		}
		w->nthreads++;
	}
	return w->nthreads == n ? 0 : -1;
}

static void workers_stop(struct workers *w)
{
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	free(w->threads);
	if (w->notify[0] > 0) {
		close(w->notify[0]);
		close(w->notify[1]);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

static void queue_push(struct queue *q, struct arl_sched_job *j)
{
	if (q->head + q->n == q->cap) {
		if (q->head) {
			memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
			q->head = 0;
		} else {
			q->cap = q->cap ? q->cap * 2 : 16;
			q->v = arl_xrealloc(q->v, q->cap * sizeof(*q->v));
		}
	}
	q->v[q->head + q->n++] = j;
}

/*
 * A retry goes first: its job has started already, and behind a 100,000-job backlog its
 * duration would otherwise measure the queue, not the work.
 */
static void queue_push_front(struct queue *q, struct arl_sched_job *j)
{
	if (q->head == 0) {
		queue_push(q, j); /* makes room at the end; rotate it to the front */
		memmove(q->v + 1, q->v, (q->n - 1) * sizeof(*q->v));
		q->v[0] = j;
		return;
	}
	q->v[--q->head] = j;
	q->n++;
}

static struct arl_sched_job *queue_pop(struct queue *q)
{
	struct arl_sched_job *j;

	if (!q->n)
		return NULL;
	j = q->v[q->head++];
	q->n--;
	return j;
}

static void stop(struct state *s, enum arl_sched_stop why, bool cancel_in_flight);

/* Adds a job's metrics to the budgets; the first budget reached stops the run (true). */
static bool spend(struct state *s, const struct arl_job_result *r)
{
	bool hit = false;

	for (size_t b = 0; b < s->o->nbudgets; b++) {
		struct arl_sched_budget *bu = &s->o->budgets[b];

		for (size_t i = 0; i < r->nmetrics; i++)
			if (r->metrics[i].kind == ARL_METRIC_NUMBER &&
			    strcmp(r->metrics[i].name, bu->metric) == 0 &&
			    isfinite(r->metrics[i].number) && r->metrics[i].number > 0)
				/* Spending only: a negative value (step output) cannot buy more. */
				bu->spent += r->metrics[i].number;
		if (bu->spent >= bu->max && !s->stopping) {
			s->out->budget = b;
			snprintf(s->out->budget_msg, sizeof(s->out->budget_msg),
			         "budget %s %g reached (%g)", bu->metric, bu->max, bu->spent);
			stop(s, ARL_STOP_BUDGET, false);
			hit = true;
		}
	}
	return hit;
}

/* Fills the job's result from its attempts and reports it. */
static void finish(struct state *s, struct arl_sched_job *j, enum arl_state state,
                   enum arl_class cls)
{
	struct arl_job_result *r = &j->result;
	const struct arl_attempt_result *last =
	    r->nattempts ? &r->attempts[r->nattempts - 1] : NULL;
	bool hit;

	r->state = state;
	r->cls = cls;
	if (last) {
		r->has_exit = last->has_exit;
		r->exit_code = last->exit_code;
		if (last->error && !r->error)
			r->error = arl_xstrdup(last->error);
		r->started_ms = r->attempts[0].started_ms;
		r->finished_ms = last->finished_ms;
	} else {
		r->finished_ms = arl_wall_ms();
		if (!r->error && cls == ARL_CLASS_CANCELLED)
			r->error = s->out->stop == ARL_STOP_BUDGET
			               ? arl_xasprintf("not started: %s", s->out->budget_msg)
			               : arl_xstrdup("not started: the run was stopped");
	}
	s->remaining--;
	hit = last && spend(s, r);
	s->o->on_done(s->o->ctx, j);
	if (hit && s->o->on_budget)
		s->o->on_budget(s->o->ctx, &s->o->budgets[s->out->budget]);
}

static void stop(struct state *s, enum arl_sched_stop why, bool cancel_in_flight)
{
	if (!s->stopping) {
		s->stopping = true;
		s->out->stop = why;
	}
	if (cancel_in_flight && !s->cancelled) {
		s->cancelled = true;
		(void)!write(s->o->cancel_wfd, "x", 1);
	}
}

static void dispatch(struct state *s, struct arl_sched_job *j)
{
	struct work *item = arl_xcalloc(1, sizeof(*item));

	item->j = j;
	item->number = ++j->attempts;
	if (j->attempts == 1 && s->o->on_start)
		s->o->on_start(s->o->ctx, j);
	if (s->o->on_attempt_start)
		s->o->on_attempt_start(s->o->ctx, j, item->number);
	s->running++;
	s->pool_running[j->pool_slot]++;
	s->file_running[j->file_slot]++;
	pthread_mutex_lock(&s->w.mu);
	if (s->w.todo_tail)
		s->w.todo_tail->next = item;
	else
		s->w.todo = item;
	s->w.todo_tail = item;
	pthread_cond_signal(&s->w.cv);
	pthread_mutex_unlock(&s->w.mu);
}

static bool can_start(const struct state *s, size_t pool_slot, size_t file_slot)
{
	const struct arl_sched_opts *o = s->o;

	return s->running < o->concurrency &&
	       s->pool_running[pool_slot] < o->pool_limits[pool_slot] &&
	       (!o->file_limits[file_slot] ||
	        s->file_running[file_slot] < o->file_limits[file_slot]);
}

static bool aborted(const struct state *s)
{
	return s->o->abort && *s->o->abort;
}

static void dispatch_ready(struct state *s)
{
	bool progress = true;

	/* Round-robin over the pools so that one pool's backlog cannot starve another. */
	while (progress && s->running < s->o->concurrency) {
		progress = false;
		for (size_t p = 0; p < s->o->npool_slots; p++) {
			struct queue *q = &s->ready[p];

			/* on_start may abort: not one more job after that */
			if (aborted(s))
				return;
			if (!q->n || !can_start(s, p, q->v[q->head]->file_slot))
				continue;
			dispatch(s, queue_pop(q));
			progress = true;
		}
	}
}

static void cancel_waiting(struct state *s)
{
	for (size_t p = 0; p < s->o->npool_slots; p++) {
		struct arl_sched_job *j;

		while ((j = queue_pop(&s->ready[p])))
			finish(s, j, ARL_STATE_CANCELLED, ARL_CLASS_CANCELLED);
	}
	for (size_t i = 0; i < s->ndelayed; i++) {
		struct arl_sched_job *j = s->delayed[i];

		/* A job in backoff keeps its last failure: that is the result that stands. */
		finish(s, j, ARL_STATE_FAILED, j->result.attempts[j->result.nattempts - 1].cls);
	}
	s->ndelayed = 0;
}

static void take_metrics(struct arl_sched_job *j, struct work *w)
{
	struct arl_job_result *r = &j->result;

	for (size_t i = 0; i < r->nmetrics; i++) {
		free(r->metrics[i].name);
		free(r->metrics[i].text);
	}
	free(r->metrics);
	r->metrics = w->metrics;
	r->nmetrics = w->nmetrics;
}

static void handle_done(struct state *s, struct work *w)
{
	struct arl_sched_job *j = w->j;
	struct arl_job_result *r = &j->result;
	const struct arl_attempt_result *a;
	enum arl_class cls;
	int64_t now = arl_clock_now(&s->o->clock);

	s->running--;
	s->pool_running[j->pool_slot]--;
	s->file_running[j->file_slot]--;
	r->attempts = arl_xrealloc(r->attempts, (r->nattempts + 1) * sizeof(*r->attempts));
	r->attempts[r->nattempts++] = w->res;
	take_metrics(j, w);
	free(w);
	a = &r->attempts[r->nattempts - 1];
	if (s->o->on_attempt_done)
		s->o->on_attempt_done(s->o->ctx, j, a);
	if (a->state == ARL_STATE_SUCCEEDED) {
		finish(s, j, ARL_STATE_SUCCEEDED, ARL_CLASS_NONE);
		return;
	}
	if (a->state == ARL_STATE_CANCELLED || a->cls == ARL_CLASS_CANCELLED) {
		if (!r->error)
			r->error = arl_xstrdup(s->out->stop == ARL_STOP_DEADLINE
			                           ? "cancelled: the run's --deadline passed"
			                           : "cancelled: the run was interrupted");
		finish(s, j, ARL_STATE_CANCELLED, ARL_CLASS_CANCELLED);
		return;
	}
	if (!s->stopping && (j->job->retry_on & ARL_RETRY_BIT(a->cls)) &&
	    j->attempts <= j->job->retries) {
		if (!j->next_backoff)
			j->next_backoff = j->job->backoff_ms;
		j->not_before = now + j->next_backoff;
		j->next_backoff = j->next_backoff * 2 > ARL_MAX_BACKOFF_MS ? ARL_MAX_BACKOFF_MS
		                                                           : j->next_backoff * 2;
		ARL_GROW(s->delayed, s->capdelayed, s->ndelayed + 1);
		s->delayed[s->ndelayed++] = j;
		if (s->o->on_retry)
			s->o->on_retry(s->o->ctx, j, j->not_before - now);
		return;
	}
	cls = a->cls; /* on_done may release the result, @a with it */
	finish(s, j, ARL_STATE_FAILED, cls);
	/* Infrastructure trouble is not the job's failure: it does not count toward halting. */
	if (cls != ARL_CLASS_INFRA && ++s->failures >= s->o->max_failures && s->o->max_failures > 0)
		stop(s, ARL_STOP_FAILURES, false);
}

/* Moves jobs whose backoff expired back to their pool's queue; returns ms to the next one. */
static int64_t wake_delayed(struct state *s, int64_t now)
{
	int64_t next = -1;
	size_t k = 0;

	for (size_t i = 0; i < s->ndelayed; i++) {
		struct arl_sched_job *j = s->delayed[i];

		if (j->not_before <= now) {
			queue_push_front(&s->ready[j->pool_slot], j);
			continue;
		}
		if (next < 0 || j->not_before - now < next)
			next = j->not_before - now;
		s->delayed[k++] = j;
	}
	s->ndelayed = k;
	return next;
}

static void read_signals(struct state *s)
{
	unsigned char buf[16];
	ssize_t n;

	/* One read per wake-up: the fd may be blocking, and poll() said it is readable. */
	if ((n = read(s->o->signal_fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == SIGHUP) {
				stop(s, ARL_STOP_DRAIN, false);
				continue;
			}
			if (s->out->signal) {
				s->out->abandoned = true; /* the second one: stop waiting */
				continue;
			}
			s->out->signal = buf[i];
			stop(s, ARL_STOP_SIGNAL, true);
			s->out->stop = ARL_STOP_SIGNAL;
		}
	}
}

static void collect_done(struct state *s)
{
	char buf[256];
	struct work *list, *next, *rev = NULL;

	while (read(s->w.notify[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&s->w.mu);
	list = s->w.done;
	s->w.done = NULL;
	pthread_mutex_unlock(&s->w.mu);
	/* The list is newest first; report in completion order. */
	for (; list; list = next) {
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev; rev = next) {
		next = rev->next;
		handle_done(s, rev);
	}
}

int arl_sched_run(struct arl_sched_job *jobs, size_t n, const struct arl_sched_opts *o,
                  struct arl_sched_outcome *out, struct arl_err *err)
{
	struct state s = {.o = o, .out = out, .remaining = n};
	int nworkers = o->concurrency < (int)n ? o->concurrency : (int)n;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return 0;
	if (workers_start(&s.w, nworkers, err) < 0)
		goto out;
	s.ready = arl_xcalloc(o->npool_slots, sizeof(*s.ready));
	s.pool_running = arl_xcalloc(o->npool_slots, sizeof(int));
	s.file_running = arl_xcalloc(o->nfile_slots, sizeof(int));
	for (size_t i = 0; i < n; i++)
		queue_push(&s.ready[jobs[i].pool_slot], &jobs[i]);
	while (s.remaining > 0) {
		struct pollfd pfd[2] = {{.fd = s.w.notify[0], .events = POLLIN},
		                        {.fd = o->signal_fd, .events = POLLIN}};
		int64_t now = arl_clock_now(&o->clock), timeout, next;

		if (o->deadline_ms && now >= o->deadline_ms)
			stop(&s, ARL_STOP_DEADLINE, true);
		if (aborted(&s))
			stop(&s, ARL_STOP_ABORT, true);
		next = wake_delayed(&s, now);
		if (s.stopping)
			cancel_waiting(&s);
		else
			dispatch_ready(&s);
		if (s.remaining == 0)
			break;
		timeout = next;
		if (o->deadline_ms && !s.stopping &&
		    (timeout < 0 || o->deadline_ms - now < timeout))
			timeout = o->deadline_ms - now;
		/* A wait past poll()'s int of ms wakes early and waits again. */
		if (timeout >= INT_MAX)
			timeout = INT_MAX - 1;
		if (poll(pfd, o->signal_fd >= 0 ? 2 : 1, timeout < 0 ? -1 : (int)(timeout + 1)) <
		        0 &&
		    errno != EINTR) {
			arl_error_errno(err, errno, "scheduler poll failed");
			break;
		}
		if (o->signal_fd >= 0 && (pfd[1].revents & POLLIN))
			read_signals(&s);
		collect_done(&s);
		if (out->abandoned)
			return 0; /* the caller exits; joining would wait for the steps */
	}
	ret = 0;
out:
	workers_stop(&s.w);
	for (size_t p = 0; s.ready && p < o->npool_slots; p++)
		free(s.ready[p].v);
	free(s.ready);
	free(s.pool_running);
	free(s.file_running);
	free(s.delayed);
	return ret;
}
