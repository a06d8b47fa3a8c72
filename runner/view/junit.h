/*
 * JUnit XML of a run (`results --format junit`): one <testsuite> per job file, one <testcase>
 * per job, in the shape Jenkins, GitLab and the Ant-derived schemas share
 * (tests/integration/junit.xsd is that shape; xmllint checks it).
 */
#ifndef ARL_JUNIT_H
#define ARL_JUNIT_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

struct arl_store;

/*
 * Prints run @run_id of @s on @out. @states (bit 1 << enum arl_state; 0: all) keeps only the
 * jobs in those states, as `results --state` does. A Skipped job is the result it stands for:
 * a carried failure is a <failure>. The jobs of a file come out together, in the order they
 * were recorded; the run is read twice (counts, then cases) in one snapshot, holding only the
 * per-file counts, so a 100 000-job run streams in constant memory.
 */
int arl_junit_print(FILE *out, struct arl_store *s, int64_t run_id, unsigned states,
                    struct arl_err *err);

#endif
