/*
 * memtab.c - the write buffer (see memtab.h): a skiplist of keys, in
 * which all versions of one tkv key share a single node.
 *
 * Why not one node per record, as LevelDB's memtable: a buffer big enough
 * to group many versions of a key into one chunk is far bigger than the
 * CPU's caches, and a skiplist search through it misses the cache at
 * nearly every step - measured, the insert alone cost more than LevelDB's
 * whole write path. So a version record (chunk.h's version encoding, prefix
 * P and timestamp) goes to its key's *group*: a skiplist node keyed by P,
 * found through a hash table only the writer uses, holding the key's
 * versions in a skiplist of their own, newest first. A version newer than
 * the key's others (time moving forward) goes in at the head at once, one a
 * little in the past after a few steps. The outer skiplist gets a node only
 * for a key new to this buffer, and for every record that is not a version
 * (metadata, server state).
 *
 * A drop (DEL of a whole key) gives the key's group a new, empty list of
 * versions, published as one pointer: readers from the drop on read the
 * new list, older readers the list they had, and nothing is copied or
 * walked however many versions the old list holds.
 *
 * Readers on other threads take no locks. Everything a reader can reach is
 * written before it is published with a release store, and never changed
 * afterwards except by another release store of a whole pointer or count:
 *  - a node (of either skiplist) is linked bottom level first;
 *  - a key's records, and a version's, form a chain, newest first; a new
 *    record points to the one it replaces and is then published as the
 *    chain's head.
 * A reader at sequence number S skips records newer than S, walking each
 * chain to the first record at or before S.
 *
 * Nodes sort by key bytes; a plain node and a group node with the same
 * bytes (a plain key equal to a version prefix, which tkv never writes)
 * sort plain first. A group's versions sort as their encodings P | ~ts do:
 * newest first, all after P and before any other node.
 */
#include "memtab.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "chunk.h"
#include "grow.h"

#define MAX_HEIGHT 12
#define ARENA_BLOCK (1024 * 1024)

typedef struct mrec {
    uint64_t seq;
    struct mrec *prev; /* the record it replaced, older */
    uint32_t vlen;
    bool del;
    uint8_t val[];
} mrec;

/* A version in a group: a node of the group's own skiplist, ordered newest
 * first (the order of the versions' encodings). */
typedef struct vnode {
    uint64_t ts;
    _Atomic(mrec *) rec;
    uint8_t height;
    _Atomic(struct vnode *) next[];
} vnode;

/* A drop (tkv_memtab_drop) gives a group a new, empty list of versions:
 * readers at or after the drop's sequence number read it, older readers
 * the lists before it. A key's first list lives in its node. */
typedef struct vgen {
    uint64_t seq;            /* the drop's */
    const struct vgen *prev; /* the drop before it; NULL: the node's list */
    _Atomic(vnode *) vhead;
    _Atomic int vheight;
} vgen;

/* Fields ordered so that the drop pointer costs a node no bytes. */
struct tkv_mnode {
    uint32_t klen;
    uint32_t hash;
    uint8_t height;
    bool group;
    bool overlaps; /* group: some record was not a "newest" put */
    bool listed;   /* group: on the table's list of dropped keys */
    _Atomic int vheight;
    _Atomic(mrec *) rec;         /* plain: the chain of records, newest first */
    _Atomic(vnode *) vhead;      /* group: its versions' skiplist (grows) */
    _Atomic(vgen *) drops;       /* group: its drops, newest first (NULL: none) */
    _Atomic(tkv_mnode *) next[]; /* height links, then the key bytes */
};

typedef struct arena_block {
    struct arena_block *prev;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
} arena_block;

struct tkv_memtab {
    _Atomic int refs;
    _Atomic int height;
    _Atomic size_t bytes;
    _Atomic size_t count;
    arena_block *blocks;
    uint64_t rng;
    tkv_mnode *head;
    /* The writer's index of nodes by key (and kind): open addressing. */
    tkv_mnode **tab;
    size_t tabcap, tabn;
    /* The groups that got a drop, for the flusher (the writer's). */
    tkv_mnode **dropped;
    size_t ndropped, capdropped;
    _Atomic bool has_drops;
};

static const uint8_t *node_key(const tkv_mnode *n) { return (const uint8_t *)&n->next[n->height]; }

