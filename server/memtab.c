/*
 * memtab.c - the write buffer's skiplist (see memtab.h).
 *
 * LevelDB's memtable, in C11 atomics: a node is filled in completely, then
 * linked bottom level first, each link a release store; readers' acquire
 * loads therefore never see a half-made node. Heights are random with
 * branching 4, at most 12 levels (16 M records at the expected cost). Nodes
 * are never unlinked: a table only grows until it is frozen, written to
 * LevelDB and freed whole.
 */
#include "memtab.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEIGHT 12
#define ARENA_BLOCK (256 * 1024)

struct tkv_mnode {
    uint64_t seq;
    uint32_t klen, vlen;
    bool del;
    uint8_t height;
    _Atomic(tkv_mnode *) next[]; /* height links, then the key and value bytes */
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

static tkv_mnode *node_new(tkv_memtab *m, int height, size_t klen, size_t vlen)
{
    size_t sz = sizeof(tkv_mnode) + (size_t)height * sizeof(_Atomic(tkv_mnode *)) + klen + vlen;
    tkv_mnode *n = arena_alloc(m, sz);
    if (!n)
        return NULL;
    n->height = (uint8_t)height;
    n->klen = (uint32_t)klen;
    n->vlen = (uint32_t)vlen;
    for (int i = 0; i < height; i++)
        atomic_init(&n->next[i], NULL);
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
    if (!(m->head = node_new(m, MAX_HEIGHT, 0, 0))) {
        free(m);
        return NULL;
    }
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

/* Keys as unsigned bytes, shorter first on a tie. */
static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* Node order: key ascending, then sequence descending. */
static int node_cmp(const tkv_mnode *n, const uint8_t *k, size_t klen, uint64_t seq)
{
    int c = key_cmp(node_key(n), n->klen, k, klen);
    if (c)
        return c;
    return (n->seq < seq) - (n->seq > seq);
}

static inline tkv_mnode *nx(const tkv_mnode *n, int level)
{
    return atomic_load_explicit(&((tkv_mnode *)n)->next[level], memory_order_acquire);
}

/* The first node >= (k, seq); fills prev[] with the last node before it at
 * each level when prev is given. */
static tkv_mnode *find_ge(const tkv_memtab *m, const uint8_t *k, size_t klen, uint64_t seq,
                          tkv_mnode **prev)
{
    tkv_mnode *x = m->head;
    int level = atomic_load_explicit(&((tkv_memtab *)m)->height, memory_order_relaxed) - 1;
    for (;;) {
        tkv_mnode *n = nx(x, level);
        if (n && node_cmp(n, k, klen, seq) < 0) {
            x = n;
            continue;
        }
        if (prev)
            prev[level] = x;
        if (level == 0)
            return n;
        level--;
    }
}

/* The last node whose key is < k (head if none). */
static const tkv_mnode *find_lt_key(const tkv_memtab *m, const uint8_t *k, size_t klen)
{
    const tkv_mnode *x = m->head;
    int level = atomic_load_explicit(&((tkv_memtab *)m)->height, memory_order_relaxed) - 1;
    for (;;) {
        tkv_mnode *n = nx(x, level);
        if (n && key_cmp(node_key(n), n->klen, k, klen) < 0) {
            x = n;
            continue;
        }
        if (level == 0)
            return x;
        level--;
    }
}

static const tkv_mnode *find_last(const tkv_memtab *m)
{
    const tkv_mnode *x = m->head;
    int level = atomic_load_explicit(&((tkv_memtab *)m)->height, memory_order_relaxed) - 1;
    for (;;) {
        tkv_mnode *n = nx(x, level);
        if (n) {
            x = n;
            continue;
        }
        if (level == 0)
            return x;
        level--;
    }
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

int tkv_memtab_add(tkv_memtab *m, uint64_t seq, bool del, const void *k, size_t klen, const void *v,
                   size_t vlen)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return -1;
    tkv_mnode *prev[MAX_HEIGHT];
    find_ge(m, k, klen, seq, prev);
    int h = random_height(m);
    int cur = atomic_load_explicit(&m->height, memory_order_relaxed);
    if (h > cur) {
        for (int i = cur; i < h; i++)
            prev[i] = m->head;
        /* Readers that see the new height before the links find NULL
         * (head's next) at those levels and drop a level: harmless. */
        atomic_store_explicit(&m->height, h, memory_order_relaxed);
    }
    tkv_mnode *n = node_new(m, h, klen, vlen);
    if (!n)
        return -1;
    n->seq = seq;
    n->del = del;
    memcpy((uint8_t *)node_key(n), k, klen);
    if (vlen)
        memcpy((uint8_t *)node_key(n) + klen, v, vlen);
    for (int i = 0; i < h; i++) {
        atomic_store_explicit(&n->next[i], nx(prev[i], i), memory_order_relaxed);
        atomic_store_explicit(&prev[i]->next[i], n, memory_order_release);
    }
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    return 0;
}

int tkv_memtab_get(const tkv_memtab *m, uint64_t seq, const void *k, size_t klen, const uint8_t **v,
                   size_t *vlen)
{
    const tkv_mnode *n = find_ge(m, k, klen, seq, NULL);
    if (!n || key_cmp(node_key(n), n->klen, k, klen) != 0)
        return 0;
    if (n->del)
        return 2;
    *v = node_key(n) + n->klen;
    *vlen = n->vlen;
    return 1;
}

/* ---- the cursor ------------------------------------------------------------- */

void tkv_memtab_iter_init(tkv_memtab_iter *it, const tkv_memtab *m, uint64_t seq)
{
    it->m = m;
    it->seq = seq;
    it->n = NULL;
}

/* From n forward, the first node a reader at it->seq sees: nodes of one key
 * are newest first, so the first with seq <= S is that key's record. */
static void settle_fwd(tkv_memtab_iter *it, const tkv_mnode *n)
{
    while (n && n->seq > it->seq)
        n = nx(n, 0);
    it->n = n;
}

/* n is the last (oldest) node of its key: positions on that key's record
 * at it->seq, or on the nearest earlier key that has one. */
static void settle_back(tkv_memtab_iter *it, const tkv_mnode *n)
{
    while (n != it->m->head) {
        if (n->seq <= it->seq) {
            /* The oldest node is visible, so some node of this key is: the
             * first one at or below S. */
            it->n = find_ge(it->m, node_key(n), n->klen, it->seq, NULL);
            return;
        }
        n = find_lt_key(it->m, node_key(n), n->klen);
    }
    it->n = NULL;
}

void tkv_memtab_iter_seek(tkv_memtab_iter *it, const void *k, size_t klen)
{
    settle_fwd(it, find_ge(it->m, k, klen, it->seq, NULL));
}

void tkv_memtab_iter_seek_first(tkv_memtab_iter *it) { settle_fwd(it, nx(it->m->head, 0)); }

void tkv_memtab_iter_seek_last(tkv_memtab_iter *it) { settle_back(it, find_last(it->m)); }

void tkv_memtab_iter_next(tkv_memtab_iter *it)
{
    const tkv_mnode *c = it->n, *n = nx(c, 0);
    while (n && key_cmp(node_key(n), n->klen, node_key(c), c->klen) == 0)
        n = nx(n, 0);
    settle_fwd(it, n);
}

void tkv_memtab_iter_prev(tkv_memtab_iter *it)
{
    const tkv_mnode *c = it->n;
    settle_back(it, find_lt_key(it->m, node_key(c), c->klen));
}

const uint8_t *tkv_memtab_iter_key(const tkv_memtab_iter *it, size_t *klen)
{
    *klen = it->n->klen;
    return node_key(it->n);
}

const uint8_t *tkv_memtab_iter_value(const tkv_memtab_iter *it, size_t *vlen)
{
    *vlen = it->n->vlen;
    return node_key(it->n) + it->n->klen;
}

bool tkv_memtab_iter_is_del(const tkv_memtab_iter *it) { return it->n->del; }
