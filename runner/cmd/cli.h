/* The command table and option helpers shared by the cmd_*.c files. */
#ifndef ARL_CLI_H
#define ARL_CLI_H

#include "cmd/options.h"

struct arl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_results(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_artifacts(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_pool(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_logs(int argc, char **argv);

/* The results database: --db, else $ARL_BATCH_DB, else ./arl-batch.db (borrowed). */
const char *arl_cli_db_path(const char *opt);
/* --db PATH into the const char * at @v, for arl_cli_db_path(). */
#define ARL_OPT_DB(v)                                                                              \
	ARL_OPT_STRING(0, "db", v, "PATH",                                                         \
	               "results database (default $ARL_BATCH_DB, else ./arl-batch.db)")
/* An operand @u takes no more of, as a usage error; returns ARL_EXIT_USAGE. */
int arl_cli_unexpected(const struct arl_command_usage *u, const char *arg);
/*
 * Where local sandboxes live: @opt (--state-dir), else $XDG_STATE_HOME/arl-batch, else
 * "<db>.sandboxes" beside the database. Returns a new string.
 */
char *arl_cli_state_dir(const char *opt, const char *db);

/* True when stdout/stderr should be coloured: a TTY, NO_COLOR unset. */
int arl_cli_color(int fd);

#endif
