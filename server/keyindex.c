/*
 * keyindex.c - implements the skiplist + hash index of keyindex.h.
 *
 * The skiplist follows Pugh (and Redis's t_zset.c): a level is added with
 * probability 1/4, so an entry carries 1.33 forward pointers on average and
 * a search touches about 2 * log4(n) nodes. It is only walked in order or
 * searched when an entry is added or removed; point lookups use the hash
 * table, which resizes at 3/4 load and deletes by backward shift so no
 * tombstones accumulate.
 */
#include "keyindex.h"

#include <assert.h>
#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bigmem.h"
#include "clock.h"
#include "siphash.h"

int tkv_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int random_level(tkv_keyindex *ix)
{
    /* xorshift64*: two bits per level give p = 1/4. */
    ix->rng ^= ix->rng >> 12;
    ix->rng ^= ix->rng << 25;
    ix->rng ^= ix->rng >> 27;
    uint64_t r = ix->rng * 0x2545F4914F6CDD1DULL;
    int level = 1;
    while ((r & 3) == 0 && level < TKV_SKIPLIST_MAXLEVEL) {
        level++;
        r >>= 2;
    }
    return level;
}

static void seed(tkv_keyindex *ix)
{
    uint64_t s[3] = {0, 0, 0};
    if (getrandom(s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        uint64_t us = tkv_clock_realtime_us();
        s[0] = us % 1000000u * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)ix;
        s[1] = us / 1000000u ^ 0xD1B54A32D192ED03ULL;
        s[2] = s[0] ^ s[1];
    }
    ix->sip[0] = s[0];
    ix->sip[1] = s[1];
    ix->rng = s[2] | 1;
}

int tkv_keyindex_init(tkv_keyindex *ix)
{
    memset(ix, 0, sizeof *ix);
    seed(ix);
    ix->head = calloc(1, sizeof(tkv_kentry) + TKV_SKIPLIST_MAXLEVEL * sizeof(uintptr_t));
    ix->tab = calloc(64, sizeof(tkv_hslot));
    if (!ix->head || !ix->tab) {
        free(ix->head);
        free(ix->tab);
        return -1;
    }
    ix->head->link[0] = TKV_SKIPLIST_MAXLEVEL - 1; /* its height */
    ix->level = 1;
    ix->mask = 63;
    ix->bytes = malloc_usable_size(ix->head) + malloc_usable_size(ix->tab);
    return 0;
}

void tkv_keyindex_deinit(tkv_keyindex *ix)
{
    if (!ix || !ix->head)
        return;
    tkv_kentry *e = tkv_keyindex_first(ix);
    while (e) {
        tkv_kentry *n = tkv_keyindex_next(e);
        tkv_vpage_free(e->page);
        free(e->meta);
        free(e);
        e = n;
    }
    free(ix->head);
    free(ix->tab);
    memset(ix, 0, sizeof *ix);
}

static int same_key(const tkv_kentry *e, const uint8_t *key, size_t klen)
{
    return e->klen == klen && memcmp(tkv_kentry_key(e), key, klen) == 0;
}

/* The table's slots: an entry with the top bits of its hash as a tag
 * (keyindex.h). The index uses the low bits, so the tag adds what the
 * position does not say. */
static_assert(_Alignof(max_align_t) >= ((size_t)1 << TKV_HTAG_BITS),
              "malloc'd entries leave the tag bits zero");

static tkv_hslot slot_of(uint64_t h, const tkv_kentry *e)
{
    return (uintptr_t)e | tkv_hslot_tag(h);
}

static uint64_t entry_hash(const tkv_keyindex *ix, const tkv_kentry *e)
{
    return tkv_siphash(ix->sip, tkv_kentry_key(e), e->klen);
}

uint64_t tkv_keyindex_hash(const tkv_keyindex *ix, const uint8_t *key, size_t klen)
{
    return tkv_siphash(ix->sip, key, klen);
}

tkv_kentry *tkv_keyindex_find(const tkv_keyindex *ix, const uint8_t *key, size_t klen)
{
    uint64_t h = tkv_siphash(ix->sip, key, klen);
    uintptr_t tag = tkv_hslot_tag(h);
    for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
        tkv_hslot s = ix->tab[i];
        if (!s)
            return NULL;
        if ((s & TKV_HTAG_MASK) == tag && same_key(tkv_hslot_entry(s), key, klen))
            return tkv_hslot_entry(s);
    }
}

static void table_put(tkv_hslot *tab, size_t mask, uint64_t h, tkv_kentry *e)
{
    size_t i = h & mask;
    while (tab[i])
        i = (i + 1) & mask;
    tab[i] = slot_of(h, e);
}

/* Doubles the table. Every key's hash is computed again (the slots keep
 * only 4 bits of it): a cost paid once per doubling, against 8 bytes per
 * slot saved all the time. */
