/*
 * libyaml events -> an in-memory node tree where every node keeps its source mark. One loader
 * for files, tests and the fuzzer. Hostile input is bounded: input size, scalar size, nesting
 * depth, node count and alias expansion are capped, and duplicate keys are refused.
 */
#ifndef ARL_YAML_LOAD_H
#define ARL_YAML_LOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define ARL_YAML_MAX_INPUT     (16u << 20) /* bytes of one job file */
#define ARL_YAML_MAX_SCALAR    (8u << 20)
#define ARL_YAML_MAX_DEPTH     64
#define ARL_YAML_MAX_NODES     4000000 /* 10^5 jobs of ~40 nodes; ~140 bytes each */
#define ARL_YAML_MAX_ANCHORS   10000
#define ARL_YAML_MAX_EXPANSION 1000000 /* nodes reachable through aliases */

enum arl_node_kind { ARL_NODE_SCALAR, ARL_NODE_SEQ, ARL_NODE_MAP };

struct arl_node {
	struct arl_loc loc;
	char *str; /* scalar text, NUL-terminated */
	size_t len;
	/* SEQ: items; MAP: keys and values alternate (key i at 2i, value at 2i+1) */
	struct arl_node **kids;
	size_t nkids;
	size_t weight; /* nodes in this subtree, counting alias targets again */
	enum arl_node_kind kind;
	bool plain; /* scalar written without quotes or block style: may be a number/bool/null */
};

struct arl_doc {
	char *path;
	struct arl_node *root; /* NULL for an empty document */
	struct arl_node **all; /* every node, for freeing (aliases share nodes) */
	size_t nall, capall;
};

/*
 * Parses the YAML text @buf/@len named @path. Syntax errors and limit violations are added to
 * @diags (with positions) and make it return -1; *out is set only on success. One document only.
 */
int arl_yaml_load_mem(const char *path, const char *buf, size_t len, struct arl_doc **out,
                      struct arl_diags *diags);
void arl_doc_free(struct arl_doc *doc);

/* Map lookup by key text; NULL when absent or @map is not a mapping. */
struct arl_node *arl_node_get(const struct arl_node *map, const char *key);
/* Width of a node's text for a caret underline (scalars only; 1 otherwise). */
unsigned arl_node_width(const struct arl_node *n);
/* "a string", "a mapping", "a list", "an integer", ... for type errors. */
const char *arl_node_describe(const struct arl_node *n);
/* Plain true/false (any case YAML 1.2 allows); *v (may be NULL) gets the value. */
bool arl_node_is_bool(const struct arl_node *n, bool *v);
bool arl_node_is_float(const struct arl_node *n);
/* True when a plain scalar reads as YAML null ("", "~", "null"). */
bool arl_node_is_null(const struct arl_node *n);

#endif
