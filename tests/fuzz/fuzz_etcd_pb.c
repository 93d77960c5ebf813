/* fuzz_etcd_pb.c -- etcd's protobuf answers and the gRPC framing around
 * them, as read from the network by the gRPC transport.  The first byte
 * chooses the message type, the rest is the message. */
#include <stdlib.h>

#include "common/alloc.h"
#include "common/err.h"
#include "etcd/etcd_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[MR_ERRMSG_LEN] = "";
    const uint8_t *p = data + 1, *msg;
    size_t n = size ? size - 1 : 0, msg_len, used;

    if (size == 0)
        return 0;
    switch (data[0] % 5) {
    case 0: {
        struct etcd__pb_header h;
        if (etcd__pb_decode_header_only(p, n, &h, err) != 0 && err[0] == '\0')
            abort();
        break;
    }
    case 1: {
        struct etcd__pb_range r;
        if (etcd__pb_decode_range(p, n, &r, err) == 0)
            mr_free(r.kvs);
        break;
    }
    case 2: {
        struct etcd__pb_status s;
        if (etcd__pb_decode_status(p, n, &s, err) != 0 && err[0] == '\0')
            abort();
        break;
    }
    case 3: {
        struct etcd__pb_watch w;
        if (etcd__pb_decode_watch(p, n, &w, err) == 0)
            mr_free(w.kvs);
        break;
    }
    default:
        while (n > 0 && etcd__grpc_frame_next(p, n, 1 << 20, &msg, &msg_len, &used, err) == 1) {
            if (used == 0 || used > n)
                abort(); /* the framer must always make progress inside the input */
            p += used;
            n -= used;
        }
        break;
    }
    return 0;
}
