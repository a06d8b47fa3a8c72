#include "jobfile/jobload.h"

#include "buf.h"
#include "jobfile/pool_parse.h"
#include "jobfile/schema.h"
#include "jobfile/yaml_load.h"
#include "banned.h"

int arl_jobfile_load(const char *path, struct arl_jobfile **out, FILE *diag_out)
{
	return arl_jobfile_load_on(path, NULL, out, diag_out);
}

int arl_jobfile_load_on(const char *path, const struct arl_pool_kind *backend,
                        struct arl_jobfile **out, FILE *diag_out)
{
	return arl_jobfile_load_with(path, backend, NULL, 0, out, diag_out);
}

int arl_jobfile_load_with(const char *path, const struct arl_pool_kind *backend,
                          const struct arl_param_set *sets, size_t nsets, struct arl_jobfile **out,
                          FILE *diag_out)
{
	struct arl_jobfile *f = NULL;
	struct arl_buf src = ARL_BUF_INIT;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_diags diags = ARL_DIAGS_INIT;
	int ret;

	/* One byte over the limit, so that the loader reports the size with its own message. */
	if (arl_buf_read_file(&src, path, ARL_YAML_MAX_INPUT + 1, &err) < 0) {
		/* Far over the limit the read stops first: name the real limit, not limit + 1. */
		if (err.code == ARL_E_LIMIT)
			fprintf(diag_out,
			        "%s: error: file exceeds the limit of %u bytes (16 MiB)\n", path,
			        ARL_YAML_MAX_INPUT);
		else
			fprintf(diag_out, "%s: error: %s\n", path, err.msg);
		arl_buf_release(&src);
		return -1;
	}
	ret = arl_jobfile_parse_with(path, src.p, src.len, sets, nsets, &f, &diags);
	if (ret == 0 && backend && arl_jobfile_set_backend(f, backend, &diags) < 0) {
		arl_jobfile_free(f);
		ret = -1;
	}
	if (ret == 0)
		*out = f;
	arl_diags_print(&diags, diag_out, path, src.p, src.len);
	if (ret < 0)
		fprintf(diag_out, "%s: %zu error%s%s\n", path, diags.errors,
		        diags.errors == 1 ? "" : "s", diags.warnings ? ", with warnings" : "");
	arl_diags_release(&diags);
	arl_buf_release(&src);
	return ret;
}
