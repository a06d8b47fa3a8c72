/*
 * The Sandboxes and Tasks that runners left behind on a cluster when they died (kill -9,
 * a crash, a reboot): who owns an object, whether that owner is dead, and the sweep that
 * lists and deletes the orphans, for `arl-batch gc` and for `run` at its start.
 *
 * Ownership. The kubernetes backend stamps every object it creates with its owner's
 * identity (arl_k8s_gc_add_labels): the host, the pid, the pid's start time (clock ticks
 * since boot, /proc/PID/stat field 22) and the kernel's boot id. An object of this host is
 * an orphan when its boot id is not ours (the host rebooted since), or its pid is not
 * running, is a zombie, or started at another time than the label says (the pid was
 * reused). Objects of other hosts are never judged, since their processes cannot be seen
 * from here, unless the caller names such a host as gone for good: then all its objects are
 * orphans. An object created before owner-start/owner-boot existed is judged by its pid alone.
 *
 * Never touched: objects without the run, owner-host and owner-pid labels and
 * managed-by=arl-batch (the list's label selector requires them and each is checked again),
 * and Sandboxes kept by a keepAlive job: labelled keep-alive=true, and the only Sandboxes the
 * backend creates without spec.idleTimeoutSeconds (every other one gets the job's timeout
 * plus a margin as a safety net), which also marks those made before the label existed.
 *
 * Thread-safety: none needed; a sweep runs on the calling thread only.
 */
#ifndef ARL_K8S_GC_H
#define ARL_K8S_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "k8s/k8s_client.h"

#define ARL_K8S_GC_RUN_LABEL     "arl.infra.io/run"
#define ARL_K8S_GC_MANAGED_LABEL "app.kubernetes.io/managed-by" /* value "arl-batch" */
#define ARL_K8S_GC_HOST_LABEL    "arl.infra.io/owner-host"
#define ARL_K8S_GC_PID_LABEL     "arl.infra.io/owner-pid"
#define ARL_K8S_GC_START_LABEL   "arl.infra.io/owner-start"
#define ARL_K8S_GC_BOOT_LABEL    "arl.infra.io/owner-boot"
#define ARL_K8S_GC_PIDNS_LABEL   "arl.infra.io/owner-pidns"
#define ARL_K8S_GC_KEEP_LABEL    "arl.infra.io/keep-alive" /* "true": a keepAlive job's */

/* A runner's identity, as label values; an empty string is unknown (and not labelled). */
struct arl_k8s_owner {
	char host[64];  /* gethostname(), made a label value */
	char pid[16];   /* decimal */
	char start[24]; /* /proc/PID/stat field 22, decimal clock ticks since boot */
	char boot[40];  /* /proc/sys/kernel/random/boot_id */
	char pidns[24]; /* inode of /proc/self/ns/pid: pids mean something only inside it */
};

/* This process's identity. Never fails: what cannot be read stays empty. */
void arl_k8s_gc_self(struct arl_k8s_owner *out);

/* Adds @o's owner labels (those that are known) to a metadata.labels object. */
void arl_k8s_gc_add_labels(cJSON *labels, const struct arl_k8s_owner *o);

/*
 * Judges an object's metadata.labels (may be NULL) against this runner, @me. @gone_host,
 * when not NULL and not @me's host, is a host given up for dead: every object of it is an
 * orphan. An object of this host with another boot id is dead only if @other_boot_dead (a
 * reboot, or another machine of the same name). Returns why the owner is dead ("not
 * running", "pid reused", ...), or NULL when the owner lives, cannot be judged from here
 * (another host) or the labels are incomplete.
 */
const char *arl_k8s_gc_judge(const cJSON *labels, const struct arl_k8s_owner *me,
                             const char *gone_host, bool other_boot_dead);

struct arl_k8s_gc_opts {
	/* Where to look: these namespaces; none: every namespace, or @fallback_ns alone when
	 * listing at the cluster scope is forbidden (and @fallback_ns is set). */
	const char *const *namespaces;
	size_t nnamespaces;
	const char *fallback_ns;
	const char *host; /* NULL: this host; else a host that is gone (a label value or not) */
	bool remove;      /* delete the orphans (Tasks first), not only list them */
	/* The unasked sweep at run start: a boot id not ours may be another machine of the
	 * same name rather than a reboot, so such objects are left to `gc`. */
	bool same_boot_only;
	bool others;        /* count the objects of other hosts, into the result's others* */
	FILE *out;          /* one line per orphan (and per failed deletion); NULL: none */
	const char *prefix; /* at the start of each line on @out; NULL: "" */
	int cancel_fd;      /* readable: stop at once; -1: none */
};
#define ARL_K8S_GC_OPTS_INIT                                                                       \
	{                                                                                          \
		.cancel_fd = -1                                                                    \
	}

struct arl_k8s_gc_result {
	int orphans;            /* found; with remove, deleted or attempted (see failed) */
	int failed;             /* deletions that failed */
	int terminating;        /* orphans already being deleted (listed, not deleted again) */
	int others;             /* objects of other hosts (only with opts.others) */
	char other_hosts[160];  /* the first of those hosts, ", "-separated ("..." when more) */
	bool fell_back;         /* cluster scope forbidden: only opts.fallback_ns was looked at */
	char fallback_why[512]; /* the 403 that made it fall back */
};

/*
 * Lists the Sandboxes and Tasks of runners (of this host, or of opts->host) in the
 * namespaces opts says, judges each with arl_k8s_gc_judge(), prints the orphans on
 * opts->out and, with opts->remove, deletes them: Tasks first, then Sandboxes, each only if
 * it is still the object that was judged (uid precondition); one already gone is fine.
 * Returns 0 with @res filled, or -1 when listing failed or a deletion did (@res is filled
 * as far as it got, and @err says what failed first).
 */
int arl_k8s_gc_sweep(struct arl_k8s *c, const struct arl_k8s_gc_opts *o,
                     struct arl_k8s_gc_result *res, struct arl_err *err);

#endif
