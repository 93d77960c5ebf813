/* fuzz.h -- what every fuzz target shares.
 *
 * A target is one file tests/fuzz/fuzz_<name>.c that defines
 * LLVMFuzzerTestOneInput.  It is built twice: with clang's libFuzzer for
 * `make fuzz` (build/fuzz/<name>), and with gcc + ASan/UBSan against
 * tests/fuzz/replay.c for `make test`, which runs it over the committed
 * corpus and every input that once crashed it (tests/fuzz/regressions/).
 */
#ifndef MR_FUZZ_H
#define MR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input, for parsers that take C strings.
 * The caller frees it. */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* Write the input to a private file (on tmpfs when there is one) and return
 * its path, for parsers that read files.  The path stays valid until the
 * next call. */
const char *fuzz_file(const uint8_t *data, size_t size);

#endif
