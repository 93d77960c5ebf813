/* sql.c -- `meridian sql`: run SQL against a node, print rows as a table. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/auth.h"
#include "../common/buf.h"
#include "../common/err.h"
#include "../http/http.h"
#include "../up/up.h"
#include "cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: meridian sql (--node URL | --dir RUNDIR [--region NAME]) [options] SQL [PARAM]...\n\n"
            "Runs one statement (or several, separated by --and) as one request.\n"
            "  -n, --node URL            node to talk to, e.g. http://127.0.0.1:8080\n"
            "  -d, --dir RUNDIR          use the topology started by `meridian up --dir RUNDIR`\n"
            "  -r, --region NAME         region of that topology (default: the first)\n"
            "  -c, --consistency LEVEL   eventual, session or strong\n"
            "  -t, --token TOKEN         consistency token of an earlier write\n"
            "  -k, --idempotency-key K   apply this write at most once\n"
            "  -j, --json                print the JSON answer as it is\n"
            "  -A, --auth-token TOKEN    bearer token for a node with [auth] tokens (default:\n"
            "                            $MERIDIAN_TOKEN, else the one in RUNDIR/topology.json)\n"
            "An https:// node is called with the admin certificate of RUNDIR/topology.json, else\n"
            "with $MERIDIAN_TLS_CA, $MERIDIAN_TLS_CERT and $MERIDIAN_TLS_KEY.\n"
            "PARAMs are JSON values (42, 1.5, null, \"text\") or, if not JSON, strings.\n");
}

/* Node URL of <region> (or the first region) from RUNDIR/topology.json. */
static char *node_url_from_dir(const char *dir, const char *region, char *err)
{
    char *path = mr_asprintf("%s/topology.json", dir);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr), *regions;
    char *url = NULL;

    if (doc == NULL) {
        mr_seterr(err, MR_ENOTFOUND, "%s: %s", path, jerr.text);
        mr_free(path);
        return NULL;
    }
    regions = json_object_get(doc, "regions");
    for (size_t i = 0; i < json_array_size(regions); i++) {
        json_t *r = json_array_get(regions, i);
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *u = json_string_value(json_object_get(json_object_get(r, "node"), "url"));
        if (u && name && (region == NULL || strcmp(region, name) == 0)) {
            url = mr_strdup(u);
            break;
        }
    }
    if (url == NULL)
        mr_seterr(err, MR_ENOTFOUND, "%s: no region %s", path, region ? region : "at all");
    json_decref(doc);
    mr_free(path);
    return url;
}

static void print_value(struct mr_buf *b, json_t *v)
{
    if (json_is_string(v))
        mr_buf_puts(b, json_string_value(v));
    else if (json_is_null(v))
        mr_buf_puts(b, "NULL");
    else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        mr_buf_puts(b, s);
        free(s);
    }
}

static void print_table(json_t *result)
{
    json_t *cols = json_object_get(result, "columns"), *rows = json_object_get(result, "rows");
    size_t nc = json_array_size(cols), nr = json_array_size(rows);
    size_t *w = mr_calloc(nc ? nc : 1, sizeof(*w));
    struct mr_buf cell;

    mr_buf_init(&cell);
    for (size_t c = 0; c < nc; c++)
        w[c] = strlen(json_string_value(json_array_get(cols, c)));
    for (size_t r = 0; r < nr; r++)
        for (size_t c = 0; c < nc; c++) {
            mr_buf_reset(&cell);
            print_value(&cell, json_array_get(json_array_get(rows, r), c));
            if (cell.len > w[c])
                w[c] = cell.len;
        }
    if (nc) {
        for (size_t c = 0; c < nc; c++)
            printf("%s%-*s", c ? " | " : "", (int)w[c], json_string_value(json_array_get(cols, c)));
        printf("\n");
        for (size_t c = 0; c < nc; c++) {
            printf("%s", c ? "-+-" : "");
            for (size_t i = 0; i < w[c]; i++)
                putchar('-');
        }
        printf("\n");
        for (size_t r = 0; r < nr; r++) {
            for (size_t c = 0; c < nc; c++) {
                mr_buf_reset(&cell);
                print_value(&cell, json_array_get(json_array_get(rows, r), c));
                printf("%s%-*s", c ? " | " : "", (int)w[c], cell.data);
            }
            printf("\n");
        }
        printf("(%zu row%s)\n", nr, nr == 1 ? "" : "s");
    } else {
        printf("rows affected: %lld, last insert id: %lld\n",
               (long long)json_integer_value(json_object_get(result, "rows_affected")),
               (long long)json_integer_value(json_object_get(result, "last_insert_id")));
    }
    mr_buf_close(&cell);
    mr_free(w);
}

