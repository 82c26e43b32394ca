/*
 * model.h - the one trivially correct model of a tkv key's versions, for
 * the tests that hold the engine to it: test_model.c (the engine's API
 * under thousands of random operations) and fuzz_request (the whole
 * request path, through request_check.c and request_model.c).
 *
 * A key's history (mhist) is its stored versions in a sorted array and the
 * metadata the engine keeps with them: the horizon, the key's own policy
 * and the two hints that bring a key into the sweep's scope. Every rule of
 * engine.h and PROTOCOL.md that decides an answer is written here once,
 * the plainest way, by linear scans over that array:
 *  - visibility: a version is visible at or after the horizon while it has
 *    not expired (expires == 0 or > now); reads see visible versions only;
 *  - GET as of a time and by ordinal: the version, or the miss reason and
 *    its time, and the interval [ts, next) the answer holds for;
 *  - RANGE, COUNT and DEL's count, over visible versions;
 *  - the timestamp a write without one gets, and which writes are refused;
 *  - retention: where a policy puts the horizon and what it removes
 *    (RETAIN, POLICY, the sweep moving horizons), and what a full sweep
 *    deletes.
 * What belongs to one user stays with it: test_model's driver, and the
 * fuzz model's snapshots (committed, in flight, in limbo) and its marks on
 * keys whose invisible versions a sweep may have taken.
 *
 * Conventions. A zeroed mhist is a key never written: no versions, no
 * metadata, nothing to initialise; a NULL `const mhist *` reads the same.
 * Values are not copied: the caller keeps their bytes alive as long as the
 * model holds them (an mvals does). `now` is the engine's clock. Pointers
 * into an mhist (mver, an answer's version) stay valid until it changes.
 * Running out of memory aborts: this is test code.
 */
#ifndef TKV_TEST_MODEL_H
#define TKV_TEST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* One stored version. */
typedef struct mver {
    uint64_t ts;
    const uint8_t *val; /* the value's bytes; NULL: a tombstone */
    uint32_t len;
    uint64_t expires; /* 0: never */
} mver;

/* One key: its stored versions and metadata. */
typedef struct mhist {
    mver *v; /* stored versions, ascending ts, unique */
    size_t n, cap;
    uint64_t horizon;    /* answers before it are gone (0: none) */
    tkv_policy policy;   /* the key's own, if has_policy */
    bool has_policy;     /* set by RETAIN; else the server's default applies */
    uint64_t min_expiry; /* the earliest expiry the key may hold (0: none):
                            lowered by writes, recomputed by its sweep,
                            cleared by DEL; a lower bound, as the engine
                            keeps it */
    bool below;          /* RETAIN moved the horizon; no sweep since */
} mhist;

/* ---- visibility ---------------------------------------------------------- */

bool mhist_visible(const mhist *h, const mver *v, uint64_t now);
size_t mhist_visible_count(const mhist *h, uint64_t now);
/* The visible versions, ascending, into out (room for h->n); returns their
 * number. */
size_t mhist_visible_list(const mhist *h, uint64_t now, const mver **out);

/* ---- reads --------------------------------------------------------------- */

/* What a GET must answer: a version (a value, never a tombstone), or a
 * miss with its reason - in the engine's terms (tkv_eng_miss); a wire user
 * maps them to PROTOCOL.md's reasons. */
typedef struct manswer {
    const mver *v;     /* found: the version; NULL: a miss */
    tkv_eng_miss miss; /* a miss: why */
    bool has_at;       /* DELETED: the tombstone's ts; BELOW_HORIZON: the */
    uint64_t at;       /*   horizon */
    bool has_next;     /* the first visible version after the one found, */
    uint64_t next;     /*   or after the time asked (an ordinal miss: none) */
} manswer;

/* The visible version current at T: the one with the largest ts <= T. */
manswer mhist_get(const mhist *h, uint64_t T, uint64_t now);
/* The n-th visible version: n >= 1 from the oldest, n <= -1 from the
 * newest. n == 0 is refused before it reaches the engine: not modelled. */
manswer mhist_get_nth(const mhist *h, int64_t n, uint64_t now);
/* RANGE: the visible versions with from <= ts <= to, ascending (descending
 * if reverse), at most limit of them, into out (room for h->n); returns
 * their number. from > to selects none. */
