/*
 * retention.h - the retention rule of server/meta.c and server/sweep.c,
 * written once for both test models (tests/unit/model.h and the fuzz
 * model, tests/fuzz/request_model.c): a walk over a key's visible
 * versions, newest first, that says of each whether a policy keeps it.
 *
 * A policy (versions, age; 0 is no limit for either) puts a cut-off H:
 * now - age, raised to the ts of the versions-th newest visible version.
 * Versions newer than H are kept. Of those at or below H, the newest - the
 * version current at H - is the *floor*: it is kept and becomes the key's
 * horizon if anything older is cut. Every older visible version is cut.
 */
#ifndef TKV_TEST_RETENTION_H
#define TKV_TEST_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

typedef enum ret_verdict {
    RET_KEEP,  /* newer than the cut-off */
    RET_FLOOR, /* the version current at the cut-off: kept */
    RET_CUT,   /* older than the floor: the policy removes it */
} ret_verdict;

typedef struct ret_walk {
    uint32_t versions; /* the policy's count, 0: none */
    uint64_t H;        /* the cut-off so far */
    uint64_t seen;     /* visible versions walked */
    bool has_floor;
    uint64_t floor; /* the floor's ts, once has_floor */
    uint64_t cut;   /* versions cut so far */
} ret_walk;

static inline ret_walk ret_begin(uint32_t versions, uint64_t age, uint64_t now)
{
    return (ret_walk){.versions = versions, .H = age && now > age ? now - age : 0};
}

/* The verdict on the next visible version (ts), newest first. */
static inline ret_verdict ret_step(ret_walk *w, uint64_t ts)
{
    w->seen++;
    if (w->versions && w->seen == w->versions && ts > w->H)
        w->H = ts;
    if (ts > w->H)
        return RET_KEEP;
    if (!w->has_floor) {
        w->has_floor = true;
        w->floor = ts;
        return RET_FLOOR;
    }
    w->cut++;
    return RET_CUT;
}

/* Where the walk puts the horizon: the floor if anything was cut, else 0
 * (the horizon stays where it was). */
static inline uint64_t ret_horizon(const ret_walk *w) { return w->cut ? w->floor : 0; }

#endif
