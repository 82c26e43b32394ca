/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of the store's log records
 * (as LevelDB's and ext4's): the SSE 4.2 instruction where the CPU has it,
 * a table otherwise.
 */
#ifndef TKV_CRC32C_H
#define TKV_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of n bytes at p continued from crc (0 to start). */
uint32_t tkv_crc32c(uint32_t crc, const void *p, size_t n);

#endif
