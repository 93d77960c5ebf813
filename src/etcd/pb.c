/* pb.c -- the protobuf subset the gRPC transport needs (see etcd_int.h for
 * the messages and field numbers), and gRPC's message framing.
 *
 * Protobuf wire format (https://protobuf.dev/programming-guides/encoding/):
 * each field is a varint key (field_number << 3 | wire_type) followed by a
 * varint (type 0), 8 bytes (1), a varint length and that many bytes (2), or
 * 4 bytes (5).  Types 3 and 4 (groups) are not used by etcd and are refused.
 * Unknown fields are skipped; a known field with an unexpected wire type is
 * an error.  Everything read here comes from the network, so every length
 * is checked against the bytes left and nothing is asserted.
 */
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "etcd_int.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* ---- encoding ------------------------------------------------------------ */

static void put_varint(struct mr_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;

    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    mr_buf_append(b, tmp, n);
}

void etcd__pb_varint_field(struct mr_buf *b, uint32_t field, uint64_t v)
{
    put_varint(b, (uint64_t)field << 3 | WT_VARINT);
    put_varint(b, v);
}

void etcd__pb_bytes_field(struct mr_buf *b, uint32_t field, const void *p, size_t n)
{
    put_varint(b, (uint64_t)field << 3 | WT_LEN);
    put_varint(b, n);
    mr_buf_append(b, p, n);
}

/* ---- decoding ------------------------------------------------------------ */

struct field {
    uint32_t num;
    int wt;
    uint64_t v;               /* WT_VARINT, WT_I64, WT_I32 */
    const uint8_t *p;         /* WT_LEN */
    size_t n;
};

struct reader {
    const uint8_t *p, *end;
};

static int get_varint(struct reader *r, uint64_t *out)
{
    uint64_t v = 0;

    /* At most 10 bytes; the 10th may only carry the top bit. */
    for (int i = 0; i < 10; i++) {
        uint8_t c;

        if (r->p == r->end)
            return MR_EPROTO;
        c = *r->p++;
        if (i == 9 && c > 1)
            return MR_EPROTO;
        v |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return MR_EPROTO;
}

/* 1: a field in *f; 0: end of message; MR_EPROTO: malformed. */
static int next_field(struct reader *r, struct field *f)
{
    uint64_t key, len;

    if (r->p == r->end)
        return 0;
    if (get_varint(r, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return MR_EPROTO;
    f->num = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    switch (f->wt) {
    case WT_VARINT:
        return get_varint(r, &f->v) == 0 ? 1 : MR_EPROTO;
    case WT_I64:
        if (r->end - r->p < 8)
            return MR_EPROTO;
        f->v = 0;
        for (int i = 7; i >= 0; i--)
            f->v = f->v << 8 | r->p[i];
        r->p += 8;
        return 1;
    case WT_I32:
        if (r->end - r->p < 4)
            return MR_EPROTO;
        f->v = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 |
               (uint64_t)r->p[3] << 24;
        r->p += 4;
        return 1;
    case WT_LEN:
        if (get_varint(r, &len) != 0 || len > (uint64_t)(r->end - r->p))
            return MR_EPROTO;
        f->p = r->p;
        f->n = (size_t)len;
        r->p += len;
        return 1;
    default:
        return MR_EPROTO;
    }
}

static void reader_init(struct reader *r, const void *p, size_t n)
{
    r->p = p;
    r->end = r->p + n;
}

static int want(const struct field *f, int wt)
{
    return f->wt == wt;
}

static int decode_header(const uint8_t *p, size_t n, struct etcd__pb_header *h)
{
    struct reader rd;
    struct field f;
    int frc;

    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        if (f.num >= 1 && f.num <= 4 && !want(&f, WT_VARINT))
            goto bad;
        if (f.num == 1)
            h->cluster_id = f.v;
        else if (f.num == 2)
            h->member_id = f.v;
        else if (f.num == 3)
            h->revision = (int64_t)f.v;
        else if (f.num == 4)
            h->raft_term = f.v;
    }
    if (frc < 0)
        goto bad;
    return 0;
bad:
    return MR_EPROTO;
}

/* A KeyValue, pointing into the input. */
struct raw_kv {
    const uint8_t *key, *value;
    size_t key_len, value_len;
    int64_t create_revision, mod_revision, version;
};

static int decode_kv(const uint8_t *p, size_t n, struct raw_kv *kv)
{
    struct reader rd;
    struct field f;
    int frc;

    memset(kv, 0, sizeof(*kv));
    kv->key = kv->value = (const uint8_t *)"";
    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        switch (f.num) {
        case 1:
        case 5:
            if (!want(&f, WT_LEN))
                goto bad;
            if (f.num == 1) {
                kv->key = f.p;
                kv->key_len = f.n;
            } else {
                kv->value = f.p;
                kv->value_len = f.n;
            }
            break;
        case 2:
        case 3:
        case 4:
        case 6:
            if (!want(&f, WT_VARINT))
                goto bad;
            if (f.num == 2)
                kv->create_revision = (int64_t)f.v;
            else if (f.num == 3)
                kv->mod_revision = (int64_t)f.v;
            else if (f.num == 4)
                kv->version = (int64_t)f.v;
            break;
        default:
            break;
        }
    }
    if (frc < 0)
        goto bad;
    return 0;
bad:
    return MR_EPROTO;
}

/* Event: 1 type, 2 kv.  *is_put is 0 for DELETE (and unknown types). */
static int decode_event(const uint8_t *p, size_t n, struct raw_kv *kv, int *is_put)
{
    struct reader rd;
    struct field f;
    int frc;
    int have_kv = 0;

    *is_put = 1;
    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        if (f.num == 1) {
            if (!want(&f, WT_VARINT))
                goto bad;
            *is_put = f.v == 0;
        } else if (f.num == 2) {
            if (!want(&f, WT_LEN) || decode_kv(f.p, f.n, kv) != 0)
                goto bad;
            have_kv = 1;
        }
    }
    if (frc < 0)
        goto bad;
    /* An event without its key-value is of no use to anyone. */
    return have_kv ? 0 : MR_EPROTO;
bad:
    return MR_EPROTO;
}

