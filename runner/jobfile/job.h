/*
 * The job model: a job file's pools and its jobs after defaults, foreach expansion and
 * templates. Built by schema.c (each job by expand.c); read-only afterwards, so threads may
 * share it.
 */
#ifndef ARL_JOB_H
#define ARL_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

#define ARL_DEFAULT_TIMEOUT_MS 30000
/* Getting a sandbox (copying a workspace, waiting for a pod) is bounded apart from timeout. */
#define ARL_DEFAULT_PREPARE_TIMEOUT_MS 600000
#define ARL_DEFAULT_BACKOFF_MS         1000
#define ARL_MAX_BACKOFF_MS             300000
#define ARL_MAX_RETRIES                10

struct arl_kv {
	char *key;
	char *val;
};

struct arl_strmap {
	struct arl_kv *v;
	size_t n;
	size_t cap;                /* of v, when arl_strmap_set() grows it */
	struct arl_strindex index; /* empty while the map is small */
};

struct arl_node;
struct arl_pool_kind;

/* Another kind's keys in a pool's mapping. */
struct arl_pool_other {
	const struct arl_pool_kind *kind;
	void *config;
};

/* What every backend's pool has; the rest of its mapping is the backend's (pool_kind.h). */
struct arl_pool {
	char *name;
	struct arl_loc loc;
	const struct arl_pool_kind *kind; /* its backend's: kind->name is its 'backend:' */
	void *config;                     /* the backend's keys, parsed by kind->keys */
	/*
	 * The other kinds whose keys the mapping also has, each parsed by its own table: they
	 * have no effect, but a job's spec hash reads them (pool_kind.h). Owned.
	 */
	struct arl_pool_other *others;
	size_t nothers;
	int replicas;
	const struct arl_node *node; /* its mapping in the file's document */
};

enum arl_step_type { ARL_STEP_COMMAND, ARL_STEP_FILEPATCH };

struct arl_step {
	char *name;
	enum arl_step_type type;
	char **argv; /* Command: NULL-terminated */
	size_t argc;
	char *work_dir;        /* Command: NULL means /workspace */
	struct arl_strmap env; /* Command: job env merged under the step's */
	int64_t timeout_ms;    /* 0: only the attempt's limit */
	/*
	 * Command: killed as a timeout once it printed nothing (stdout or stderr) for this long;
	 * 0: never. The step's stallTimeout, else its job's. @stall_text as written ("10m").
	 */
	int64_t stall_ms;
	char *stall_text;
	bool metrics_json;
	char *path; /* FilePatch */
	char *content;
	size_t content_len;
};

struct arl_steps {
	struct arl_step *v;
	size_t n;
};

/* Bits of enum arl_class (result.h) that are retried. */
#define ARL_RETRY_BIT(cls) (1u << (cls))

/*
 * `artifacts:` files kept from every attempt (glob patterns; a path matched by several is kept
 * once). Defaults and bounds: one file at most ARL_ARTIFACT_MAX_SIZE unless its maxSize says
 * otherwise, an attempt's at most ARL_ARTIFACTS_MAX_TOTAL bytes and ARL_ARTIFACTS_MAX_FILES files.
 */
#define ARL_ARTIFACT_MAX_SIZE    (10LL << 20)
#define ARL_ARTIFACT_MAX_MAXSIZE (1LL << 30) /* the largest maxSize accepted */
#define ARL_ARTIFACTS_MAX_TOTAL  (1LL << 30)
#define ARL_ARTIFACTS_MAX_FILES  1000
#define ARL_ARTIFACTS_MAX_SPECS  100

struct arl_artifact_spec {
	char *path;       /* absolute; may hold *, ? and [...] in any component */
	int64_t max_size; /* bytes */
};

struct arl_doc;
struct arl_dataset;

