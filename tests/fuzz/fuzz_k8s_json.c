/*
 * libFuzzer target: arbitrary bytes as what the API server sends back, read the way the
 * Kubernetes client and backend read it: each line a watch event ({"type", "object"}, with
 * ERROR codes and Status messages), each object's metadata (name, resourceVersion), a
 * Sandbox's status (phase, podName, conditions[0].message), a Task's status (state,
 * exitCode, stdout/stderr, RFC 3339 times, Go durations), and the whole input as a list
 * (items, metadata.continue). The JSON getters, cJSON and the k8s text parsers are the code
 * under test; the backend's watch predicates are thin wrappers over exactly these calls.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "k8s/k8s_client.h"
#include "k8s/k8s_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void use(const char *s)
{
	if (s)
		sink += strlen(s);
}

static void read_object(const cJSON *obj)
{
	int64_t v = 0, ms = 0, ns = 0;
	const cJSON *status, *conds;
	const char *s;

	use(arl_k8s_get_str(obj, "metadata.name"));
	use(arl_k8s_get_str(obj, "metadata.resourceVersion"));
	use(arl_k8s_get_str(obj, "metadata.continue"));
	use(arl_k8s_get_str(obj, "message"));
	(void)arl_k8s_get_int(obj, "code", 0, 999, &v);
	/* Sandbox */
	use(arl_k8s_get_str(obj, "status.phase"));
	use(arl_k8s_get_str(obj, "status.podName"));
	status = cJSON_GetObjectItemCaseSensitive(obj, "status");
	conds = cJSON_GetObjectItemCaseSensitive(status, "conditions");
	use(arl_k8s_get_str(cJSON_GetArrayItem(conds, 0), "message"));
	/* WarmPool */
	(void)arl_k8s_get_int(obj, "status.readyReplicas", 0, INT32_MAX, &v);
	(void)arl_k8s_get_int(obj, "spec.replicas", 0, INT32_MAX, &v);
	/* Task */
	use(arl_k8s_get_str(obj, "status.state"));
	(void)arl_k8s_get_int(obj, "status.exitCode", INT32_MIN, INT32_MAX, &v);
	use(arl_k8s_get_str(obj, "status.stdout"));
	use(arl_k8s_get_str(obj, "status.stderr"));
	if ((s = arl_k8s_get_str(obj, "status.startTime")))
		(void)arl_k8s_parse_time(s, &ms);
	if ((s = arl_k8s_get_str(obj, "status.completionTime")))
		(void)arl_k8s_parse_time(s, &ms);
	if ((s = arl_k8s_get_str(obj, "status.duration")))
		(void)arl_k8s_parse_go_duration(s, &ns);
	/* ExecCredential */
	if ((s = arl_k8s_get_str(obj, "status.expirationTimestamp")))
		(void)arl_k8s_parse_time(s, &ms);
	sink += (size_t)v + (size_t)ms + (size_t)ns;
}

/* As the client parses a body or a watch line: @len bytes followed by a NUL. */
static void read_json(const char *p, size_t len)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(p, len + 1, &end, 1);
	const cJSON *obj, *item;
	char label[64];

	if (!j)
		return;
	obj = cJSON_GetObjectItemCaseSensitive(j, "object");
	use(arl_k8s_get_str(j, "type"));
	if (cJSON_IsObject(obj))
		read_object(obj);
	read_object(j);
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(j, "items"))
	{
		const char *name = arl_k8s_get_str(item, "metadata.name");

		read_object(item);
		arl_k8s_label_value(name ? name : "", label);
		sink += arl_k8s_is_label_value(label);
	}
	cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	size_t start = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	read_json(buf, strnlen(buf, size)); /* the whole body */
	for (size_t i = 0; i <= size; i++) {
		if (i == size || buf[i] == '\n') {
			char save = buf[i];

			buf[i] = '\0'; /* the watch reader NUL-ends each line */
			read_json(buf + start, strnlen(buf + start, i - start));
			buf[i] = save;
			start = i + 1;
		}
	}
	free(buf);
	return 0;
}
