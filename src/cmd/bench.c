/* bench.c -- `meridian bench`: placeholder until the benchmark suite lands. */
#include <stdio.h>

#include "cmd.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "meridian bench: not implemented yet\n");
    return 1;
}
