/*
 * test_slot.c - the hash slot function (protocol/slot.c) is Redis
 * Cluster's: the CRC check value, the slots Redis's documentation gives
 * for its examples, and every hash-tag rule of its specification.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "slot.h"

static uint16_t slot_of(const char *k) { return tkv_slot(k, strlen(k)); }

Test(slot, crc16_check_value)
{
    /* The CRC catalogue's check value for CRC-16/XMODEM. */
    cr_assert_eq(tkv_crc16("123456789", 9), 0x31C3);
    cr_assert_eq(tkv_crc16("", 0), 0);
}

Test(slot, redis_documented_slots)
{
    /* CLUSTER KEYSLOT examples from Redis's documentation. */
    cr_assert_eq(slot_of("somekey"), 11058);
    cr_assert_eq(slot_of("foo{hash_tag}"), 2515);
    cr_assert_eq(slot_of("foo"), 12182);
    cr_assert_eq(slot_of("hello"), 866);
    cr_assert_eq(slot_of("123456789"), 0x31C3 % 16384);
}

Test(slot, hash_tags)
{
    /* The cluster specification's examples. */
    cr_assert_eq(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    cr_assert_eq(slot_of("{user1000}.following"), slot_of("user1000"));
    cr_assert_eq(slot_of("foo{bar}{zap}"), slot_of("bar"));
    cr_assert_eq(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    /* An empty tag: the whole key is hashed, not the empty string. */
    cr_assert_eq(slot_of("foo{}{bar}"), tkv_crc16("foo{}{bar}", 10) % 16384);
    cr_assert_neq(slot_of("{}a"), slot_of("{}b"));
    /* No closing brace: the whole key. */
    cr_assert_eq(slot_of("{abc"), tkv_crc16("{abc", 4) % 16384);
    cr_assert_eq(slot_of("abc}"), tkv_crc16("abc}", 4) % 16384);
}

Test(slot, binary_keys_and_range)
{
    /* Keys are bytes: a NUL inside a tag is hashed like any other byte. */
    const uint8_t k[] = {'{', 0, 1, '}', 'x'};
    const uint8_t t[] = {0, 1};
    cr_assert_eq(tkv_slot(k, sizeof k), tkv_slot(t, sizeof t));
    char buf[16];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(buf, sizeof buf, "key:%d", i);
        cr_assert_lt(tkv_slot(buf, (size_t)n), TKV_SLOTS);
    }
}