static void *arena_alloc(tkv_memtab *m, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    arena_block *b = m->blocks;
    if (!b || b->cap - b->used < n) {
        /* A record bigger than a quarter block gets a block of its own, so
         * the current block's free tail is not thrown away for it. */
        size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        if (cap == n && b) {
            nb->prev = b->prev;
            b->prev = nb;
        } else {
            nb->prev = b;
            m->blocks = nb;
        }
        atomic_fetch_add_explicit(&m->bytes, sizeof *nb + cap, memory_order_relaxed);
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static tkv_mnode *node_new(tkv_memtab *m, int height, const void *k, size_t klen)
{
    size_t sz = sizeof(tkv_mnode) + (size_t)height * sizeof(_Atomic(tkv_mnode *)) + klen;
    tkv_mnode *n = arena_alloc(m, sz);
    if (!n)
        return NULL;
    n->height = (uint8_t)height;
    n->klen = (uint32_t)klen;
    n->group = false;
    atomic_init(&n->rec, NULL);
    atomic_init(&n->vhead, NULL);
    n->overlaps = false;
    n->listed = false;
    atomic_init(&n->vheight, 1);
    atomic_init(&n->drops, NULL);
    for (int i = 0; i < height; i++)
        atomic_init(&n->next[i], NULL);
    if (klen)
        memcpy((uint8_t *)node_key(n), k, klen);
    return n;
}

tkv_memtab *tkv_memtab_new(void)
{
    tkv_memtab *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    atomic_init(&m->height, 1);
    m->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)m;
    m->tabcap = 1024;
    m->tab = calloc(m->tabcap, sizeof *m->tab);
    if (!m->tab || !(m->head = node_new(m, MAX_HEIGHT, NULL, 0))) {
        tkv_memtab_unref(m);
        return NULL;
    }
    atomic_fetch_add_explicit(&m->bytes, m->tabcap * sizeof *m->tab, memory_order_relaxed);
    return m;
}

void tkv_memtab_ref(tkv_memtab *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); }

void tkv_memtab_unref(tkv_memtab *m)
{
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (arena_block *b = m->blocks, *p; b; b = p) {
        p = b->prev;
        free(b);
    }
    free(m->tab);
    free(m->dropped);
    free(m);
}

size_t tkv_memtab_bytes(const tkv_memtab *m)
{
    return atomic_load_explicit(&m->bytes, memory_order_relaxed);
}

size_t tkv_memtab_count(const tkv_memtab *m)
{
    return atomic_load_explicit(&m->count, memory_order_relaxed);
}

/* ---- order ------------------------------------------------------------------ */

/* Keys as unsigned bytes, shorter first on a tie. */
static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0; /* an empty key may come as NULL */
    return c ? c : (an > bn) - (an < bn);
}

/* Node order: key bytes, then plain before group. */
static int node_cmp(const tkv_mnode *n, const uint8_t *k, size_t klen, bool group)
{
    int c = key_cmp(node_key(n), n->klen, k, klen);
    return c ? c : (int)n->group - (int)group;
}

static inline tkv_mnode *nx(const tkv_mnode *n, int level)
{
    return atomic_load_explicit(&((tkv_mnode *)n)->next[level], memory_order_acquire);
}

static int top_level(const tkv_memtab *m)
{
    return atomic_load_explicit(&((tkv_memtab *)m)->height, memory_order_relaxed) - 1;
}

/* The first node >= (k, group); fills prev[] with the last node before it
 * at each level when prev is given. */
static tkv_mnode *find_ge(const tkv_memtab *m, const uint8_t *k, size_t klen, bool group,
                          tkv_mnode **prev)
{
    tkv_mnode *x = m->head;
    for (int level = top_level(m);; level--) {
        tkv_mnode *n;
        while ((n = nx(x, level)) != NULL && node_cmp(n, k, klen, group) < 0)
            x = n;
        if (prev)
            prev[level] = x;
        if (level == 0)
            return n;
    }
}

/* The last node < (k, group) (head if none). */
static tkv_mnode *find_lt(const tkv_memtab *m, const uint8_t *k, size_t klen, bool group)
{
    tkv_mnode *x = m->head;
    for (int level = top_level(m);; level--) {
        tkv_mnode *n;
        while ((n = nx(x, level)) != NULL && node_cmp(n, k, klen, group) < 0)
            x = n;
        if (level == 0)
            return x;
    }
}

