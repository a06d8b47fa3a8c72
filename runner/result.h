/*
 * Outcomes of jobs, attempts and steps as the scheduler produces them and the store records
 * them. Plain value types: every pointer is owned by the struct holding it and freed by the
 * matching _release().
 */
#ifndef ARL_RESULT_H
#define ARL_RESULT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum arl_state {
	ARL_STATE_PENDING,
	ARL_STATE_RUNNING,
	ARL_STATE_SUCCEEDED,
	ARL_STATE_FAILED,
	ARL_STATE_SKIPPED,
	ARL_STATE_CANCELLED,
};

/* Why an attempt or job did not succeed (docs/database.md, 'States and failure classes'). */
enum arl_class {
	ARL_CLASS_NONE,
	ARL_CLASS_FAILED,  /* a step exited non-zero */
	ARL_CLASS_TIMEOUT, /* a step or the attempt ran past its limit */
	ARL_CLASS_INFRA,   /* sandbox allocation or backend failure */
	ARL_CLASS_CANCELLED,
};

const char *arl_state_name(enum arl_state s);
const char *arl_class_name(enum arl_class c); /* NULL for ARL_CLASS_NONE */
/* Parses "failed", "timeout", "infra", "cancelled"; -1 when unknown. */
int arl_class_parse(const char *s, enum arl_class *out);

struct arl_output {
	char *data; /* NUL-terminated, may hold NULs; head + marker + tail when truncated */
	size_t len;
	bool truncated;
};

struct arl_step_result {
	char *name;
	const char *type;     /* "Command" | "FilePatch" (static) */
	bool callback;        /* phase: main | callback */
	enum arl_state state; /* SUCCEEDED | FAILED | SKIPPED (not run) */
	bool has_exit;
	int exit_code;
	struct arl_output out, err;
	int64_t started_ms, finished_ms; /* wall clock, unix ms; 0 = not run */
	char *metrics_error;             /* why `metrics: json` kept nothing, or not all */
	const char *reason; /* static: why the backend ended it, as Kubernetes says ("OOMKilled") */
	bool stalled;       /* class timeout because it printed nothing for its stallTimeout */
};

struct arl_metric {
	char *name;
	enum { ARL_METRIC_NUMBER, ARL_METRIC_TEXT } kind;
	double number;
	char *text;
};

/* A file an attempt kept (`artifacts:`), or one it could not keep (@error set, no content). */
struct arl_artifact {
	char *path; /* inside the sandbox */
	int64_t size;
	char sha256[65]; /* "" when not kept */
	char *error;
};

struct arl_attempt_result {
	int number; /* 1-based */
	char *sandbox;
	enum arl_state state; /* SUCCEEDED | FAILED | CANCELLED */
	enum arl_class cls;
	bool has_exit;
	int exit_code;
	char *error;
	int64_t started_ms, finished_ms;
	bool has_prepare;   /* a sandbox was asked for (prepare_ms is how long it took) */
	int64_t prepare_ms; /* getting it, ready or not: not part of the job's timeout */
	struct arl_step_result *steps;
	size_t nsteps;
	struct arl_artifact *artifacts;
	size_t nartifacts;
};

struct arl_job_result {
	enum arl_state state;
	enum arl_class cls;
	bool has_exit;
	int exit_code;
	char *error;
	int64_t started_ms, finished_ms;
	struct arl_attempt_result *attempts;
	size_t nattempts;
	struct arl_metric *metrics; /* of the last attempt */
	size_t nmetrics;
};

/* What stands for the middle of an output longer than its capture limit (bytes dropped). */
#define ARL_OUTPUT_ELIDED "\n[... %" PRIu64 " bytes truncated ...]\n"

/*
 * Sets @o to @s (NUL-terminated, taken over). Longer than @max (0: no limit), only its first
 * and last @max/2 bytes are kept around ARL_OUTPUT_ELIDED, as spawn.c keeps a local step's.
 */
void arl_output_take(struct arl_output *o, char *s, size_t max);
void arl_output_release(struct arl_output *o);
void arl_step_result_release(struct arl_step_result *s);
void arl_attempt_result_release(struct arl_attempt_result *a);
void arl_job_result_release(struct arl_job_result *j);

#endif
