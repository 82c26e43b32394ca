/*
 * usage.h - what tkvd occupies: its resident memory and the size of its
 * data directory, for STATS (rss_bytes, disk_bytes).
 *
 * Resident memory is one read of /proc/self/statm: procfs, never the disk.
 * The directory's size needs a walk of every file, which can block on a
 * busy disk, so a helper thread of its own does it and the loop only reads
 * the last total. Reading it asks for a new walk when the total is older
 * than a second, so an idle server walks nothing and a STATS loop walks at
 * most once a second; the total a STATS shows is at most a walk behind.
 */
#ifndef TKV_USAGE_H
#define TKV_USAGE_H

#include <stdint.h>

/* Resident set size of this process in bytes; 0 if /proc cannot say. */
uint64_t tkv_usage_rss(void);

typedef struct tkv_du tkv_du;

/* Starts the helper thread for directory dir (copied), which walks it once
 * at once. Returns NULL if out of memory or no thread could start. */
tkv_du *tkv_du_start(const char *dir);

/* The total size in bytes of the regular files under the directory at the
 * last walk (0 before the first ends). Never blocks on the walk; asks for
 * a new one when this total is more than a second old. */
uint64_t tkv_du_bytes(tkv_du *du);

/* Stops and joins the thread (waits for a walk under way) and frees du.
 * NULL is a no-op. */
void tkv_du_stop(tkv_du *du);

#endif
