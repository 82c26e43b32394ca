/*
 * test_wire.c - every engine code and miss reason maps to the wire, and to
 * the status or reason the protocol documents for it (server/wire.c).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "wire.h"

/* Every engine code, in enum order from 0, and the status it must become.
 * A code added to engine.h and forgotten in wire.c is a -Wswitch warning
 * there; this table pins what each one maps to. */
static const struct {
    tkv_eng_rc rc;
    tkv_status want;
} status_map[] = {
    {TKV_E_OK, TKV_ST_OK},
    {TKV_E_NOT_FOUND, TKV_ST_NOT_FOUND},
    {TKV_E_OUT_OF_RANGE, TKV_ST_OUT_OF_RANGE},
    {TKV_E_STORAGE, TKV_ST_STORAGE},
    {TKV_E_NOMEM, TKV_ST_INTERNAL},
    {TKV_E_WOULD_BLOCK, TKV_ST_INTERNAL},
};

static const struct {
    tkv_eng_miss m;
    tkv_miss want;
} miss_map[] = {
    {TKV_EM_NO_KEY, TKV_M_NO_KEY},
    {TKV_EM_BEFORE_FIRST, TKV_M_BEFORE_FIRST},
    {TKV_EM_DELETED, TKV_M_DELETED},
    {TKV_EM_BELOW_HORIZON, TKV_M_BELOW_HORIZON},
    {TKV_EM_NO_SUCH_VERSION, TKV_M_NO_SUCH_VERSION},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(wire, every_engine_code_maps)
{
    for (size_t i = 0; i < N(status_map); i++) {
        cr_assert_eq((size_t)status_map[i].rc, i, "engine codes are listed in order");
        tkv_status got = tkv_wire_status(status_map[i].rc);
        cr_assert_eq(got, status_map[i].want, "engine code %zu maps to %d", i, got);
        cr_assert_str_neq(tkv_status_name(got), "ERROR", "engine code %zu: not a wire status", i);
    }
    /* Distinct engine codes stay distinct on the wire: a client can tell
     * each outcome apart. WOULD_BLOCK is not an outcome: the dispatcher
     * waits for the load and runs the request again. */
    for (size_t i = 0; i < N(status_map); i++)
        for (size_t j = i + 1; j < N(status_map); j++)
            if (status_map[i].rc != TKV_E_WOULD_BLOCK && status_map[j].rc != TKV_E_WOULD_BLOCK)
                cr_assert_neq(tkv_wire_status(status_map[i].rc), tkv_wire_status(status_map[j].rc));
}

Test(wire, every_miss_reason_maps)
{
    for (size_t i = 0; i < N(miss_map); i++) {
        cr_assert_eq((size_t)miss_map[i].m, i, "miss reasons are listed in order");
        cr_assert_eq(tkv_wire_miss(miss_map[i].m), miss_map[i].want, "miss reason %zu", i);
    }
    for (size_t i = 0; i < N(miss_map); i++)
        for (size_t j = i + 1; j < N(miss_map); j++)
            cr_assert_neq(tkv_wire_miss(miss_map[i].m), tkv_wire_miss(miss_map[j].m));
}

/* Only the engine's codes are known: anything else is a bug, not a quiet
 * success. */
Test(wire, an_unknown_code_is_internal)
{
    cr_assert_eq(tkv_wire_status((tkv_eng_rc)(TKV_E_WOULD_BLOCK + 1)), TKV_ST_INTERNAL);
    cr_assert_eq(tkv_wire_status((tkv_eng_rc)-1), TKV_ST_INTERNAL);
}
