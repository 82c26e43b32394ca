/*
 * migrate.c - implements migrate.h: the table of keys locked while an admin
 * moves them to another shard. A few entries at most, so a linear search;
 * expired locks are released when met.
 */
#include "migrate.h"

#include <stdlib.h>
#include <string.h>

static tkv_migrate_entry *find(tkv_migrate *m, const uint8_t *key, size_t klen)
{
    for (uint32_t i = 0; i < TKV_MIGRATE_LOCKS; i++) {
        tkv_migrate_entry *l = &m->locks[i];
        if (l->key && l->klen == klen && memcmp(l->key, key, klen) == 0)
            return l;
    }
    return NULL;
}

static void release(tkv_migrate *m, tkv_migrate_entry *l)
{
    free(l->key);
    *l = (tkv_migrate_entry){0};
    m->n--;
}

int tkv_migrate_lock(tkv_migrate *m, const uint8_t *key, size_t klen, uint64_t now)
{
    tkv_migrate_entry *l = find(m, key, klen), *free_slot = NULL;
    if (l) {
        l->until = now + TKV_MIGRATE_LOCK_US;
        return 0;
    }
    for (uint32_t i = 0; i < TKV_MIGRATE_LOCKS && !free_slot; i++) {
        tkv_migrate_entry *e = &m->locks[i];
        if (e->key && e->until <= now)
            release(m, e);
        if (!e->key)
            free_slot = e;
    }
    if (!free_slot || !(free_slot->key = malloc(klen ? klen : 1)))
        return -1;
    memcpy(free_slot->key, key, klen);
    free_slot->klen = klen;
    free_slot->until = now + TKV_MIGRATE_LOCK_US;
    m->n++;
    return 0;
}

bool tkv_migrate_locked(tkv_migrate *m, const uint8_t *key, size_t klen, uint64_t now)
{
    if (m->n == 0)
        return false;
    tkv_migrate_entry *l = find(m, key, klen);
    if (l && l->until <= now) {
        release(m, l);
        l = NULL;
    }
    return l != NULL;
}

void tkv_migrate_unlock(tkv_migrate *m, const uint8_t *key, size_t klen)
{
    tkv_migrate_entry *l = m->n ? find(m, key, klen) : NULL;
    if (l)
        release(m, l);
}

void tkv_migrate_clear(tkv_migrate *m)
{
    for (uint32_t i = 0; i < TKV_MIGRATE_LOCKS; i++)
        if (m->locks[i].key)
            release(m, &m->locks[i]);
}
