/* replay.c -- run the fuzz targets over files, without libFuzzer.
 *
 *   replay                  every target over its committed corpus
 *                           (tests/fuzz/corpus/NAME) and the inputs that
 *                           once crashed it (tests/fuzz/regressions/NAME)
 *   replay NAME PATH...     one target over files or directories of files
 *
 * `make test` runs it from the repository root (ASan + UBSan build).  A crash
 * is a sanitizer abort; a target without a corpus is an error, so a renamed
 * target cannot pass by replaying nothing.  Each target's entry point is
 * renamed at compile time (-DLLVMFuzzerTestOneInput=fuzz_target_NAME) so that
 * all of them live in this one binary; FUZZ_TARGETS lists them as X(NAME).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_TARGETS
#error "build with -DFUZZ_TARGETS='X(name) X(name)...'"
#endif

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

#define X(name) int fuzz_target_##name(const uint8_t *data, size_t size);
FUZZ_TARGETS
#undef X

static const struct target {
    const char *name;
    fuzz_fn run;
} targets[] = {
#define X(name) {#name, fuzz_target_##name},
    FUZZ_TARGETS
#undef X
};

static size_t n_inputs;

static int run_file(fuzz_fn fn, const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    size_t len = 0, cap = 0, got;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            data = realloc(data, cap);
            if (data == NULL)
                abort();
        }
        got = fread(data + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    fclose(f);
    fn(data, len);
    free(data);
    n_inputs++;
    return 0;
}

static int run_path(fuzz_fn fn, const char *path, int must_exist)
{
    struct stat st;
    struct dirent **names;
    int n, rc = 0;

    if (stat(path, &st) != 0) {
        if (!must_exist && errno == ENOENT)
            return 0;
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(fn, path);
    /* Sorted, so that a failure replays in the same order. */
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (rc == 0 && names[i]->d_name[0] != '.') {
            snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
            rc = run_path(fn, sub, 1);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int replay_committed(const struct target *t)
{
    char path[512];
    size_t before = n_inputs;
    int rc;

    snprintf(path, sizeof(path), "tests/fuzz/corpus/%s", t->name);
    rc = run_path(t->run, path, 1);
    snprintf(path, sizeof(path), "tests/fuzz/regressions/%s", t->name);
    if (rc == 0)
        rc = run_path(t->run, path, 0);
    if (rc == 0 && n_inputs == before) {
        fprintf(stderr, "replay %s: no inputs in tests/fuzz/corpus/%s\n", t->name, t->name);
        rc = -1;
    }
    printf("replay %-14s %5zu inputs  %s\n", t->name, n_inputs - before,
           rc == 0 ? "no crash" : "ERROR");
    return rc;
}

int main(int argc, char **argv)
{
    size_t n_targets = sizeof(targets) / sizeof(targets[0]);
    int rc = 0;

    if (argc == 1) {
        for (size_t i = 0; i < n_targets; i++)
            rc |= replay_committed(&targets[i]);
        return rc == 0 ? 0 : 1;
    }
    for (size_t i = 0; i < n_targets; i++) {
        if (strcmp(argv[1], targets[i].name) != 0)
            continue;
        for (int a = 2; rc == 0 && a < argc; a++)
            rc = run_path(targets[i].run, argv[a], 1);
        printf("replay %s: %zu inputs, %s\n", argv[1], n_inputs, rc == 0 ? "no crash" : "ERROR");
        return rc == 0 ? 0 : 1;
    }
    fprintf(stderr, "replay: unknown target '%s'\n", argv[1]);
    return 2;
}