static tkv_mnode *find_last(const tkv_memtab *m)
{
    tkv_mnode *x = m->head;
    for (int level = top_level(m);; level--) {
        tkv_mnode *n;
        while ((n = nx(x, level)) != NULL)
            x = n;
        if (level == 0)
            return x;
    }
}

/* ---- the writer ------------------------------------------------------------- */

static uint32_t hash_key(const uint8_t *k, size_t n, bool group)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n ^ ((uint64_t)group << 63);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, k, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        k += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n)
        memcpy(&w, k, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return (uint32_t)h;
}

static tkv_mnode **tab_slot(const tkv_memtab *m, const uint8_t *k, size_t klen, bool group,
                            uint32_t h)
{
    size_t mask = m->tabcap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        tkv_mnode *n = m->tab[i];
        if (!n || (n->hash == h && n->group == group && n->klen == klen &&
                   (klen == 0 || memcmp(node_key(n), k, klen) == 0)))
            return &m->tab[i];
    }
}

static int tab_grow(tkv_memtab *m)
{
    size_t cap = m->tabcap * 2;
    tkv_mnode **t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < m->tabcap; i++) {
        tkv_mnode *n = m->tab[i];
        if (!n)
            continue;
        size_t j = n->hash & (cap - 1);
        while (t[j])
            j = (j + 1) & (cap - 1);
        t[j] = n;
    }
    free(m->tab);
    atomic_fetch_add_explicit(&m->bytes, (cap - m->tabcap) * sizeof *t, memory_order_relaxed);
    m->tab = t;
    m->tabcap = cap;
    return 0;
}

static int random_height(tkv_memtab *m)
{
    int h = 1;
    for (;;) {
        m->rng ^= m->rng << 13;
        m->rng ^= m->rng >> 7;
        m->rng ^= m->rng << 17;
        if (h >= MAX_HEIGHT || (m->rng & 3))
            return h;
        h++;
    }
}

static vnode *vnode_new(tkv_memtab *m, int height, uint64_t ts);

/* Both cache lines a node's compare reads: its header and links, and its
 * key bytes after them. */
static void prefetch_node(const tkv_mnode *n)
{
    __builtin_prefetch(n);
    __builtin_prefetch((const uint8_t *)n + 64);
}

void tkv_memtab_prefetch(const tkv_memtab *m, const uint8_t *const *k, const size_t *klen, int n)
{
    struct walk {
        const uint8_t *k;
        size_t klen;
        bool group;
        int level;
        const tkv_mnode *x, *cand;
    } w[TKV_MEMTAB_PREFETCH_MAX];
    size_t slot[TKV_MEMTAB_PREFETCH_MAX], mask = m->tabcap - 1;
    uint32_t hash[TKV_MEMTAB_PREFETCH_MAX];
    if (n > TKV_MEMTAB_PREFETCH_MAX)
        n = TKV_MEMTAB_PREFETCH_MAX;
    for (int i = 0; i < n; i++) {
        w[i].group = tkv_chunk_is_version(k[i], klen[i]);
        w[i].k = k[i];
        w[i].klen = w[i].group ? klen[i] - 8 : klen[i];
        hash[i] = hash_key(w[i].k, w[i].klen, w[i].group);
        slot[i] = hash[i] & mask;
        __builtin_prefetch(&m->tab[slot[i]]);
    }
    /* A slot's node, to compare; an empty slot is a key new to the table. */
    for (int i = 0; i < n; i++)
        if (m->tab[slot[i]])
            prefetch_node(m->tab[slot[i]]);
    int top = top_level(m), active = 0;
    for (int i = 0; i < n; i++) {
        if (*tab_slot(m, w[i].k, w[i].klen, w[i].group, hash[i]))
            continue; /* known: the add finds it in the table */
        w[active] = w[i];
        w[active].level = top;
        w[active].x = m->head;
        w[active].cand = nx(m->head, top);
        if (w[active].cand)
            prefetch_node(w[active].cand);
        active++;
    }
    /* find_ge for all of them in step: each round takes one step of each
     * walk, on a node prefetched the round before. */
    while (active > 0) {
        for (int i = 0; i < active;) {
            struct walk *x = &w[i];
            if (x->cand && node_cmp(x->cand, x->k, x->klen, x->group) < 0)
                x->x = x->cand;
            else if (x->level-- == 0) {
                w[i] = w[--active];
                continue;
            }
            x->cand = nx(x->x, x->level);
            if (x->cand)
                prefetch_node(x->cand);
            i++;
        }
    }
}

