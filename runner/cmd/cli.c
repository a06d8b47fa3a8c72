#include "cmd/cli.h"

#include <stdlib.h>
#include <unistd.h>

#include "util.h"
#include "banned.h"

const char *arl_cli_db_path(const char *opt)
{
	const char *env = getenv("ARL_BATCH_DB");

	if (opt && *opt)
		return opt;
	if (env && *env)
		return env;
	return "arl-batch.db";
}

int arl_cli_unexpected(const struct arl_command_usage *u, const char *arg)
{
	return arl_options_error(u, "unexpected argument '%s'", arg);
}

int arl_cli_color(int fd)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(fd) && !(nc && *nc);
}

char *arl_cli_state_dir(const char *opt, const char *db)
{
	const char *xdg = getenv("XDG_STATE_HOME");

	if (opt && *opt)
		return arl_xstrdup(opt);
	if (xdg && *xdg)
		return arl_xasprintf("%s/arl-batch", xdg);
	return arl_xasprintf("%s.sandboxes", db);
}
