/*
 * failover.c - implements failover.h with jansson. The map is edited as a
 * JSON tree, not rebuilt from shardmap.c's flattened form, so parts this
 * code does not know (a migration in flight, fields a later version adds)
 * pass through a take-over unchanged.
 */
#include "failover.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool copy_id(char *dst, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n == 0 || n > TKV_FAILOVER_ID_MAX)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

int tkv_failover_locate(const char *json, size_t len, const char *node_id, tkv_failover_self *self)
{
    memset(self, 0, sizeof *self);
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *shards = json_object_get(root, "shards");
    if (!json_is_object(shards)) {
        json_decref(root);
        return -1;
    }
    const char *sid;
    json_t *sh;
    json_object_foreach(shards, sid, sh)
    {
        const char *prim = json_string_value(json_object_get(sh, "primary"));
        bool mine = prim && strcmp(prim, node_id) == 0;
        size_t i;
        json_t *rep;
        json_array_foreach(json_object_get(sh, "replicas"), i, rep)
        {
            const char *r = json_string_value(rep);
            if (r && strcmp(r, node_id) == 0)
                mine = true;
        }
        if (mine && copy_id(self->shard, sid) && copy_id(self->leader, prim)) {
            self->found = true;
            self->nreplicas = (unsigned)json_array_size(json_object_get(sh, "replicas"));
            self->primary = strcmp(prim, node_id) == 0;
            break;
        }
    }
    json_decref(root);
    return 0;
}

bool tkv_failover_is_best(const tkv_failover_candidate *me, const tkv_failover_candidate *all,
                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].node_id, me->node_id) == 0)
            continue;
        if (all[i].offset > me->offset ||
            (all[i].offset == me->offset && strcmp(all[i].node_id, me->node_id) < 0))
            return false;
    }
    return true;
}

char *tkv_failover_candidacy(uint64_t offset)
{
    char *s = NULL;
    return asprintf(&s, "{\"offset\":%" PRIu64 "}", offset) < 0 ? NULL : s;
}

int tkv_failover_candidacy_parse(const char *json, size_t len, uint64_t *offset)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *off = json_object_get(root, "offset");
    int rc = json_is_integer(off) && json_integer_value(off) >= 0 ? 0 : -1;
    if (rc == 0)
        *offset = (uint64_t)json_integer_value(off);
    json_decref(root);
    return rc;
}

char *tkv_failover_promote(const char *json, size_t len, const char *shard, const char *node_id)
{
    char *out = NULL;
    json_t *root = json_loadb(json, len, JSON_PRESERVE_ORDER, NULL);
    json_t *sh = json_object_get(json_object_get(root, "shards"), shard);
    json_t *reps = json_object_get(sh, "replicas");
    const char *old = json_string_value(json_object_get(sh, "primary"));
    if (!old || !json_is_array(reps))
        goto done;
    size_t at = json_array_size(reps);
    for (size_t i = 0; i < json_array_size(reps); i++) {
        const char *r = json_string_value(json_array_get(reps, i));
        if (r && strcmp(r, node_id) == 0)
            at = i;
    }
    if (at == json_array_size(reps))
        goto done;
    /* The old primary heads the replicas: the next failover's first guess
     * of who may hold the most, and where a returning node finds itself. */
    json_t *was = json_string(old);
    if (!was || json_array_remove(reps, at) < 0 || json_array_insert_new(reps, 0, was) < 0 ||
        json_object_set_new(sh, "primary", json_string(node_id)) < 0)
        goto done;
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(root);
    return out;
}