/* Collect the KeyValues in field <num> of the message <p>/<n> (each one a
 * KeyValue, or an Event when <events>) into one allocation: the etcd_kv
 * array, then every key and value, each followed by a NUL. */
static int collect_kvs(const uint8_t *p, size_t n, uint32_t num, int events, struct etcd_kv **out,
                       size_t *n_out)
{
    struct reader rd;
    struct field f;
    int frc;
    struct raw_kv kv;
    size_t count = 0, bytes = 0, i = 0;
    struct etcd_kv *arr;
    char *w;
    int is_put;

    *out = NULL;
    *n_out = 0;
    /* Pass 1: validate and size. */
    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        if (f.num != num)
            continue;
        if (!want(&f, WT_LEN))
            goto bad;
        if ((events ? decode_event(f.p, f.n, &kv, &is_put) : decode_kv(f.p, f.n, &kv)) != 0)
            goto bad;
        if (events && !is_put)
            continue;
        count++;
        bytes += kv.key_len + kv.value_len + 2;
    }
    if (frc < 0)
        goto bad;
    if (count == 0)
        return 0;
    arr = mr_malloc(count * sizeof(*arr) + bytes);
    w = (char *)(arr + count);
    /* Pass 2: the input is known good. */
    reader_init(&rd, p, n);
    while (next_field(&rd, &f) == 1) {
        if (f.num != num)
            continue;
        if (events) {
            if (decode_event(f.p, f.n, &kv, &is_put) != 0 || !is_put)
                continue;
        } else if (decode_kv(f.p, f.n, &kv) != 0) {
            continue;
        }
        arr[i].key = w;
        arr[i].key_len = kv.key_len;
        memcpy(w, kv.key, kv.key_len);
        w[kv.key_len] = '\0';
        w += kv.key_len + 1;
        arr[i].value = w;
        arr[i].value_len = kv.value_len;
        memcpy(w, kv.value, kv.value_len);
        w[kv.value_len] = '\0';
        w += kv.value_len + 1;
        arr[i].create_revision = kv.create_revision;
        arr[i].mod_revision = kv.mod_revision;
        arr[i].version = kv.version;
        i++;
    }
    *out = arr;
    *n_out = i;
    return 0;
bad:
    return MR_EPROTO;
}

/* Field 1 of every response is the ResponseHeader. */
static int header_field(const struct field *f, struct etcd__pb_header *h)
{
    if (!want(f, WT_LEN))
        return MR_EPROTO;
    return decode_header(f->p, f->n, h);
}

int etcd__pb_decode_header_only(const void *p, size_t n, struct etcd__pb_header *out, char *err)
{
    struct reader rd;
    struct field f;
    int frc;

    memset(out, 0, sizeof(*out));
    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        if (f.num == 1 && header_field(&f, out) != 0)
            goto bad;
    }
    if (frc < 0)
        goto bad;
    return 0;
bad:
    return mr_seterr(err, MR_EPROTO, "malformed response message (%zu bytes)", n);
}

