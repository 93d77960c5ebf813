/* util.c -- helpers for fuzz targets (see fuzz.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static char fuzz_path[64];

static void fuzz_file_remove(void)
{
    unlink(fuzz_path);
}

const char *fuzz_file(const uint8_t *data, size_t size)
{
    char *path = fuzz_path;
    FILE *f;

    if (path[0] == '\0') {
        snprintf(fuzz_path, sizeof(fuzz_path), "%s/meridian-fuzz-%d.ini",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        atexit(fuzz_file_remove); /* one file per process, gone with it */
    }
    f = fopen(path, "we");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
    return path;
}