static json_t *param_value(const char *arg)
{
    json_error_t jerr;
    json_t *v = json_loads(arg, JSON_DECODE_ANY, &jerr);

    if (v && !json_is_array(v) && !json_is_object(v))
        return v;
    json_decref(v);
    return json_string(arg);
}

int cmd_sql(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"node", required_argument, NULL, 'n'},    {"dir", required_argument, NULL, 'd'},
        {"region", required_argument, NULL, 'r'},  {"consistency", required_argument, NULL, 'c'},
        {"token", required_argument, NULL, 't'},   {"idempotency-key", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
        {"auth-token", required_argument, NULL, 'A'}, {NULL, 0, NULL, 0}};
    const char *node = NULL, *dir = NULL, *region = NULL, *consistency = NULL, *token = NULL,
               *ikey = NULL, *given = NULL;
    int as_json = 0, opt, rc, status = 1;
    char err[MR_ERRMSG_LEN], *url = NULL, *body;
    json_t *req, *stmts, *stmt = NULL, *params = NULL, *ans;
    struct http_result res;

    while ((opt = getopt_long(argc, argv, "n:d:r:c:t:k:jA:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'A': given = optarg; break;
        case 'n': node = optarg; break;
        case 'd': dir = optarg; break;
        case 'r': region = optarg; break;
        case 'c': consistency = optarg; break;
        case 't': token = optarg; break;
        case 'k': ikey = optarg; break;
        case 'j': as_json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc || (node == NULL && dir == NULL)) {
        usage(stderr);
        return 2;
    }
    if (node == NULL && (url = node_url_from_dir(dir, region, err)) == NULL) {
        fprintf(stderr, "meridian sql: %s\n", err);
        return 1;
    }
    req = json_object();
    stmts = json_array();
    for (int i = optind; i < argc; i++) {
        if (stmt == NULL || strcmp(argv[i], "--and") == 0) {
            if (strcmp(argv[i], "--and") == 0 && ++i >= argc)
                break;
            stmt = json_object();
            params = json_array();
            json_object_set_new(stmt, "sql", json_string(argv[i]));
            json_object_set_new(stmt, "params", params);
            json_array_append_new(stmts, stmt);
            continue;
        }
        json_array_append_new(params, param_value(argv[i]));
    }
    json_object_set_new(req, "statements", stmts);
    if (consistency)
        json_object_set_new(req, "consistency", json_string(consistency));
    if (token)
        json_object_set_new(req, "token", json_string(token));
    if (ikey)
        json_object_set_new(req, "idempotency_key", json_string(ikey));
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    {
        char *full = mr_asprintf("%s/v1/sql", node ? node : url);
        char *auth = mr_auth_client_token(given, dir), headers[MR_AUTH_HEADER_MAX + 64];
        struct tls_ctx *tls = NULL;
        mr_auth_header(auth, headers, sizeof(headers));
        strcat(headers, "Content-Type: application/json\r\n");
        /* https:// nodes: the admin certificate of RUNDIR, or $MERIDIAN_TLS_*. */
        rc = up_client_tls(dir, &tls, err);
        if (rc == 0)
            rc = http_fetch("POST", full, headers, body, strlen(body), 30000, &res, err);
        up_client_tls_free(tls);
        mr_free(auth);
        mr_free(full);
    }
    free(body);
    mr_free(url);
    if (rc != 0) {
        fprintf(stderr, "meridian sql: %s\n", err);
        return 1;
    }
    ans = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
    if (as_json || ans == NULL) {
        fwrite(res.body.data, 1, res.body.len, stdout);
        printf("\n");
        status = res.status == 200 ? 0 : 1;
    } else if (json_object_get(ans, "error")) {
        json_t *e = json_object_get(ans, "error");
        fprintf(stderr, "error %d %s: %s\n", res.status,
                json_string_value(json_object_get(e, "code")),
                json_string_value(json_object_get(e, "message")));
    } else {
        json_t *results = json_object_get(ans, "results");
        for (size_t i = 0; i < json_array_size(results); i++)
            print_table(json_array_get(results, i));
        printf("token %s, region %s", json_string_value(json_object_get(ans, "token")),
               json_string_value(json_object_get(ans, "region")));
        if (json_object_get(ans, "staleness_ms"))
            printf(", staleness <= %lld ms",
                   (long long)json_integer_value(json_object_get(ans, "staleness_ms")));
        printf("\n");
        status = 0;
    }
    json_decref(ans);
    http_result_close(&res);
    return status;
}
