/*
 * migrate.c - implements migrate.h: the table of keys exported for a move
 * and not dropped yet, locked for a while after each export. A few entries
 * at most, so a linear search.
 */
#include "migrate.h"

#include <stdlib.h>
#include <string.h>

static tkv_migrate_entry *find(const tkv_migrate *m, const uint8_t *key, size_t klen)
{
    if (m->n == 0)
        return NULL;
    for (uint32_t i = 0; i < TKV_MIGRATE_LOCKS; i++) {
        const tkv_migrate_entry *l = &m->locks[i];
        if (l->key && l->klen == klen && memcmp(l->key, key, klen) == 0)
            return (tkv_migrate_entry *)l;
    }
    return NULL;
}

static void release(tkv_migrate *m, tkv_migrate_entry *l)
{
    free(l->key);
    *l = (tkv_migrate_entry){0};
    m->n--;
}

/* A new entry for key in a free place, or NULL (full, or no memory). */
static tkv_migrate_entry *add(tkv_migrate *m, const uint8_t *key, size_t klen)
{
    for (uint32_t i = 0; i < TKV_MIGRATE_LOCKS; i++) {
        tkv_migrate_entry *e = &m->locks[i];
        if (e->key)
            continue;
        if (!(e->key = malloc(klen ? klen : 1)))
            return NULL;
        memcpy(e->key, key, klen);
        e->klen = klen;
        m->n++;
        return e;
    }
    return NULL;
}

int tkv_migrate_lock(tkv_migrate *m, const uint8_t *key, size_t klen, uint64_t now)
{
    tkv_migrate_entry *l = find(m, key, klen);
    if (!l && !(l = add(m, key, klen)))
        return -1;
    l->until = now + TKV_MIGRATE_LOCK_US;
    return 0;
}

bool tkv_migrate_locked(const tkv_migrate *m, const uint8_t *key, size_t klen, uint64_t now)
{
    const tkv_migrate_entry *l = find(m, key, klen);
    return l && l->until > now;
}

bool tkv_migrate_marked(const tkv_migrate *m, const uint8_t *key, size_t klen)
{
    return find(m, key, klen) != NULL;
}

void tkv_migrate_unlock(tkv_migrate *m, const uint8_t *key, size_t klen)
{
    tkv_migrate_entry *l = find(m, key, klen);
    if (l)
        release(m, l);
}

void tkv_migrate_clear(tkv_migrate *m)
{
    for (uint32_t i = 0; i < TKV_MIGRATE_LOCKS; i++)
        if (m->locks[i].key)
            release(m, &m->locks[i]);
}

void tkv_migrate_retain(tkv_migrate *m, bool (*keep)(void *ctx, const uint8_t *key, size_t klen),
                        void *ctx)
{
    for (uint32_t i = 0; i < TKV_MIGRATE_LOCKS && m->n; i++)
        if (m->locks[i].key && !keep(ctx, m->locks[i].key, m->locks[i].klen))
            release(m, &m->locks[i]);
}
