/* Included last in every .c: turns unsafe libc calls into compile errors. */
#ifndef ARL_BANNED_H
#define ARL_BANNED_H

#define ARL_BANNED(func) sorry_##func##_is_banned

#undef sprintf
#define sprintf(...) ARL_BANNED(sprintf)
#undef strcpy
#define strcpy(a, b) ARL_BANNED(strcpy)
#undef strcat
#define strcat(a, b) ARL_BANNED(strcat)
#undef strtok
#define strtok(a, b) ARL_BANNED(strtok)
#undef atoi
#define atoi(a) ARL_BANNED(atoi) /* use arl_parse_i64(): range-checked, reports errors */
#undef gmtime
#define gmtime(t) ARL_BANNED(gmtime) /* use gmtime_r() */
#undef localtime
#define localtime(t) ARL_BANNED(localtime)
#undef strerror
#define strerror(e) ARL_BANNED(strerror) /* threads: use arl_strerror() */

#endif
