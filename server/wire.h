/*
 * wire.h - the engine's results in the wire's terms: the one place where
 * an engine code (engine.h) becomes a reply status or miss reason
 * (proto.h). The engine knows nothing of the wire and the wire nothing of
 * the engine; only the server, which speaks both, includes this header.
 */
#ifndef TKV_WIRE_H
#define TKV_WIRE_H

#include "engine.h"
#include "proto.h"

/* The reply status for an engine result: OK, NOT_FOUND, OUT_OF_RANGE and
 * STORAGE keep their names; running out of memory is INTERNAL. */
tkv_status tkv_wire_status(tkv_eng_rc rc);

/* The wire's miss reason for the engine's (the same five reasons). */
tkv_miss tkv_wire_miss(tkv_eng_miss m);

#endif
