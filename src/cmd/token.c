/* token.c -- `meridian token new`: a fresh bearer token and its config line. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../common/auth.h"
#include "../common/err.h"
#include "cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian token new --name NAME --scopes SCOPES [--quiet]\n\n"
            "Prints a fresh random token (32 bytes from OpenSSL's RAND_bytes) and the line that\n"
            "makes a server accept it.  The token is shown once: give it to the client; the\n"
            "server's config holds only its SHA-256 (docs/security.md).\n"
            "  -n, --name NAME      what the token is for, e.g. shop-us-east-1 (letters, digits, -_.)\n"
            "  -s, --scopes SCOPES  comma list of read, write, admin, peer\n"
            "                       (admin implies write and peer, write implies read)\n"
            "  -q, --quiet          print the token alone on the first line and the config\n"
            "                       line on the second, for scripts\n");
}

int cmd_token(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"name", required_argument, NULL, 'n'},   {"scopes", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *name = NULL, *scopes = NULL;
    char token[MR_AUTH_TOKEN_LEN + 1], hash[65], line[256], err[MR_ERRMSG_LEN];
    struct mr_auth check;
    unsigned bits;
    int quiet = 0, c;

    if (argc < 2 || strcmp(argv[1], "new") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "n:s:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': name = optarg; break;
        case 's': scopes = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (name == NULL || scopes == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (mr_auth_parse_scopes(scopes, &bits, err) != 0) {
        fprintf(stderr, "meridian token: %s\n", err);
        return 2;
    }
    if (mr_auth_token_new(token, sizeof(token), err) != 0) {
        fprintf(stderr, "meridian token: %s\n", err);
        return 1;
    }
    mr_auth_hash_hex(token, hash);
    snprintf(line, sizeof(line), "%s %s %s", name, scopes, hash);
    /* Parse what we print, so a bad name is refused here, not at start. */
    memset(&check, 0, sizeof(check));
    if (mr_auth_add(&check, line, "--name/--scopes", err) != 0) {
        fprintf(stderr, "meridian token: %s\n", err);
        return 2;
    }
    if (quiet) {
        printf("%s\ntoken = %s\n", token, line);
        return 0;
    }
    printf("token (give it to the client; it is not stored anywhere):\n  %s\n\n"
           "config line (the [auth] section of the server's file):\n  token = %s\n\n"
           "the client sends:\n  Authorization: Bearer %s\n",
           token, line, token);
    return 0;
}