/* The node of (k, group), made and linked if the buffer has none yet. */
static tkv_mnode *node_get(tkv_memtab *m, const uint8_t *k, size_t klen, bool group)
{
    if ((m->tabn + 1) * 2 > m->tabcap && tab_grow(m) < 0)
        return NULL;
    uint32_t h = hash_key(k, klen, group);
    tkv_mnode **slot = tab_slot(m, k, klen, group, h);
    tkv_mnode *found = *slot;
    if (found)
        return found;
    tkv_mnode *prev[MAX_HEIGHT];
    find_ge(m, k, klen, group, prev);
    int ht = random_height(m);
    tkv_mnode *n = node_new(m, ht, k, klen);
    if (!n)
        return NULL;
    n->hash = h;
    n->group = group;
    if (group) {
        /* A head of one level: most keys get a version or two per buffer.
         * group_add grows it when a taller version comes. */
        vnode *h0 = vnode_new(m, 1, 0);
        if (!h0)
            return NULL;
        atomic_init(&n->vhead, h0);
    }
    int cur = top_level(m) + 1;
    if (ht > cur) {
        for (int i = cur; i < ht; i++)
            prev[i] = m->head;
        /* Readers that see the new height before the links find NULL
         * (head's next) at those levels and drop a level: harmless. */
        atomic_store_explicit(&m->height, ht, memory_order_relaxed);
    }
    for (int i = 0; i < ht; i++) {
        atomic_store_explicit(&n->next[i], nx(prev[i], i), memory_order_relaxed);
        atomic_store_explicit(&prev[i]->next[i], n, memory_order_release);
    }
    *slot = n;
    m->tabn++;
    return n;
}

static vnode *vnode_new(tkv_memtab *m, int height, uint64_t ts)
{
    vnode *v = arena_alloc(m, sizeof(vnode) + (size_t)height * sizeof(_Atomic(vnode *)));
    if (!v)
        return NULL;
    v->ts = ts;
    v->height = (uint8_t)height;
    atomic_init(&v->rec, NULL);
    for (int i = 0; i < height; i++)
        atomic_init(&v->next[i], NULL);
    return v;
}

static inline vnode *vnx(const vnode *v, int level)
{
    return atomic_load_explicit(&((vnode *)v)->next[level], memory_order_acquire);
}

/* Where one list of a group's versions lives: the node's own, or a drop's. */
typedef struct vlist {
    _Atomic(vnode *) *head;
    _Atomic int *height;
} vlist;

static vlist list_of(const tkv_mnode *n, const vgen *g)
{
    if (g)
        return (vlist){(_Atomic(vnode *) *)&g->vhead, (_Atomic int *)&g->vheight};
    return (vlist){(_Atomic(vnode *) *)&n->vhead, (_Atomic int *)&n->vheight};
}

/* The list a reader at seq reads: the newest drop at or before seq, or the
 * node's own list (NULL) if there is none. */
static const vgen *gen_at(const tkv_mnode *n, uint64_t seq)
{
    const vgen *g = atomic_load_explicit(&((tkv_mnode *)n)->drops, memory_order_acquire);
    while (g && g->seq > seq)
        g = g->prev;
    return g;
}

static vnode *vhead_of(vlist l) { return atomic_load_explicit(l.head, memory_order_acquire); }

/* The top level to search from a head: the list's height, but never above
 * the head a reader holds (an older, shorter one if the writer has since
 * grown it; the nodes it reaches are all still linked). */
static int vtop(vlist l, const vnode *head)
{
    int h = atomic_load_explicit(l.height, memory_order_relaxed);
    return (h < head->height ? h : head->height) - 1;
}

/* The first version with ts' <= ts (newest first: the first not newer);
 * fills prev[] with the last newer one at each level when prev is given. */
static vnode *vfind(vlist l, uint64_t ts, vnode **prev)
{
    vnode *head = vhead_of(l), *x = head;
    for (int level = vtop(l, head);; level--) {
        vnode *n;
        while ((n = vnx(x, level)) != NULL && n->ts > ts)
            x = n;
        if (prev)
            prev[level] = x;
        if (level == 0)
            return n;
    }
}

/* The oldest version newer than ts (NULL if none), or with last: the
 * oldest of all. */
