/* fuzz_log_entry.c -- the decoder of a replicated log entry (a batch of
 * transactions read from etcd by every region).  A corrupt entry must be
 * refused with MR_ECORRUPT and a message, never crash a replica. */
#include <stdlib.h>

#include "common/err.h"
#include "fuzz.h"
#include "node/node_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[MR_ERRMSG_LEN];
    struct decoded d;

    err[0] = '\0';
    if (node__decode_batch((const char *)data, size, &d, err) != 0 && err[0] == '\0')
        abort();
    node__decoded_free(&d);
    return 0;
}