int etcd__pb_decode_range(const void *p, size_t n, struct etcd__pb_range *out, char *err)
{
    struct reader rd;
    struct field f;
    int frc;

    memset(out, 0, sizeof(*out));
    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        if (f.num == 1 && header_field(&f, &out->header) != 0)
            goto bad;
    }
    if (frc < 0)
        goto bad;
    if (collect_kvs(p, n, 2, 0, &out->kvs, &out->n_kvs) != 0)
        goto bad;
    return 0;
bad:
    return mr_seterr(err, MR_EPROTO, "malformed RangeResponse (%zu bytes)", n);
}

int etcd__pb_decode_status(const void *p, size_t n, struct etcd__pb_status *out, char *err)
{
    struct reader rd;
    struct field f;
    int frc;

    memset(out, 0, sizeof(*out));
    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        switch (f.num) {
        case 1:
            if (header_field(&f, &out->header) != 0)
                goto bad;
            break;
        case 3:
        case 4:
        case 5:
            if (!want(&f, WT_VARINT))
                goto bad;
            if (f.num == 3)
                out->db_size = (int64_t)f.v;
            else if (f.num == 4)
                out->leader = f.v;
            else
                out->raft_index = f.v;
            break;
        default:
            break;
        }
    }
    if (frc < 0)
        goto bad;
    return 0;
bad:
    return mr_seterr(err, MR_EPROTO, "malformed StatusResponse (%zu bytes)", n);
}

int etcd__pb_decode_watch(const void *p, size_t n, struct etcd__pb_watch *out, char *err)
{
    struct reader rd;
    struct field f;
    int frc;

    memset(out, 0, sizeof(*out));
    reader_init(&rd, p, n);
    while ((frc = next_field(&rd, &f)) == 1) {
        switch (f.num) {
        case 1:
            if (header_field(&f, &out->header) != 0)
                goto bad;
            break;
        case 2:
        case 3:
        case 4:
        case 5:
            if (!want(&f, WT_VARINT))
                goto bad;
            if (f.num == 2)
                out->watch_id = (int64_t)f.v;
            else if (f.num == 3)
                out->created = f.v != 0;
            else if (f.num == 4)
                out->canceled = f.v != 0;
            else
                out->compact_revision = (int64_t)f.v;
            break;
        case 6:
            if (!want(&f, WT_LEN))
                goto bad;
            snprintf(out->cancel_reason, sizeof(out->cancel_reason), "%.*s",
                     (int)(f.n < sizeof(out->cancel_reason) ? f.n : sizeof(out->cancel_reason)),
                     (const char *)f.p);
            break;
        default:
            break;
        }
    }
    if (frc < 0)
        goto bad;
    if (collect_kvs(p, n, 11, 1, &out->kvs, &out->n_kvs) != 0)
        goto bad;
    return 0;
bad:
    return mr_seterr(err, MR_EPROTO, "malformed WatchResponse (%zu bytes)", n);
}

/* ---- gRPC framing ---------------------------------------------------------- */

int etcd__grpc_frame_next(const uint8_t *p, size_t n, size_t max, const uint8_t **msg,
                          size_t *msg_len, size_t *consumed, char *err)
{
    uint32_t len;

    if (n < ETCD__GRPC_PREFIX)
        return 0;
    if (p[0] != 0)
        return mr_seterr(err, MR_EPROTO, "gRPC message with compressed flag %u (none negotiated)",
                         p[0]);
    len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (len > max)
        return mr_seterr(err, MR_EPROTO, "gRPC message of %u bytes (limit %zu)", len, max);
    if (n - ETCD__GRPC_PREFIX < len)
        return 0;
    *msg = p + ETCD__GRPC_PREFIX;
    *msg_len = len;
    *consumed = ETCD__GRPC_PREFIX + (size_t)len;
    return 1;
}

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_DATA_LOSS = 15,
};

int etcd__grpc_status_rc(int status, const char *message, int *retry)
{
    *retry = 0;
    if (status == GRPC_OK)
        return 0;
    /* The gateway retries on HTTP 5xx.  grpc-gateway maps to 5xx exactly
     * UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and
     * DATA_LOSS; etcd's "no leader", "request timed out", "leader changed",
     * "server stopped" are UNAVAILABLE.  Keep the same rule so that the two
     * transports fail over alike. */
    switch (status) {
    case GRPC_UNKNOWN:
    case GRPC_DEADLINE_EXCEEDED:
    case GRPC_UNIMPLEMENTED:
    case GRPC_INTERNAL:
    case GRPC_UNAVAILABLE:
    case GRPC_DATA_LOSS:
        *retry = 1;
        return MR_EUNAVAIL;
    default:
        break;
    }
    /* Belt and braces: whatever code a future etcd gives "no leader". */
    if (message && strstr(message, "no leader")) {
        *retry = 1;
        return MR_EUNAVAIL;
    }
    return MR_EPROTO;
}
