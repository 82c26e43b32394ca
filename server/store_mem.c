/*
 * store_mem.c - implements store.h in memory, for fuzzing and tests only
 * (meson -Dstore=memory). Nothing survives the process: a tkvd built with
 * it says so loudly at start-up.
 *
 * The data is a persistent (immutable, path-copying) AVL tree ordered as
 * store.h says. A write builds a new tree from the current one - the nodes
 * on each changed key's path are copied, everything else is shared - and
 * publishes its root in one pointer swap, so a batch is atomic and later
 * records for a key win simply by being applied later. Snapshots and
 * iterators hold a reference to the root they started from: creating one
 * costs two atomic operations, a seek O(log n), a step O(1) amortised,
 * and no later write can change what they see. Nodes and records are
 * reference-counted (atomically: iterators are freed on other threads
 * than the writer's), and a tree's unshared nodes go when its last holder
 * lets go. Records (key and value bytes) are shared between a node and its
 * copies, so a copy costs a small node, never the bytes again.
 *
 * Directories. A store still lives in a real directory: open creates it
 * (with create), takes tkvd.lock with flock() exactly as store.c does (so a
 * second open of the directory, in this process or another, is refused
 * and names the holder), and writes db/MEMORY, a line naming this
 * process and a token. The data itself lives in a process-global registry
 * keyed by the directory's real path and that token: closing a store and
 * opening the same directory again in the same process finds the data
 * again, while a directory removed and made anew, or one another process
 * wrote, starts empty (opening it without `create` fails only if it has
 * no db/MEMORY at all). The registry keeps each directory's data until the
 * process exits. LevelDB's files, if a directory has some, are never read
 * or touched: such a directory opens empty.
 *
 * Failures come only from the test hook (store_mem.h), at the points where
 * LevelDB writes or syncs its files: a failed log write leaves the store
 * unchanged, a failed log sync leaves the batch in limbo (replayed by the
 * next open of the directory, as LevelDB replays its log), a failed open
 * sync fails the open. After a failed write the handle refuses writes
 * until tkv_store_reopen(), as store.h requires of its callers. Running
 * out of memory ends the process, as it does in LevelDB.
 */
#include "store_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "datadir.h"

/* AVL trees of fewer than 2^64 nodes are at most this high. */
#define MAX_HEIGHT 96

/* ---- records and nodes ------------------------------------------------------ */

typedef struct rec {
    atomic_size_t ref;
    size_t klen, vlen;
    uint8_t b[]; /* the key, then the value */
} rec;

typedef struct node {
    atomic_size_t ref;
    int height;
    struct node *l, *r;
    rec *rec;
} node;

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "tkv memory store: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (an > bn) - (an < bn);
}

static rec *rec_new(const void *k, size_t klen, const void *v, size_t vlen)
{
    rec *r = xmalloc(sizeof *r + klen + vlen);
    atomic_init(&r->ref, 1);
    r->klen = klen;
    r->vlen = vlen;
    if (klen)
        memcpy(r->b, k, klen);
    if (vlen)
        memcpy(r->b + klen, v, vlen);
    return r;
}

static rec *rec_ref(rec *r)
{
    atomic_fetch_add_explicit(&r->ref, 1, memory_order_relaxed);
    return r;
}

static void rec_unref(rec *r)
{
    if (atomic_fetch_sub_explicit(&r->ref, 1, memory_order_acq_rel) == 1)
        free(r);
}

static node *node_ref(node *n)
{
    if (n)
        atomic_fetch_add_explicit(&n->ref, 1, memory_order_relaxed);
    return n;
}

/* Recursion only to the left: the depth is bounded by the height. */
static void node_unref(node *n)
{
    while (n && atomic_fetch_sub_explicit(&n->ref, 1, memory_order_acq_rel) == 1) {
        node *l = n->l, *r = n->r;
        rec_unref(n->rec);
        free(n);
        node_unref(l);
        n = r;
    }
}

static int height(const node *n) { return n ? n->height : 0; }

/* A new node; takes over the references r, l and rt. */
static node *mk(rec *r, node *l, node *rt)
{
    node *n = xmalloc(sizeof *n);
    atomic_init(&n->ref, 1);
    int hl = height(l), hr = height(rt);
    n->height = (hl > hr ? hl : hr) + 1;
    n->l = l;
    n->r = rt;
    n->rec = r;
    return n;
}