static vnode *vfind_newer(vlist l, uint64_t ts, bool last)
{
    vnode *head = vhead_of(l), *x = head;
    for (int level = vtop(l, head);; level--) {
        vnode *n;
        while ((n = vnx(x, level)) != NULL && (last || n->ts > ts))
            x = n;
        if (level == 0)
            return x == head ? NULL : x;
    }
}

/* Puts rec at ts into the group's versions. A version newer than all (time
 * moving forward) is found at the head at once; one a little in the past
 * after a few steps. */
static int group_add(tkv_memtab *m, vlist g, uint64_t ts, mrec *rec)
{
    vnode *prev[MAX_HEIGHT];
    vnode *at = vfind(g, ts, prev);
    if (at && at->ts == ts) {
        rec->prev = atomic_load_explicit(&at->rec, memory_order_relaxed);
        atomic_store_explicit(&at->rec, rec, memory_order_release);
        return 0;
    }
    vnode *head = vhead_of(g);
    /* The first version of a key is one level high, so its group keeps a
     * head of one level until a second version comes. */
    int h = vnx(head, 0) ? random_height(m) : 1;
    if (h > head->height) {
        /* A taller head, its links copied, published whole; searches that
         * started from the old one still find every node it reached. */
        vnode *big = vnode_new(m, MAX_HEIGHT, 0);
        if (!big)
            return -1;
        for (int i = 0; i < head->height; i++) {
            atomic_init(&big->next[i], vnx(head, i));
            if (prev[i] == head)
                prev[i] = big;
        }
        atomic_store_explicit(g.head, big, memory_order_release);
        head = big;
    }
    vnode *v = vnode_new(m, h, ts);
    if (!v)
        return -1;
    atomic_init(&v->rec, rec);
    int cur = vtop(g, head) + 1;
    if (h > cur) {
        for (int i = cur; i < h; i++)
            prev[i] = head;
        atomic_store_explicit(g.height, h, memory_order_relaxed);
    }
    for (int i = 0; i < h; i++) {
        atomic_store_explicit(&v->next[i], vnx(prev[i], i), memory_order_relaxed);
        atomic_store_explicit(&prev[i]->next[i], v, memory_order_release);
    }
    return 0;
}

int tkv_memtab_add(tkv_memtab *m, uint64_t seq, bool del, bool newest, const void *k, size_t klen,
                   const void *v, size_t vlen)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return -1;
    bool group = tkv_chunk_is_version(k, klen);
    tkv_mnode *n = node_get(m, k, group ? klen - 8 : klen, group);
    mrec *r = n ? arena_alloc(m, sizeof(mrec) + vlen) : NULL;
    if (!r)
        return -1;
    r->seq = seq;
    r->del = del;
    r->vlen = (uint32_t)vlen;
    r->prev = NULL;
    if (vlen)
        memcpy(r->val, v, vlen);
    if (group) {
        if (del || !newest)
            n->overlaps = true;
        vlist l = list_of(n, atomic_load_explicit(&n->drops, memory_order_relaxed));
        if (group_add(m, l, ~tkv_load_be64((const uint8_t *)k + klen - 8), r) < 0)
            return -1;
    } else {
        r->prev = atomic_load_explicit(&n->rec, memory_order_relaxed);
        atomic_store_explicit(&n->rec, r, memory_order_release);
    }
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    return 0;
}

int tkv_memtab_drop(tkv_memtab *m, uint64_t seq, const void *p, size_t plen)
{
    if (plen > UINT32_MAX)
        return -1;
    tkv_mnode *n = node_get(m, p, plen, true);
    vgen *g = n ? arena_alloc(m, sizeof *g) : NULL;
    vnode *h0 = g ? vnode_new(m, 1, 0) : NULL;
    if (!h0)
        return -1;
    if (!n->listed) {
        if (tkv_grow(&m->dropped, &m->capdropped, m->ndropped + 1, sizeof *m->dropped, 16) < 0)
            return -1;
        m->dropped[m->ndropped++] = n;
        n->listed = true;
    }
    g->seq = seq;
    g->prev = atomic_load_explicit(&n->drops, memory_order_relaxed);
    atomic_init(&g->vhead, h0);
    atomic_init(&g->vheight, 1);
    n->overlaps = true;
    atomic_store_explicit(&m->has_drops, true, memory_order_release);
    atomic_store_explicit(&n->drops, g, memory_order_release);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    return 0;
}

