/* util.c -- helpers shared by the server, the client and http_fetch: reason
 * phrases, URL splitting, the cached Date header, request lookups. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../common/alloc.h"
#include "../common/util.h"
#include "../common/err.h"
#include "http_int.h"

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    /* RFC 9110 15: an unknown code is understood as the x00 of its class;
     * the reason phrase is informational only. */
    switch (status / 100) {
    case 1: return "Informational";
    case 2: return "Success";
    case 3: return "Redirection";
    case 4: return "Client Error";
    case 5: return "Server Error";
    }
    return "Unknown";
}

int http_url_is_https(const char *url)
{
    return strncasecmp(url, "https://", 8) == 0;
}

int http_parse_url(const char *url, char **host, int *port, char **path, char *err)
{
    struct http_parser_url u;
    size_t len = strlen(url);
    const char *p;
    struct mr_buf b;

    *host = NULL;
    *path = NULL;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, len, 0, &u) != 0)
        return mr_seterr(err, MR_EINVAL, "bad URL \"%s\"", url);
    if (!(u.field_set & (1 << UF_SCHEMA)) ||
        !((u.field_data[UF_SCHEMA].len == 4 &&
           strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4) == 0) ||
          (u.field_data[UF_SCHEMA].len == 5 &&
           strncasecmp(url + u.field_data[UF_SCHEMA].off, "https", 5) == 0)))
        return mr_seterr(err, MR_EINVAL, "URL \"%s\": only http:// and https:// are supported",
                         url);
    if (!(u.field_set & (1 << UF_HOST)) || u.field_data[UF_HOST].len == 0)
        return mr_seterr(err, MR_EINVAL, "URL \"%s\" has no host", url);
    if (u.field_set & (1 << UF_USERINFO))
        return mr_seterr(err, MR_EINVAL, "URL \"%s\": user info is not supported", url);
    /* http_parser_parse_url checks the port's digits and range (1-65535). */
    *port = (u.field_set & (1 << UF_PORT)) ? u.port : u.field_data[UF_SCHEMA].len == 5 ? 443 : 80;

    mr_buf_init(&b);
    if (u.field_set & (1 << UF_PATH)) {
        p = url + u.field_data[UF_PATH].off;
        mr_buf_append(&b, p, u.field_data[UF_PATH].len);
    } else {
        mr_buf_putc(&b, '/');
    }
    if (u.field_set & (1 << UF_QUERY)) {
        mr_buf_putc(&b, '?');
        mr_buf_append(&b, url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
    /* The field for "[::1]" excludes the brackets: we hand back the bare
     * literal, as struct http_client_request expects. */
    *host = mr_strndup(url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
    *path = mr_buf_steal(&b, NULL);
    return 0;
}

const char *http__date_get(struct http__date *d)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    int n;

    if ((long)now == d->sec)
        return d->line;
    gmtime_r(&now, &tm);
    n = snprintf(d->line, sizeof(d->line), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
    d->len = (n > 0 && (size_t)n < sizeof(d->line)) ? (size_t)n : 0;
    d->sec = (long)now;
    return d->line;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *http_response_header(const struct http_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

void http_response_cookie(const struct http_response *resp, const char *name, char *out,
                          size_t size)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < resp->n_headers; i++) {
        const char *v = resp->headers[i].value;
        size_t len;
        if (strcasecmp(resp->headers[i].name, "Set-Cookie") != 0 || strncmp(v, name, n) != 0 ||
            v[n] != '=')
            continue;
        v += n + 1;
        len = strcspn(v, ";");
        if (len < size) {
            memcpy(out, v, len);
            out[len] = '\0';
        }
    }
}

/* Percent-decode <n> bytes into <out>; '+' is a space, as in HTML form
 * encoding, which is what clients put in query strings.  A '%' not followed
 * by two hex digits is kept as is rather than rejected: lookups should not
 * fail on a sloppy client. */
static void query_decode(struct mr_buf *out, const char *s, size_t n)
{
    mr_buf_reserve(out, n + 1);
    out->len += mr_percent_decode(out->data + out->len, s, n, 1);
    out->data[out->len] = '\0';
}

/* RFC 6265 section 5.4: "name=value" pairs separated by "; ". */
int http_cookie_get(const char *header, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    const char *p = header;

    while (p && *p) {
        const char *end = strchr(p, ';'), *v;
        size_t len;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            v = p + nlen + 1;
            len = end ? (size_t)(end - v) : strlen(v);
            while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                len--;
            if (len >= 2 && v[0] == '"' && v[len - 1] == '"')
                v++, len -= 2;
            if (len + 1 > size)
                return 0;
            memcpy(out, v, len);
            out[len] = '\0';
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

int http_request_query(const struct http_request *req, const char *name, struct mr_buf *out)
{
    const char *q = req->query;
    struct mr_buf key;
    int found = 0;

    mr_buf_init(&key);
    while (*q) {
        const char *end = strchr(q, '&');
        const char *eq;
        size_t len = end ? (size_t)(end - q) : strlen(q);

        eq = memchr(q, '=', len);
        mr_buf_reset(&key);
        query_decode(&key, q, eq ? (size_t)(eq - q) : len);
        if (key.len > 0 && strcmp(key.data, name) == 0) {
            mr_buf_reset(out);
            if (eq)
                query_decode(out, eq + 1, len - (size_t)(eq + 1 - q));
            else
                mr_buf_append(out, "", 0);
            found = 1;
            break;
        }
        if (end == NULL)
            break;
        q = end + 1;
    }
    mr_buf_close(&key);
    return found;
}