/* mk() that restores the AVL balance when l and rt differ in height by 2
 * (one insert or delete below); takes over the same references. */
static node *bal(rec *v, node *l, node *r)
{
    int hl = height(l), hr = height(r);
    node *res;
    if (hl > hr + 1) {
        if (height(l->l) >= height(l->r))
            res = mk(rec_ref(l->rec), node_ref(l->l), mk(v, node_ref(l->r), r));
        else
            res = mk(rec_ref(l->r->rec), mk(rec_ref(l->rec), node_ref(l->l), node_ref(l->r->l)),
                     mk(v, node_ref(l->r->r), r));
        node_unref(l);
        return res;
    }
    if (hr > hl + 1) {
        if (height(r->r) >= height(r->l))
            res = mk(rec_ref(r->rec), mk(v, l, node_ref(r->l)), node_ref(r->r));
        else
            res = mk(rec_ref(r->l->rec), mk(v, l, node_ref(r->l->l)),
                     mk(rec_ref(r->rec), node_ref(r->l->r), node_ref(r->r)));
        node_unref(r);
        return res;
    }
    return mk(v, l, r);
}

/* t with x put in (replacing an equal key); t is borrowed, x taken over,
 * the result is a new reference. */
static node *ins(node *t, rec *x)
{
    if (!t)
        return mk(x, NULL, NULL);
    int c = key_cmp(x->b, x->klen, t->rec->b, t->rec->klen);
    if (c == 0)
        return mk(x, node_ref(t->l), node_ref(t->r));
    if (c < 0)
        return bal(rec_ref(t->rec), ins(t->l, x), node_ref(t->r));
    return bal(rec_ref(t->rec), node_ref(t->l), ins(t->r, x));
}

/* t without its smallest key, whose record goes to *min (a reference). */
static node *del_min(node *t, rec **min)
{
    if (!t->l) {
        *min = rec_ref(t->rec);
        return node_ref(t->r);
    }
    node *l = del_min(t->l, min);
    return bal(rec_ref(t->rec), l, node_ref(t->r));
}

/* t without the key k, which it holds; t is borrowed. */
static node *del(node *t, const void *k, size_t klen)
{
    int c = key_cmp(k, klen, t->rec->b, t->rec->klen);
    if (c < 0)
        return bal(rec_ref(t->rec), del(t->l, k, klen), node_ref(t->r));
    if (c > 0)
        return bal(rec_ref(t->rec), node_ref(t->l), del(t->r, k, klen));
    if (!t->l || !t->r)
        return node_ref(t->l ? t->l : t->r);
    rec *min;
    node *r = del_min(t->r, &min);
    return bal(min, node_ref(t->l), r);
}

static const node *lookup(const node *t, const void *k, size_t klen)
{
    while (t) {
        int c = key_cmp(k, klen, t->rec->b, t->rec->klen);
        if (c == 0)
            return t;
        t = c < 0 ? t->l : t->r;
    }
    return NULL;
}

/* ---- batches -------------------------------------------------------------- */

/* Records are appended to one buffer: kind, key length, value length (a
 * header of HDR bytes, unaligned), then the key and value bytes. */
enum { REC_PUT = 1, REC_DEL = 2, REC_DROP = 3 };
#define HDR (1 + 2 * sizeof(size_t))

struct tkv_store_batch {
    uint8_t *buf;
    size_t len, cap;
    size_t records;
    size_t bytes;
};

tkv_store_batch *tkv_store_batch_new(void) { return calloc(1, sizeof(tkv_store_batch)); }

void tkv_store_batch_free(tkv_store_batch *b)
{
    if (!b)
        return;
    free(b->buf);
    free(b);
}

static void batch_add(tkv_store_batch *b, uint8_t kind, const void *k, size_t klen, const void *v,
                      size_t vlen)
{
    if (klen > SIZE_MAX / 2 - HDR || vlen > SIZE_MAX / 2 - HDR - klen ||
        b->len > SIZE_MAX / 2 - HDR - klen - vlen) {
        fprintf(stderr, "tkv memory store: batch too large\n");
        abort();
    }
    size_t need = b->len + HDR + klen + vlen;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(b->buf, cap);
        if (!p) {
            fprintf(stderr, "tkv memory store: out of memory (%zu bytes)\n", cap);
            abort();
        }
        b->buf = p;
        b->cap = cap;
    }
    uint8_t *p = b->buf + b->len;
    p[0] = kind;
    memcpy(p + 1, &klen, sizeof klen);
    memcpy(p + 1 + sizeof klen, &vlen, sizeof vlen);
    if (klen)
        memcpy(p + HDR, k, klen);
    if (vlen)
        memcpy(p + HDR + klen, v, vlen);
    b->len = need;
    b->records++;
    b->bytes += klen + vlen;
}