struct arl_job {
	char *name;
	char *key;                  /* FILE_STEM/JOB_NAME */
	size_t pool;                /* index into the file's pools */
	int64_t timeout_ms;         /* the steps of an attempt, from when its sandbox is ready */
	int64_t prepare_timeout_ms; /* getting the sandbox; not in the spec hash */
	int64_t backoff_ms;
	int retries;
	unsigned retry_on; /* ARL_RETRY_BIT(ARL_CLASS_x) */
	struct arl_strmap labels;
	struct arl_steps steps;
	struct arl_steps on_success, on_failure, on_complete;
	/* Not in the spec hash: which files are kept does not change the result. */
	struct arl_artifact_spec *artifacts;
	size_t nartifacts;
	/*
	 * The foreach item as compact JSON, or NULL. NULL too for a job made from a dataset
	 * record (.jsonl, .json), read from the file again when needed: use arl_job_item().
	 */
	char *item;
	/*
	 * A foreach job is kept light: name, key, limits, labels, its item (or where its record
	 * is) and spec hash, but no steps. arl_job_materialize() (expand.h) expands it again from
	 * @node when it is about to run, so memory per job stays small however large the dataset.
	 */
	const struct arl_node *node;       /* its job mapping in the file's document */
	const struct arl_dataset *dataset; /* record @record of it is the item; else NULL */
	uint32_t record;
	bool keep_alive;
	/*
	 * The job's own image (`image:`, rendered from its item), run instead of its pool's with
	 * the pool's replicas and resources; NULL: the pool's. Kept by lazy jobs (the run checks
	 * every image before it starts).
	 */
	char *image;
	/* Strings still hold {{ run.* }} / {{ attempt }}: render them per attempt. */
	bool runtime_templates;
	bool lazy;
	/* name, key and labels share one allocation (at key), as the loader stores jobs */
	bool packed;
	char spec_hash[33]; /* arl_job_spec_hash(), computed at load */
};

struct arl_jobfile {
	char *path;
	char *stem;      /* file name without directory and .yaml/.yml */
	char *name;      /* batch name: 'name:' or the stem */
	int concurrency; /* 0: no per-file cap */
	/* budget: {metric, max}: no new job of the run starts once the run's jobs' sum of the
	 * metric reaches max. budget_metric NULL: none. */
	char *budget_metric;
	double budget_max;
	struct arl_pool *pools;
	size_t npools;
	struct arl_job *jobs;
	size_t njobs, capjobs;
	/* What materializing lazy jobs needs: the parsed file, its defaults, its directory. */
	struct arl_doc *doc;
	const struct arl_node *defaults;
	char *dir;
	struct arl_dataset **datasets; /* datasets that jobs read their records from */
	size_t ndatasets;
	/* 'params:' after --set: an object of strings, in file order; NULL when it has none. */
	struct cJSON *params;
	/* 'secrets:': names of the runner's environment variables steps get (values never). */
	char **secrets;
	size_t nsecrets;
};

/* A parameter given on the command line (--set NAME=VALUE, --set-file NAME=PATH's content). */
struct arl_param_set {
	const char *name;
	const char *value;
};

void arl_strmap_set(struct arl_strmap *m, const char *key, const char *val);
const char *arl_strmap_get(const struct arl_strmap *m, const char *key);
void arl_strmap_release(struct arl_strmap *m);
void arl_step_release(struct arl_step *s);
void arl_steps_release(struct arl_steps *s);
void arl_job_release(struct arl_job *j);
/*
 * The job's foreach item as compact JSON, or NULL when it has none, in *out (owned by the
 * caller). A dataset record is read from its file again: -1 with @err when that fails or the
 * record changed since the file was loaded. Thread-safe.
 */
int arl_job_item(const struct arl_job *j, char **out, struct arl_err *err);
void arl_jobfile_free(struct arl_jobfile *f);

/*
 * Hex hash (32 chars + NUL) of everything that decides a job's result: its expanded steps and
 * callbacks, env, limits, the pool's definition and the item. Equal hashes mean --resume may
 * trust an earlier success.
 */
void arl_job_spec_hash(const struct arl_job *j, const struct arl_pool *pool, char out[33]);
/* The same for a file with 'secrets:': their names (never values) are hashed too. */
void arl_job_spec_hash_with(const struct arl_job *j, const struct arl_pool *pool,
                            char *const *secrets, size_t nsecrets, char out[33]);

/*
 * Folds @extra into spec hash @hash (in place): what only the run knows, such as the id of
 * the image a job runs in, so that --resume runs a job again when its image changed.
 */
void arl_job_spec_hash_fold(char hash[33], const char *extra);

#endif
