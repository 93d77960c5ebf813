/* ratelimit.c -- per-client token buckets with a bounded, LRU-evicted table
 * (see edge.h).
 *
 * Each client address has a bucket of at most <burst> tokens, refilled at
 * <rate> tokens a second; a request takes one.  The table holds at most
 * <max_clients> buckets: a new client evicts the least recently seen one,
 * whose next request starts again with a full bucket.  So memory is bounded
 * whatever the number of addresses an attacker has, and an address that
 * was evicted gains at most one burst.
 *
 * Lookup is a chained hash over the address text (FNV-1a); the LRU order is
 * a doubly linked list, most recent first.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/alloc.h"
#include "../common/err.h"
#include "edge.h"

struct bucket {
    char key[HTTP_PEER_MAX];
    double tokens;
    int64_t last_us;
    struct bucket *hnext;            /* hash chain */
    struct bucket *prev, *next;      /* LRU list */
};

struct edge_rl {
    double rate, burst;
    size_t max, n;
    struct bucket **table;
    size_t mask;                     /* buckets in <table> - 1 (a power of two) */
    struct bucket *head, *tail;      /* most and least recently used */
    uint64_t evictions;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int edge_rl_new(double rate, double burst, size_t max_clients, struct edge_rl **out)
{
    struct edge_rl *rl;
    size_t nb = 16;

    if (!(rate > 0) || !(burst >= 1) || max_clients == 0)
        return MR_EINVAL;
    while (nb < 2 * max_clients)
        nb <<= 1;
    rl = mr_calloc(1, sizeof(*rl));
    rl->rate = rate;
    rl->burst = burst;
    rl->max = max_clients;
    rl->table = mr_calloc(nb, sizeof(*rl->table));
    rl->mask = nb - 1;
    *out = rl;
    return 0;
}

void edge_rl_free(struct edge_rl *rl)
{
    struct bucket *b, *next;

    if (rl == NULL)
        return;
    for (b = rl->head; b != NULL; b = next) {
        next = b->next;
        mr_free(b);
    }
    mr_free(rl->table);
    mr_free(rl);
}

static void lru_unlink(struct edge_rl *rl, struct bucket *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        rl->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        rl->tail = b->prev;
    b->prev = b->next = NULL;
}

static void lru_push(struct edge_rl *rl, struct bucket *b)
{
    b->prev = NULL;
    b->next = rl->head;
    if (rl->head)
        rl->head->prev = b;
    rl->head = b;
    if (rl->tail == NULL)
        rl->tail = b;
}

static void hash_remove(struct edge_rl *rl, struct bucket *b)
{
    struct bucket **pp = &rl->table[hash(b->key) & rl->mask];

    while (*pp != b)
        pp = &(*pp)->hnext;
    *pp = b->hnext;
}

int64_t edge_rl_take(struct edge_rl *rl, const char *client, int64_t now_us)
{
    size_t slot = hash(client) & rl->mask;
    struct bucket *b;

    for (b = rl->table[slot]; b != NULL; b = b->hnext)
        if (strcmp(b->key, client) == 0)
            break;
    if (b == NULL) {
        if (rl->n == rl->max) {
            b = rl->tail;
            lru_unlink(rl, b);
            hash_remove(rl, b);
            rl->evictions++;
        } else {
            b = mr_malloc(sizeof(*b));
            rl->n++;
        }
        memset(b, 0, sizeof(*b));
        snprintf(b->key, sizeof(b->key), "%s", client);
        b->tokens = rl->burst;
        b->last_us = now_us;
        b->hnext = rl->table[slot];
        rl->table[slot] = b;
    } else {
        lru_unlink(rl, b);
        if (now_us > b->last_us) {
            b->tokens += (double)(now_us - b->last_us) / 1e6 * rl->rate;
            if (b->tokens > rl->burst)
                b->tokens = rl->burst;
            b->last_us = now_us;
        }
    }
    lru_push(rl, b);
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 0;
    }
    /* Whole seconds until one token is back (Retry-After has no fractions). */
    return (int64_t)ceil((1 - b->tokens) / rl->rate);
}

size_t edge_rl_clients(const struct edge_rl *rl)
{
    return rl->n;
}

uint64_t edge_rl_evictions(const struct edge_rl *rl)
{
    return rl->evictions;
}