void tkv_store_batch_put(tkv_store_batch *b, const void *k, size_t klen, const void *v, size_t vlen)
{
    batch_add(b, REC_PUT, k, klen, v, vlen);
}

/* The memory store keeps every record as it is: no hint to use. */
void tkv_store_batch_put_newest(tkv_store_batch *b, const void *k, size_t klen, const void *v,
                                size_t vlen)
{
    tkv_store_batch_put(b, k, klen, v, vlen);
}

void tkv_store_batch_delete(tkv_store_batch *b, const void *k, size_t klen)
{
    batch_add(b, REC_DEL, k, klen, NULL, 0);
}

void tkv_store_batch_drop(tkv_store_batch *b, const void *p, size_t plen)
{
    batch_add(b, REC_DROP, p, plen, NULL, 0);
}

void tkv_store_batch_clear(tkv_store_batch *b)
{
    b->len = 0;
    b->records = 0;
    b->bytes = 0;
}

size_t tkv_store_batch_size(const tkv_store_batch *b) { return b->records; }

size_t tkv_store_batch_bytes(const tkv_store_batch *b) { return b->bytes; }

void tkv_store_batch_iterate(const tkv_store_batch *b, void *ctx, tkv_store_put_fn put,
                             tkv_store_del_fn del_fn, tkv_store_del_fn drop_fn)
{
    for (size_t at = 0; at < b->len;) {
        const uint8_t *p = b->buf + at;
        size_t klen, vlen;
        memcpy(&klen, p + 1, sizeof klen);
        memcpy(&vlen, p + 1 + sizeof klen, sizeof vlen);
        if (p[0] == REC_PUT)
            put(ctx, p + HDR, klen, p + HDR + klen, vlen);
        else if (p[0] == REC_DROP)
            drop_fn(ctx, p + HDR, klen);
        else
            del_fn(ctx, p + HDR, klen);
        at += HDR + klen + vlen;
    }
}

static tkv_store_batch *batch_copy(const tkv_store_batch *b)
{
    tkv_store_batch *c = xmalloc(sizeof *c);
    *c = *b;
    c->cap = b->len;
    c->buf = b->len ? xmalloc(b->len) : NULL;
    if (b->len)
        memcpy(c->buf, b->buf, b->len);
    return c;
}

/* ---- the registry of directories ----------------------------------------- */

/* A directory's data: what LevelDB would keep in its files. */
typedef struct mem_db {
    struct mem_db *next;
    char *path;              /* the directory's real path */
    unsigned long token;     /* its db/MEMORY's: another means other data */
    pthread_mutex_t mu;      /* guards root and the counts */
    pthread_mutex_t wmu;     /* serialises writers */
    node *root;              /* the current state */
    size_t records, bytes;   /* in root: records, key and value bytes */
    tkv_store_batch **limbo; /* batches whose sync failed, in order */
    size_t nlimbo;           /* replayed by the next open */
} mem_db;

static pthread_mutex_t g_registry = PTHREAD_MUTEX_INITIALIZER;
static mem_db *g_dbs;
static tkv_store_mem_fault_fn g_fault;
static void *g_fault_ctx;

void tkv_store_mem_set_fault_hook(tkv_store_mem_fault_fn fn, void *ctx)
{
    g_fault = fn;
    g_fault_ctx = ctx;
}

static int fault(tkv_store_mem_event ev) { return g_fault ? g_fault(g_fault_ctx, ev) : 0; }

static void db_clear(mem_db *db)
{
    node_unref(db->root);
    db->root = NULL;
    db->records = db->bytes = 0;
    for (size_t i = 0; i < db->nlimbo; i++)
        tkv_store_batch_free(db->limbo[i]);
    free(db->limbo);
    db->limbo = NULL;
    db->nlimbo = 0;
}

