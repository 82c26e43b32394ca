/*
 * fuzz_shardmap.c - libFuzzer target for the cluster's shard map parser
 * (server/shardmap.h): the input is the JSON a node gets from etcd or
 * --cluster-map, parsed as node "a".
 *
 * A refused map comes with a reason. An accepted one must be what the
 * parser promises: its ranges in slot order, from <= to, each starting
 * right after the one before, together covering slots 0-16383 exactly
 * once; every primary and replica address a non-empty "host:port"; and
 * tkv_shardmap_serves() answering every slot as its range says (this
 * node, or that range's primary).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "shardmap.h"

static bool addr_ok(const char *a) { return a && a[0] && strrchr(a, ':') && strrchr(a, ':') != a; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    tkv_shardmap *m = tkv_shardmap_parse((const char *)data, size, 7, "a", err, sizeof err);
    if (!m) {
        FUZZ_CHECK(err[0] != '\0', "a map refused without a reason");
        return 0;
    }
    FUZZ_CHECK(tkv_shardmap_revision(m) == 7, "revision");
    uint32_t n = tkv_shardmap_nranges(m), next = 0;
    FUZZ_CHECK(n >= 1 && n <= TKV_SLOTS, "%u ranges", n);
    for (uint32_t i = 0; i < n; i++) {
        tkv_shardmap_range r;
        tkv_shardmap_get_range(m, i, &r);
        FUZZ_CHECK(r.from == next && r.from <= r.to && r.to < TKV_SLOTS,
                   "range %u is [%u, %u] where slot %u was next", i, r.from, r.to, next);
        FUZZ_CHECK(addr_ok(r.primary) && r.shard, "range %u: primary", i);
        for (uint32_t k = 0; k < r.nreplicas; k++)
            FUZZ_CHECK(addr_ok(r.replicas[k]), "range %u: replica %u", i, k);
        for (uint32_t s = r.from; s <= r.to; s++) {
            const char *addr = NULL;
            if (!tkv_shardmap_serves(m, (uint16_t)s, &addr))
                FUZZ_CHECK(addr && strcmp(addr, r.primary) == 0, "slot %u sent elsewhere", s);
        }
        next = (uint32_t)r.to + 1;
    }
    FUZZ_CHECK(next == TKV_SLOTS, "slots from %u on uncovered", next);
    tkv_shardmap_free(m);
    return 0;
}
