/*
 * Typed values read from the YAML node tree, each problem reported as a diagnostic at the
 * node (file:line:col) with the field's name. The loader (schema.c) and job expansion
 * (expand.c) read every field through these, so both say the same thing about the same text.
 */
#ifndef ARL_FIELDS_H
#define ARL_FIELDS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "jobfile/template.h"
#include "jobfile/yaml_load.h"

struct arl_fields {
	struct arl_diags *d;
	const char *path;             /* the file, for a diagnostic with no node */
	const struct arl_tmpl_ctx *t; /* what load-time templates in strings see */
	const char *origin;           /* the item being expanded, for template errors; "" if none */
	bool deferred;                /* a rendered string kept run-time expressions */
	bool bad;                     /* an error was reported */
};

void arl_field_diag(struct arl_fields *r, const struct arl_node *n, const char *fmt, ...)
    ARL_PRINTF(3, 4);
void arl_field_vdiag(struct arl_fields *r, const struct arl_node *n, const char *fmt, va_list ap)
    ARL_PRINTF(3, 0);
void arl_field_vwarn(struct arl_fields *r, const struct arl_node *n, const char *fmt, va_list ap)
    ARL_PRINTF(3, 0);

/* The word of NULL-terminated @words that @key was probably meant to be, or NULL. */
const char *arl_field_suggest(const char *key, const char *const *words);
bool arl_field_in_list(const char *s, const char *const *words);
void arl_field_unknown_key(struct arl_fields *r, const struct arl_node *k, const char *where,
                           const char *const *allowed);
/* Reports keys of @map not in @allowed; every key must be a string. */
void arl_field_check_keys(struct arl_fields *r, const struct arl_node *map, const char *where,
                          const char *const *allowed);
/* False (reported as "'@name' must be ...") when @n is not of @kind. */
bool arl_field_want(struct arl_fields *r, const struct arl_node *n, enum arl_node_kind kind,
                    const char *name);
bool arl_field_is_string(const struct arl_node *n);
/* An environment variable's name: [A-Za-z_][A-Za-z0-9_]*. */
bool arl_field_env_name_ok(const char *s);

/* @s with load-time templates rendered (owned); NULL when rendering failed (reported). */
char *arl_field_render(struct arl_fields *r, const struct arl_node *n, const char *s);
/* A string field, rendered (owned). NULL (with a diagnostic) when it is not a string. */
char *arl_field_str(struct arl_fields *r, const struct arl_node *n, const char *name);
bool arl_field_int(struct arl_fields *r, const struct arl_node *n, const char *name, int64_t min,
                   int64_t max, int64_t *out);
bool arl_field_bool(struct arl_fields *r, const struct arl_node *n, const char *name, bool *out);
/* A duration in (0, max_ms]; 0 too when @zero_ok. */
bool arl_field_duration(struct arl_fields *r, const struct arl_node *n, const char *name,
                        int64_t max_ms, bool zero_ok, int64_t *out);
/* The index in NULL-terminated @choices of @n's value. */
bool arl_field_enum(struct arl_fields *r, const struct arl_node *n, const char *name,
                    const char *const *choices, int *out);

#endif
