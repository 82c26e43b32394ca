/*
 * libev_single_loop.c - compiles tkv/adapters/libev.h with EV_MULTIPLICITY=0
 * (tests/meson.build sets it): a libev built for one loop has no loop
 * argument, and the adapter must still build there. Compiled, not run.
 */
#include "tkv/adapters/libev.h"

int tkv_test_libev_single_loop(tkv_async *ac);

int tkv_test_libev_single_loop(tkv_async *ac) { return tkv_libev_attach(EV_DEFAULT_ ac); }
