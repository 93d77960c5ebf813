/* main.c -- the meridian binary: dispatch to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct subcommand subcommands[] = {
    {"node", cmd_node, "run one region's node (global SQL database)"},
    {"sql", cmd_sql, "run SQL against a node and print the rows"},
    {"up", cmd_up, "start a local topology (etcd + nodes per region)"},
    {"down", cmd_down, "stop a topology started with up --detach"},
    {"region", cmd_region, "kill|freeze|thaw|restart every process of a region"},
    {"wan", cmd_wan, "the WAN emulator: run it, or set links, cut and heal regions"},
    {"edge", cmd_edge, "the edge proxy of a client site: nearest healthy region, cache, shedding"},
    {"shop", cmd_shop, "the reference online shop of one region, or `shop seed` its catalog"},
    {"gameday", cmd_gameday, "break regions under load, measure the recovery, verify nothing was lost"},
    {"demo", cmd_demo, "three local regions, a short mixed workload, a table of figures"},
    {"bench", cmd_bench, "benchmarks of the global SQL database"},
    {"cert", cmd_cert, "make a cluster CA, issue TLS certificates (docs/security.md)"},
    {"token", cmd_token, "make a bearer token and the config line that accepts it"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: meridian COMMAND [ARGS]   (meridian COMMAND --help for more)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "meridian: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
