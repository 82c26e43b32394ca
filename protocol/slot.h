/*
 * slot.h - the cluster's hash slots: which of the 16384 slots a key
 * belongs to. Servers check a key's slot against their map and clients
 * route by it, so both must compute exactly this function; it is Redis
 * Cluster's, byte for byte (keyHashSlot in Redis's cluster.c), so tools
 * and habits from Redis carry over.
 *
 * slot(key) = CRC16-XMODEM(tag) mod 16384, where tag is the part of the
 * key between the first '{' and the first '}' after it when that part is
 * non-empty; otherwise (no '{', no '}' after it, or "{}") the whole key.
 * Keys sharing a tag ({user:42}:cart, {user:42}:orders) share a slot, so a
 * multi-key request over them stays on one node.
 *
 * No I/O, no allocation.
 */
#ifndef TKV_SLOT_H
#define TKV_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define TKV_SLOTS 16384u

/* CRC16-CCITT as XMODEM computes it: polynomial 0x1021, initial value 0,
 * no reflection, no final xor. CRC16("123456789") is 0x31C3. */
uint16_t tkv_crc16(const void *p, size_t n);

/* The slot of a key of n bytes: 0 to TKV_SLOTS - 1. */
uint16_t tkv_slot(const void *key, size_t n);

#endif