size_t mhist_range(const mhist *h, uint64_t from, uint64_t to, uint64_t limit, bool reverse,
                   uint64_t now, const mver **out);
/* COUNT: the visible versions with from <= ts <= to. */
uint64_t mhist_count(const mhist *h, uint64_t from, uint64_t to, uint64_t now);

/* ---- writes -------------------------------------------------------------- */

/* The timestamp a write (PUT, tombstone, MPUT item) gets: ts if has_ts,
 * else max(now, newest visible + 1, horizon). False - OUT_OF_RANGE - if
 * that is below the horizon, or the newest visible version is at
 * TKV_ENG_TS_MAX and no later one exists. */
bool mhist_write_ts(const mhist *h, bool has_ts, uint64_t ts, uint64_t now, uint64_t *out);
/* When a version written now with ttl expires (0: never); saturates at
 * UINT64_MAX as the engine does. */
uint64_t mhist_expiry(uint64_t ttl, uint64_t now);
/* Stores (or replaces) the version at ts; val NULL stores a tombstone. The
 * caller has checked the write (mhist_write_ts). */
void mhist_put(mhist *h, uint64_t ts, const uint8_t *val, uint32_t len, uint64_t expires);
/* DEL without a time: forgets every version and the key's metadata. Its
 * answer is mhist_visible_count() before: only what a reader could see
 * counts, whether the sweep has removed the rest yet or not. */
void mhist_del(mhist *h);

/* ---- retention ----------------------------------------------------------- */

/* The policy in effect: the key's own, or the server's default. */
tkv_policy mhist_policy(const mhist *h, const tkv_policy *dflt);
/* Where policy p puts the horizon, by PROTOCOL.md's rule (server/meta.c):
 * H starts at now - age; walking the visible versions newest first, the
 * versions-th raises it to its own ts. Versions after H are kept, and so is
 * the first at or before H (the version current at H); every older one is
 * removed. Returns that version's ts if anything is removed, else 0 (the
 * horizon stays); *removable (may be NULL) gets the count. A zero p
 * removes nothing. */
uint64_t mhist_evaluate(const mhist *h, const tkv_policy *p, uint64_t now, uint64_t *removable);

/* What RETAIN reports. */
typedef struct mretain {
    uint64_t removable; /* visible versions the policy removes now */
    uint64_t horizon;   /* the horizon it sets (0: none) */
} mretain;

/* RETAIN p (a zero p clears the key's own policy, and the default is
 * evaluated instead): unless dry_run, sets the key's policy and raises its
 * horizon at once. */
mretain mhist_retain(mhist *h, const tkv_policy *p, const tkv_policy *dflt, bool dry_run,
                     uint64_t now);
/* Whether a sweep pass visits the key: a server-wide policy, the key's
 * own, an expiry stored, or a horizon RETAIN moved (the engine's sweep
 * index). */
bool mhist_sweep_scope(const mhist *h, const tkv_policy *dflt);
/* One sweep of the key, as server/sweep.c does it: deletes expired
 * versions, versions below the horizon and those the policy in effect
 * removes, and raises the horizon where the policy puts it. A key that
 * loses every version keeps its policy and horizon. Returns the number of
 * versions deleted. Call it only for a key in scope (mhist_sweep_scope
 * before the pass). */
uint64_t mhist_sweep(mhist *h, const tkv_policy *dflt, uint64_t now);

/* ---- storage ------------------------------------------------------------- */

/* Makes *to a copy of *from (the version array; value bytes are shared). */
void mhist_copy(mhist *to, const mhist *from);
/* Frees the version array; the mhist is zeroed: a key never written. */
void mhist_free(mhist *h);

/* Value bytes kept until mvals_free(), so versions and their copies can
 * point at them. Zeroed is empty. */
typedef struct mvals {
    uint8_t **p;
    size_t n, cap;
} mvals;

/* A copy of val's len bytes (never NULL, even for len 0). */
const uint8_t *mvals_keep(mvals *a, const uint8_t *val, uint32_t len);
void mvals_free(mvals *a);

#endif
