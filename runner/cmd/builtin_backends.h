/* The backends this build has, registered in one place. */
#ifndef ARL_BUILTIN_BACKENDS_H
#define ARL_BUILTIN_BACKENDS_H

/* Registers them (backend.h); call before loading any job file. Idempotent. */
void arl_register_builtin_backends(void);

#endif
