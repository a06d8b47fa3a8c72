/*
 * libFuzzer target: arbitrary bytes as a kubeconfig file through arl_kubeconfig_load() (YAML
 * loader, merge, context resolution, base64 *-data fields, the description). Nothing is
 * executed: exec plugins only run when a request needs credentials.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "k8s/kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct arl_kubeconfig_opts o = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_kubeconfig *kc = NULL;
	struct arl_kubeconfig_info info;
	struct arl_err err = ARL_ERR_INIT;
	FILE *f;

	if (!*path)
		snprintf(path, sizeof(path), "/tmp/arl-fuzz-kubeconfig-%ld", (long)getpid());
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	if (fclose(f) != 0)
		abort();
	o.path = path;
	o.sa_dir = "/nonexistent-fuzz-dir";
	if (arl_kubeconfig_load(&kc, &o, &err) == 0) {
		arl_kubeconfig_describe(kc, &info);
		(void)arl_kubeconfig_base_url(kc);
		arl_kubeconfig_free(kc);
	}
	unlink(path);
	return 0;
}
