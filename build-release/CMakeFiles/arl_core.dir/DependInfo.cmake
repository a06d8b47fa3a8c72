
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/runner/attempt.c" "CMakeFiles/arl_core.dir/runner/attempt.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/attempt.c.o.d"
  "/work/main/runner/backend.c" "CMakeFiles/arl_core.dir/runner/backend.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/backend.c.o.d"
  "/work/main/runner/backend_local.c" "CMakeFiles/arl_core.dir/runner/backend_local.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/backend_local.c.o.d"
  "/work/main/runner/buf.c" "CMakeFiles/arl_core.dir/runner/buf.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/buf.c.o.d"
  "/work/main/runner/cli.c" "CMakeFiles/arl_core.dir/runner/cli.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/cli.c.o.d"
  "/work/main/runner/cmd_query.c" "CMakeFiles/arl_core.dir/runner/cmd_query.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/cmd_query.c.o.d"
  "/work/main/runner/cmd_results.c" "CMakeFiles/arl_core.dir/runner/cmd_results.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/cmd_results.c.o.d"
  "/work/main/runner/cmd_run.c" "CMakeFiles/arl_core.dir/runner/cmd_run.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/cmd_run.c.o.d"
  "/work/main/runner/cmd_runs.c" "CMakeFiles/arl_core.dir/runner/cmd_runs.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/cmd_runs.c.o.d"
  "/work/main/runner/cmd_show.c" "CMakeFiles/arl_core.dir/runner/cmd_show.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/cmd_show.c.o.d"
  "/work/main/runner/cmd_validate.c" "CMakeFiles/arl_core.dir/runner/cmd_validate.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/cmd_validate.c.o.d"
  "/work/main/runner/dataset.c" "CMakeFiles/arl_core.dir/runner/dataset.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/dataset.c.o.d"
  "/work/main/runner/err.c" "CMakeFiles/arl_core.dir/runner/err.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/err.c.o.d"
  "/work/main/runner/job.c" "CMakeFiles/arl_core.dir/runner/job.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/job.c.o.d"
  "/work/main/runner/jobload.c" "CMakeFiles/arl_core.dir/runner/jobload.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/jobload.c.o.d"
  "/work/main/runner/result.c" "CMakeFiles/arl_core.dir/runner/result.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/result.c.o.d"
  "/work/main/runner/run.c" "CMakeFiles/arl_core.dir/runner/run.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/run.c.o.d"
  "/work/main/runner/scheduler.c" "CMakeFiles/arl_core.dir/runner/scheduler.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/scheduler.c.o.d"
  "/work/main/runner/schema.c" "CMakeFiles/arl_core.dir/runner/schema.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/schema.c.o.d"
  "/work/main/runner/spawn.c" "CMakeFiles/arl_core.dir/runner/spawn.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/spawn.c.o.d"
  "/work/main/runner/store.c" "CMakeFiles/arl_core.dir/runner/store.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/store.c.o.d"
  "/work/main/runner/store_view.c" "CMakeFiles/arl_core.dir/runner/store_view.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/store_view.c.o.d"
  "/work/main/runner/template.c" "CMakeFiles/arl_core.dir/runner/template.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/template.c.o.d"
  "/work/main/runner/util.c" "CMakeFiles/arl_core.dir/runner/util.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/util.c.o.d"
  "/work/main/runner/yaml_load.c" "CMakeFiles/arl_core.dir/runner/yaml_load.c.o" "gcc" "CMakeFiles/arl_core.dir/runner/yaml_load.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