bool tkv_memtab_dropped(const tkv_memtab *m, uint64_t seq, const void *p, size_t plen)
{
    if (!atomic_load_explicit(&((tkv_memtab *)m)->has_drops, memory_order_acquire))
        return false;
    const tkv_mnode *n = find_ge(m, p, plen, true, NULL);
    return n && node_cmp(n, p, plen, true) == 0 && gen_at(n, seq) != NULL;
}

bool tkv_memtab_has_drops(const tkv_memtab *m)
{
    return atomic_load_explicit(&((tkv_memtab *)m)->has_drops, memory_order_acquire);
}

void tkv_memtab_each_dropped(const tkv_memtab *m, void *ctx,
                             void (*fn)(void *ctx, const uint8_t *p, size_t plen))
{
    for (size_t i = 0; i < m->ndropped; i++)
        fn(ctx, node_key(m->dropped[i]), m->dropped[i]->klen);
}

/* ---- readers ---------------------------------------------------------------- */

static const mrec *visible(const mrec *r, uint64_t seq)
{
    while (r && r->seq > seq)
        r = r->prev;
    return r;
}

static const mrec *vrec(const vnode *v, uint64_t seq)
{
    return visible(atomic_load_explicit(&((vnode *)v)->rec, memory_order_acquire), seq);
}

int tkv_memtab_get(const tkv_memtab *m, uint64_t seq, const void *k, size_t klen, const uint8_t **v,
                   size_t *vlen)
{
    bool group = tkv_chunk_is_version(k, klen);
    size_t nk = group ? klen - 8 : klen;
    const tkv_mnode *n = find_ge(m, k, nk, group, NULL);
    if (!n || node_cmp(n, k, nk, group) != 0)
        return 0;
    const mrec *r;
    if (group) {
        /* A drop the reader sees hides every older record of the key, here
         * and in older sources: a delete. */
        uint64_t ts = ~tkv_load_be64((const uint8_t *)k + klen - 8);
        const vgen *g = gen_at(n, seq);
        const vnode *x = vfind(list_of(n, g), ts, NULL);
        r = x && x->ts == ts ? vrec(x, seq) : NULL;
        if (!r)
            return g ? 2 : 0;
    } else
        r = visible(atomic_load_explicit(&((tkv_mnode *)n)->rec, memory_order_acquire), seq);
    if (!r)
        return 0;
    if (r->del)
        return 2;
    *v = r->val;
    *vlen = r->vlen;
    return 1;
}

/* ---- the cursor ------------------------------------------------------------- */

void tkv_memtab_iter_init(tkv_memtab_iter *it, const tkv_memtab *m, uint64_t seq)
{
    *it = (tkv_memtab_iter){.m = m, .seq = seq};
}

void tkv_memtab_iter_deinit(tkv_memtab_iter *it)
{
    free(it->kbuf);
    it->kbuf = NULL;
    it->kcap = 0;
}

/* Positions on node n (and, in a group, version x) with record r; composes
 * a version's key. */
static void set_pos(tkv_memtab_iter *it, const tkv_mnode *n, const vnode *x, const mrec *r)
{
    it->n = n;
    it->v = x;
    it->rec = r;
    if (!n->group)
        return;
    size_t kn = n->klen + 8;
    /* As the store's other allocations for a read in progress: there is no
     * answer to give but a wrong one. */
    if (tkv_grow(&it->kbuf, &it->kcap, kn, 1, 64) < 0)
        abort();
    memcpy(it->kbuf, node_key(n), n->klen);
    tkv_store_be64(it->kbuf + n->klen, ~x->ts);
}

/* From version x of group g on, older: the first visible one. */
static bool group_fwd(tkv_memtab_iter *it, const tkv_mnode *g, const vnode *x)
{
    for (; x; x = vnx(x, 0)) {
        const mrec *r = vrec(x, it->seq);
        if (r) {
            set_pos(it, g, x, r);
            return true;
        }
    }
    return false;
}

/* From version x of group g on, newer (x NULL: from the oldest): the first
 * visible one. */
static bool group_back(tkv_memtab_iter *it, const tkv_mnode *g, const vnode *x)
{
    vlist l = list_of(g, gen_at(g, it->seq));
    if (!x)
        x = vfind_newer(l, 0, true);
    for (; x; x = vfind_newer(l, x->ts, false)) {
        const mrec *r = vrec(x, it->seq);
        if (r) {
            set_pos(it, g, x, r);
            return true;
        }
    }
    return false;
}