/* Reads the token db/MEMORY holds: 0 if it has none of this process's. */
static unsigned long read_token(const char *marker)
{
    FILE *f = fopen(marker, "r");
    unsigned long pid = 0, token = 0;
    if (f) {
        if (fscanf(f, "tkv memory store: pid %lu token %lu", &pid, &token) != 2)
            token = 0;
        fclose(f);
    }
    return pid == (unsigned long)getpid() ? token : 0;
}

static int write_token(const char *dir, const char *marker, unsigned long token, char *err,
                       size_t errlen)
{
    char db[4200];
    snprintf(db, sizeof db, "%s/db", dir);
    FILE *f = mkdir(db, 0755) == 0 || errno == EEXIST ? fopen(marker, "w") : NULL;
    if (!f ||
        fprintf(f, "tkv memory store: pid %lu token %lu\n", (unsigned long)getpid(), token) < 0) {
        snprintf(err, errlen, "cannot open the database in %s: %s", db, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* The registry's entry for dir (which exists and is locked), made if
 * missing. db/MEMORY names the data it holds by a token unique in the
 * process: a directory without it, or with another, starts empty. */
static mem_db *db_attach(const char *dir, bool create, char *err, size_t errlen)
{
    static unsigned long next_token;
    char *path = realpath(dir, NULL);
    if (!path) {
        snprintf(err, errlen, "cannot open the database in %s/db: %s", dir, strerror(errno));
        return NULL;
    }
    char marker[4200];
    snprintf(marker, sizeof marker, "%s/db/MEMORY", path);
    pthread_mutex_lock(&g_registry);
    mem_db *db = g_dbs;
    while (db && strcmp(db->path, path) != 0)
        db = db->next;
    unsigned long token = read_token(marker);
    if (!db || !token || token != db->token) {
        struct stat st;
        if (!create && stat(marker, &st) < 0) {
            snprintf(err, errlen,
                     "cannot open the database in %s/db: does not exist "
                     "(create_if_missing is false)",
                     dir);
            db = NULL;
        } else if (write_token(path, marker, ++next_token, err, errlen) < 0) {
            db = NULL;
        } else if (db) {
            db_clear(db);
        } else if ((db = calloc(1, sizeof *db)) != NULL) {
            db->path = path;
            path = NULL;
            pthread_mutex_init(&db->mu, NULL);
            pthread_mutex_init(&db->wmu, NULL);
            db->next = g_dbs;
            g_dbs = db;
        } else {
            snprintf(err, errlen, "out of memory");
        }
        if (db)
            db->token = next_token;
    }
    pthread_mutex_unlock(&g_registry);
    free(path);
    return db;
}

/* ---- the store -------------------------------------------------------------- */

struct tkv_store_iter {
    node *root;                 /* the tree it reads (a reference) */
    int depth;                  /* nodes in path; 0: not valid */
    bool closed;                /* made on a closed store: fails */
    node *path[MAX_HEIGHT + 1]; /* root to the current record */
};

struct tkv_store_snapshot {
    node *root;
};

struct tkv_store {
    mem_db *db;
    bool closed;      /* a reopen failed: reopen and close only */
    bool failed;      /* a write failed: none until a reopen */
    bool shared_live; /* shared holds a tree */
    tkv_store_iter shared;
    tkv_store_observer observer;
    void *observer_ctx;
    int lock_fd;
    char fail_msg[160]; /* why writes are refused */
};

static node *current(tkv_store *s)
{
    pthread_mutex_lock(&s->db->mu);
    node *r = node_ref(s->db->root);
    pthread_mutex_unlock(&s->db->mu);
    return r;
}


static void apply_put(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    mem_db *db = ctx;
    const node *old = lookup(db->root, k, klen);
    if (old)
        db->bytes -= old->rec->klen + old->rec->vlen;
    else
        db->records++;
    db->bytes += klen + vlen;
    node *t = ins(db->root, rec_new(k, klen, v, vlen));
    node_unref(db->root);
    db->root = t;
}

static void apply_del(void *ctx, const void *k, size_t klen)
{
    mem_db *db = ctx;
    const node *old = lookup(db->root, k, klen);
    if (!old)
        return;
    db->records--;
    db->bytes -= old->rec->klen + old->rec->vlen;
    node *t = del(db->root, k, klen);
    node_unref(db->root);
    db->root = t;
}

/* The first record >= k in t; NULL if none. */
static const rec *lower_bound(const node *t, const void *k, size_t klen)
{
    const rec *best = NULL;
    while (t) {
        int c = key_cmp(t->rec->b, t->rec->klen, k, klen);
        if (c >= 0) {
            best = t->rec;
            if (c == 0)
                break;
            t = t->l;
        } else {
            t = t->r;
        }
    }
    return best;
}

/* Deletes every version encoding under prefix p, as the LevelDB store's
 * flush does. */
static void apply_drop(void *ctx, const void *p, size_t plen)
{
    mem_db *db = ctx;
    uint8_t *k = xmalloc(plen + 8);
    memcpy(k, p, plen);
    memset(k + plen, 0, 8);
    for (;;) {
        const rec *r = lower_bound(db->root, k, plen + 8);
        if (!r || r->klen != plen + 8 || memcmp(r->b, p, plen) != 0)
            break;
        memcpy(k, r->b, plen + 8); /* r goes with the delete */
        apply_del(db, k, plen + 8);
    }
    free(k);
}

/* Applies b as one change: the new tree is built aside (in a private copy
 * of the entry) and published by one swap. Hold db->wmu. */
static void apply(mem_db *db, const tkv_store_batch *b)
{
    mem_db work = {.root = node_ref(db->root), .records = db->records, .bytes = db->bytes};
    tkv_store_batch_iterate(b, &work, apply_put, apply_del, apply_drop);
    pthread_mutex_lock(&db->mu);
    node *old = db->root;
    db->root = work.root;
    db->records = work.records;
    db->bytes = work.bytes;
    pthread_mutex_unlock(&db->mu);
    node_unref(old);
}

/* What LevelDB's open does to the data: sync (where the hook may fail it),
 * then replay the log - here the batches in limbo. */
static int open_db(tkv_store *s, char *err, size_t errlen)
{
    int e = fault(TKV_STORE_MEM_OPEN_SYNC);
    if (e) {
        snprintf(err, errlen, "cannot open the database in %s/db: IO error: %s", s->db->path,
                 strerror(e));
        s->closed = true;
        return -1;
    }
    pthread_mutex_lock(&s->db->wmu);
    for (size_t i = 0; i < s->db->nlimbo; i++) {
        apply(s->db, s->db->limbo[i]);
        tkv_store_batch_free(s->db->limbo[i]);
    }
    s->db->nlimbo = 0;
    pthread_mutex_unlock(&s->db->wmu);
    s->closed = s->failed = false;
    return 0;
}

int tkv_store_open(const tkv_store_opts *o, tkv_store **out, char *err, size_t errlen)
{
    *out = NULL;
    tkv_store *s = calloc(1, sizeof *s);
    if (!s) {
        tkv_datadir_err(err, errlen, "out of memory", NULL);
        return -1;
    }
    s->lock_fd = -1;
    if ((o->create && tkv_datadir_make(o->dir, err, errlen) < 0) ||
        tkv_datadir_lock(o->dir, &s->lock_fd, err, errlen) < 0 ||
        !(s->db = db_attach(o->dir, o->create, err, errlen)) || open_db(s, err, errlen) < 0) {
        tkv_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int tkv_store_reopen(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    (void)o;
    tkv_store_iter_release_shared(s);
    return open_db(s, err, errlen);
}

/* Deletes every record through one batch: the memory store has no files
 * to remove, and its writes are what the fuzzers watch. */
int tkv_store_wipe(tkv_store *s, const tkv_store_opts *o, char *err, size_t errlen)
{
    if (tkv_store_reopen(s, o, err, errlen) < 0)
        return -1;
    tkv_store_batch *b = tkv_store_batch_new();
    tkv_store_iter *it = tkv_store_iter_new(s, NULL);
    int rc = b && it ? 0 : -1;
    if (rc == 0) {
        for (tkv_store_iter_seek_first(it); tkv_store_iter_valid(it); tkv_store_iter_next(it)) {
            size_t n;
            const uint8_t *k = tkv_store_iter_key(it, &n);
            tkv_store_batch_delete(b, k, n);
        }
    }
    tkv_store_iter_free(it);
    if (rc == 0)
        rc = tkv_store_write(s, b, false, err, errlen);
    else
        tkv_datadir_err(err, errlen, "out of memory", NULL);
    tkv_store_batch_free(b);
    return rc;
}

void tkv_store_close(tkv_store *s)
{
    if (!s)
        return;
    tkv_store_iter_release_shared(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

/* Nothing in memory needs repair; this checks what store.c checks and
 * takes the lock for a moment, so that it refuses the same directories. */
int tkv_store_repair(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/db", dir);
    struct stat st;
    int serr = stat(path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (serr) {
        char what[4200];
        snprintf(what, sizeof what, "no database to repair in %s", path);
        tkv_datadir_err(err, errlen, what, strerror(serr));
        return -1;
    }
    int fd = -1;
    if (tkv_datadir_lock(dir, &fd, err, errlen) < 0)
        return -1;
    close(fd);
    return 0;
}

bool tkv_store_is_persistent(void) { return false; }

int tkv_store_get(tkv_store *s, const tkv_store_snapshot *snap, const void *k, size_t klen,
                  char **val, size_t *vlen, char *err, size_t errlen)
{
    *val = NULL;
    *vlen = 0;
    if (s->closed && !snap) {
        tkv_datadir_err(err, errlen, "the store is closed (a reopen failed)", NULL);
        return -1;
    }
    node *root = snap ? snap->root : current(s);
    const node *n = lookup(root, k, klen);
    if (n) {
        /* Never NULL, even for an empty value: that would read as absent. */
        *val = xmalloc(n->rec->vlen ? n->rec->vlen : 1);
        if (n->rec->vlen)
            memcpy(*val, n->rec->b + n->rec->klen, n->rec->vlen);
        *vlen = n->rec->vlen;
    }
    if (!snap)
        node_unref(root);
    return n ? 1 : 0;
}

void tkv_store_free(void *p) { free(p); }

/* The LevelDB properties tkv reads, answered for memory. */
char *tkv_store_property(tkv_store *s, const char *name)
{
    if (s->closed)
        return NULL;
    pthread_mutex_lock(&s->db->mu);
    size_t records = s->db->records, bytes = s->db->bytes;
    pthread_mutex_unlock(&s->db->mu);
    char buf[256];
    if (strcmp(name, "leveldb.stats") == 0)
        snprintf(buf, sizeof buf,
                 "memory store (for tests: nothing persists): %zu records, %zu bytes of keys "
                 "and values\n",
                 records, bytes);
    else if (strcmp(name, "leveldb.approximate-memory-usage") == 0)
        snprintf(buf, sizeof buf, "%zu", bytes + records * (sizeof(node) + sizeof(rec)));
    else if (strncmp(name, "leveldb.num-files-at-level", 26) == 0)
        snprintf(buf, sizeof buf, "0");
    else if (strcmp(name, "leveldb.sstables") == 0)
        buf[0] = '\0';
    else
        return NULL;
    return strdup(buf);
}

/* ---- writing ----------------------------------------------------------------- */

int tkv_store_write(tkv_store *s, tkv_store_batch *b, bool sync, char *err, size_t errlen)
{
    if (s->closed || s->failed) {
        tkv_datadir_err(err, errlen,
                        s->closed ? "the store is closed (a reopen failed)" : s->fail_msg, NULL);
        return -1;
    }
    int e = fault(TKV_STORE_MEM_LOG_WRITE);
    if (!e && sync && (e = fault(TKV_STORE_MEM_LOG_SYNC)) != 0) {
        /* The batch reached the log: the next open replays it. */
        pthread_mutex_lock(&s->db->wmu);
        tkv_store_batch **l = realloc(s->db->limbo, (s->db->nlimbo + 1) * sizeof *l);
        if (!l) {
            fprintf(stderr, "tkv memory store: out of memory\n");
            abort();
        }
        s->db->limbo = l;
        l[s->db->nlimbo++] = batch_copy(b);
        pthread_mutex_unlock(&s->db->wmu);
    }
    if (e) {
        snprintf(s->fail_msg, sizeof s->fail_msg, "IO error: %.60s (memory store log): %s",
                 s->db->path, strerror(e));
        tkv_datadir_err(err, errlen, s->fail_msg, NULL);
        s->failed = true;
        return -1;
    }
    pthread_mutex_lock(&s->db->wmu);
    apply(s->db, b);
    pthread_mutex_unlock(&s->db->wmu);
    if (s->observer)
        s->observer(s->observer_ctx, b, sync);
    return 0;
}

/* The memory store has no write buffer: every write is where reads look. */
int tkv_store_flush(tkv_store *s, char *err, size_t errlen)
{
    if (!s->closed)
        return 0;
    tkv_datadir_err(err, errlen, "the store is closed (a reopen failed)", NULL);
    return -1;
}

void tkv_store_set_observer(tkv_store *s, tkv_store_observer fn, void *ctx)
{
    s->observer = fn;
    s->observer_ctx = ctx;
}

/* ---- iterators --------------------------------------------------------------- */

static void iter_init(tkv_store_iter *it, tkv_store *s, const tkv_store_snapshot *snap)
{
    it->closed = s->closed && !snap;
    it->root = it->closed ? NULL : snap ? node_ref(snap->root) : current(s);
    it->depth = 0;
}

tkv_store_iter *tkv_store_iter_new(tkv_store *s, const tkv_store_snapshot *snap)
{
    tkv_store_iter *it = malloc(sizeof *it);
    if (it)
        iter_init(it, s, snap);
    return it;
}

void tkv_store_iter_free(tkv_store_iter *it)
{
    if (!it)
        return;
    node_unref(it->root);
    free(it);
}

tkv_store_iter *tkv_store_iter_shared(tkv_store *s)
{
    if (!s->shared_live) {
        iter_init(&s->shared, s, NULL);
        s->shared_live = true;
    }
    return &s->shared;
}

void tkv_store_iter_release_shared(tkv_store *s)
{
    if (s->shared_live) {
        node_unref(s->shared.root);
        s->shared.root = NULL;
        s->shared_live = false;
    }
}

void tkv_store_iter_seek(tkv_store_iter *it, const void *k, size_t klen)
{
    /* The path to the last node >= k met on the way down is a prefix of
     * the way down. */
    int d = 0, best = 0;
    for (node *n = it->root; n;) {
        it->path[d++] = n;
        int c = key_cmp(n->rec->b, n->rec->klen, k, klen);
        if (c >= 0) {
            best = d;
            if (c == 0)
                break;
            n = n->l;
        } else {
            n = n->r;
        }
    }
    it->depth = best;
}

/* Descends from n (pushed first) always left or always right. */
static void descend(tkv_store_iter *it, node *n, bool left)
{
    for (; n; n = left ? n->l : n->r)
        it->path[it->depth++] = n;
}

void tkv_store_iter_seek_first(tkv_store_iter *it)
{
    it->depth = 0;
    descend(it, it->root, true);
}

void tkv_store_iter_seek_last(tkv_store_iter *it)
{
    it->depth = 0;
    descend(it, it->root, false);
}

/* One step: to the far side of the right (left) subtree if there is one,
 * else up to the first ancestor reached from its left (right). */
static void step(tkv_store_iter *it, bool forward)
{
    node *n = it->path[it->depth - 1];
    node *sub = forward ? n->r : n->l;
    if (sub) {
        descend(it, sub, forward);
        return;
    }
    while (it->depth > 1) {
        node *parent = it->path[it->depth - 2];
        if ((forward ? parent->l : parent->r) == it->path[it->depth - 1])
            break;
        it->depth--;
    }
    it->depth--;
}

void tkv_store_iter_next(tkv_store_iter *it) { step(it, true); }

void tkv_store_iter_prev(tkv_store_iter *it) { step(it, false); }

bool tkv_store_iter_valid(const tkv_store_iter *it) { return it->depth > 0; }

const uint8_t *tkv_store_iter_key(const tkv_store_iter *it, size_t *klen)
{
    const rec *r = it->path[it->depth - 1]->rec;
    *klen = r->klen;
    return r->b;
}

const uint8_t *tkv_store_iter_value(const tkv_store_iter *it, size_t *vlen)
{
    const rec *r = it->path[it->depth - 1]->rec;
    *vlen = r->vlen;
    return r->b + r->klen;
}

int tkv_store_iter_status(const tkv_store_iter *it, char *err, size_t errlen)
{
    if (!it->closed)
        return 0;
    tkv_datadir_err(err, errlen, "the store is closed (a reopen failed)", NULL);
    return -1;
}

/* ---- snapshots ------------------------------------------------------------ */

tkv_store_snapshot *tkv_store_snapshot_new(tkv_store *s)
{
    if (s->closed)
        return NULL;
    tkv_store_snapshot *snap = malloc(sizeof *snap);
    if (snap)
        snap->root = current(s);
    return snap;
}

void tkv_store_snapshot_free(tkv_store *s, tkv_store_snapshot *snap)
{
    (void)s;
    if (!snap)
        return;
    node_unref(snap->root);
    free(snap);
}
