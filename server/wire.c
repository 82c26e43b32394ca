/*
 * wire.c - implements wire.h: engine results mapped to reply statuses and
 * miss reasons. Switches without a default, so a code added to the engine
 * and forgotten here is a compiler warning (-Wswitch), and
 * tests/unit/test_wire.c checks every code's mapping.
 */
#include "wire.h"

/* cmd.c hands request times to the engine unchanged: "latest" must mean
 * the same on both sides. */
_Static_assert(TKV_TS_MAX == TKV_ENG_TS_MAX, "the wire's and the engine's latest time differ");
/* No key the wire can carry is too long for the engine. */
_Static_assert(TKV_KEY_MAX_LIMIT <= TKV_ENG_KEY_MAX,
               "the wire carries keys the engine cannot hold");

tkv_status tkv_wire_status(tkv_eng_rc rc)
{
    switch (rc) {
    case TKV_E_OK: return TKV_ST_OK;
    case TKV_E_NOT_FOUND: return TKV_ST_NOT_FOUND;
    case TKV_E_OUT_OF_RANGE: return TKV_ST_OUT_OF_RANGE;
    case TKV_E_STORAGE: return TKV_ST_STORAGE;
    case TKV_E_NOMEM: return TKV_ST_INTERNAL;
    /* The dispatcher waits for the load instead; never a reply. */
    case TKV_E_WOULD_BLOCK: return TKV_ST_INTERNAL;
    }
    /* Not an engine code at all: a bug, reported as one. */
    return TKV_ST_INTERNAL;
}

tkv_miss tkv_wire_miss(tkv_eng_miss m)
{
    switch (m) {
    case TKV_EM_NO_KEY: return TKV_M_NO_KEY;
    case TKV_EM_BEFORE_FIRST: return TKV_M_BEFORE_FIRST;
    case TKV_EM_DELETED: return TKV_M_DELETED;
    case TKV_EM_BELOW_HORIZON: return TKV_M_BELOW_HORIZON;
    case TKV_EM_NO_SUCH_VERSION: return TKV_M_NO_SUCH_VERSION;
    }
    /* Unreachable for an engine reason; "no key" claims the least. */
    return TKV_M_NO_KEY;
}
