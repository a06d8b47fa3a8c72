/* SHA-256 against FIPS 180-4's examples, and fed in pieces across block boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sha256.h"

static void hex_of(const char *s, size_t n, char out[65])
{
	struct arl_sha256 c;

	arl_sha256_init(&c);
	arl_sha256_update(&c, s, n);
	arl_sha256_hex(&c, out);
}

static void test_known_digests(void **state)
{
	char out[65];
	(void)state;

	hex_of("", 0, out);
	assert_string_equal(out,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of("abc", 3, out);
	assert_string_equal(out,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
	assert_string_equal(out,
	                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* A million 'a's, in pieces of odd sizes: the buffering across blocks. */
static void test_pieces(void **state)
{
	static char buf[1000000];
	struct arl_sha256 c;
	char out[65];
	size_t off = 0, step = 1;
	(void)state;

	memset(buf, 'a', sizeof(buf));
	arl_sha256_init(&c);
	while (off < sizeof(buf)) {
		size_t n = step < sizeof(buf) - off ? step : sizeof(buf) - off;

		arl_sha256_update(&c, buf + off, n);
		off += n;
		step = step * 7 % 997 + 1;
	}
	arl_sha256_hex(&c, out);
	assert_string_equal(out,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_digests),
	    cmocka_unit_test(test_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
