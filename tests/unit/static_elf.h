/*
 * Whether a program is linked statically (an ELF file without PT_INTERP), as the sandbox agent
 * is outside sanitizer builds: tests that start it in a sandbox without the host's loader skip
 * otherwise. Include after <cmocka.h>.
 */
#ifndef ARL_TEST_STATIC_ELF_H
#define ARL_TEST_STATIC_ELF_H

#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

static inline bool is_static_elf(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	bool interp = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &eh, sizeof(eh), 0), (ssize_t)sizeof(eh));
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		off_t at = (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize);

		assert_int_equal(pread(fd, &ph, sizeof(ph), at), (ssize_t)sizeof(ph));
		interp = interp || ph.p_type == PT_INTERP;
	}
	close(fd);
	return !interp;
}

#endif