static int table_grow(tkv_keyindex *ix)
{
    size_t ncap = (ix->mask + 1) * 2;
    tkv_hslot *nt = tkv_bigmem_calloc(ncap, sizeof *nt);
    if (!nt)
        return -1;
    for (size_t i = 0; i <= ix->mask; i++)
        if (ix->tab[i]) {
            tkv_kentry *e = tkv_hslot_entry(ix->tab[i]);
            table_put(nt, ncap - 1, entry_hash(ix, e), e);
        }
    ix->bytes -= malloc_usable_size(ix->tab);
    free(ix->tab);
    ix->tab = nt;
    ix->mask = ncap - 1;
    ix->bytes += malloc_usable_size(nt);
    return 0;
}

/* Backward-shift deletion keeps every probe chain unbroken. The hash of each
 * key it may shift is computed again rather than stored: removals are rare. */
static void table_del(tkv_keyindex *ix, const tkv_kentry *e)
{
    size_t i = entry_hash(ix, e) & ix->mask;
    while (tkv_hslot_entry(ix->tab[i]) != e)
        i = (i + 1) & ix->mask;
    for (;;) {
        ix->tab[i] = 0;
        size_t j = i;
        for (;;) {
            j = (j + 1) & ix->mask;
            if (!ix->tab[j])
                return;
            size_t home = entry_hash(ix, tkv_hslot_entry(ix->tab[j])) & ix->mask;
            /* Move j into the hole at i unless its home lies in (i, j]. */
            if (((j - home) & ix->mask) >= ((j - i) & ix->mask))
                break;
        }
        ix->tab[i] = ix->tab[j];
        i = j;
    }
}

/* The skiplist's links: level 0 keeps its entry's height in the tag bits. */
static_assert(TKV_SKIPLIST_MAXLEVEL <= 16 && _Alignof(max_align_t) >= 16,
              "the height fits the low bits malloc's alignment leaves zero");

static tkv_kentry *link_at(const tkv_kentry *x, int l)
{
    return l ? (tkv_kentry *)x->link[l] : tkv_keyindex_next(x);
}

static void set_link(tkv_kentry *x, int l, const tkv_kentry *to)
{
    x->link[l] = (uintptr_t)to | (l ? 0 : x->link[0] & TKV_KENTRY_LINK_TAG);
}

/* Fills update[] with the last node before key on each level. */
static tkv_kentry *find_preds(const tkv_keyindex *ix, const uint8_t *key, size_t klen,
                              tkv_kentry **update)
{
    tkv_kentry *x = ix->head;
    for (int l = ix->level - 1; l >= 0; l--) {
        tkv_kentry *n;
        while ((n = link_at(x, l)) && tkv_key_cmp(tkv_kentry_key(n), n->klen, key, klen) < 0)
            x = n;
        if (update)
            update[l] = x;
    }
    return link_at(x, 0);
}

tkv_kentry *tkv_keyindex_insert(tkv_keyindex *ix, const uint8_t *key, size_t klen)
{
    if ((ix->count + 1) * 4 > (ix->mask + 1) * 3 && table_grow(ix) < 0)
        return NULL;
    tkv_kentry *update[TKV_SKIPLIST_MAXLEVEL];
    find_preds(ix, key, klen, update);
    int h = random_level(ix);
    tkv_kentry *e = malloc(sizeof *e + (size_t)h * sizeof(uintptr_t) + klen);
    if (!e)
        return NULL;
    uint64_t hash = tkv_siphash(ix->sip, key, klen);
    e->page = NULL;
    e->meta = NULL;
    e->lo = 0;
    e->dirty_epoch = 0;
    e->klen = (uint16_t)klen;
    e->ref = 1;
    e->link[0] = (uintptr_t)(h - 1);
    memcpy((uint8_t *)&e->link[h], key, klen);
    if (h > ix->level) {
        for (int l = ix->level; l < h; l++)
            update[l] = ix->head;
        ix->level = h;
    }
    for (int l = 0; l < h; l++) {
        set_link(e, l, link_at(update[l], l));
        set_link(update[l], l, e);
    }
    table_put(ix->tab, ix->mask, hash, e);
    ix->count++;
    ix->bytes += malloc_usable_size(e);
    return e;
}

void tkv_keyindex_remove(tkv_keyindex *ix, tkv_kentry *e)
{
    tkv_kentry *update[TKV_SKIPLIST_MAXLEVEL];
    find_preds(ix, tkv_kentry_key(e), e->klen, update);
    for (int l = 0; l < (int)tkv_kentry_height(e); l++)
        if (link_at(update[l], l) == e)
            set_link(update[l], l, link_at(e, l));
    while (ix->level > 1 && !link_at(ix->head, ix->level - 1))
        ix->level--;
    table_del(ix, e);
    ix->count--;
    ix->bytes -= malloc_usable_size(e);
    free(e);
}

tkv_kentry *tkv_keyindex_seek(const tkv_keyindex *ix, const uint8_t *key, size_t klen)
{
    return find_preds(ix, key, klen, NULL);
}