/* From node n forward: the first visible record, newest version first. */
static void settle_fwd(tkv_memtab_iter *it, const tkv_mnode *n)
{
    for (; n; n = nx(n, 0)) {
        if (n->group) {
            if (group_fwd(it, n, vnx(vhead_of(list_of(n, gen_at(n, it->seq))), 0)))
                return;
            continue;
        }
        const mrec *r =
            visible(atomic_load_explicit(&((tkv_mnode *)n)->rec, memory_order_acquire), it->seq);
        if (r) {
            set_pos(it, n, NULL, r);
            return;
        }
    }
    it->n = NULL;
}

/* From node n backward: the last visible record, oldest version first. */
static void settle_back(tkv_memtab_iter *it, const tkv_mnode *n)
{
    for (; n && n != it->m->head; n = find_lt(it->m, node_key(n), n->klen, n->group)) {
        if (n->group) {
            if (group_back(it, n, NULL))
                return;
            continue;
        }
        const mrec *r =
            visible(atomic_load_explicit(&((tkv_mnode *)n)->rec, memory_order_acquire), it->seq);
        if (r) {
            set_pos(it, n, NULL, r);
            return;
        }
    }
    it->n = NULL;
}

void tkv_memtab_iter_seek(tkv_memtab_iter *it, const void *k, size_t klen)
{
    /* The last node before k may be a group whose versions run past k. */
    const tkv_mnode *l = find_lt(it->m, k, klen, false);
    if (l != it->m->head && l->group) {
        size_t pl = l->klen;
        vlist vl = list_of(l, gen_at(l, it->seq));
        const vnode *x;
        if (klen == pl + 8 && memcmp(k, node_key(l), pl) == 0) {
            /* P | ~T: the newest version at or before T. */
            x = vfind(vl, ~tkv_load_be64((const uint8_t *)k + pl), NULL);
        } else {
            /* Any other key inside the group's range: compare encodings,
             * newest (smallest encoding) first. */
            uint8_t enc[8];
            for (x = vnx(vhead_of(vl), 0); x; x = vnx(x, 0)) {
                int c = key_cmp(node_key(l), pl < klen ? pl : klen, k, pl < klen ? pl : klen);
                if (c == 0) {
                    tkv_store_be64(enc, ~x->ts);
                    size_t rest = klen > pl ? klen - pl : 0;
                    c = memcmp(enc, (const uint8_t *)k + pl, rest < 8 ? rest : 8);
                    if (c == 0)
                        c = (8 > rest) - (8 < rest);
                }
                if (c >= 0)
                    break;
            }
        }
        if (group_fwd(it, l, x))
            return;
    }
    settle_fwd(it, nx(l, 0));
}

void tkv_memtab_iter_seek_first(tkv_memtab_iter *it) { settle_fwd(it, nx(it->m->head, 0)); }

void tkv_memtab_iter_seek_last(tkv_memtab_iter *it) { settle_back(it, find_last(it->m)); }

void tkv_memtab_iter_next(tkv_memtab_iter *it)
{
    const tkv_mnode *n = it->n;
    if (n->group && group_fwd(it, n, vnx(it->v, 0)))
        return;
    settle_fwd(it, nx(n, 0));
}

void tkv_memtab_iter_prev(tkv_memtab_iter *it)
{
    const tkv_mnode *n = it->n;
    if (n->group) {
        const vnode *x = vfind_newer(list_of(n, gen_at(n, it->seq)), it->v->ts, false);
        if (x && group_back(it, n, x))
            return;
    }
    settle_back(it, find_lt(it->m, node_key(n), n->klen, n->group));
}

const uint8_t *tkv_memtab_iter_key(const tkv_memtab_iter *it, size_t *klen)
{
    if (it->n->group) {
        *klen = it->n->klen + 8;
        return it->kbuf;
    }
    *klen = it->n->klen;
    return node_key(it->n);
}

const uint8_t *tkv_memtab_iter_value(const tkv_memtab_iter *it, size_t *vlen)
{
    *vlen = it->rec->vlen;
    return it->rec->val;
}

bool tkv_memtab_iter_is_del(const tkv_memtab_iter *it) { return it->rec->del; }

bool tkv_memtab_iter_group_newest(const tkv_memtab_iter *it)
{
    return it->n->group && !it->n->overlaps;
}

bool tkv_memtab_iter_group_dropped(const tkv_memtab_iter *it)
{
    return it->n->group && gen_at(it->n, it->seq) != NULL;
}
