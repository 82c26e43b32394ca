/*
 * bigmem.h - allocations of megabytes that are cheap to touch.
 *
 * Memory fresh from the kernel costs a page fault per 4 KiB on first
 * touch. On the machine tkv is measured on (a virtual machine) that is
 * about 14 us a page - 3.6 ms per MiB, 60 times the cost of writing it -
 * and a reactor that copies a 20 MiB page of versions into a new
 * allocation stalled for 75 ms in faults. Backed by transparent huge pages
 * (madvise mode, as Debian ships the kernel), such an allocation faults
 * once per 2 MiB: 26 times less time in the same test. Elsewhere it saves
 * TLB misses. tkv does not fork, so huge pages' copy-on-write cost (why
 * Redis advises against them) does not arise.
 */
#ifndef TKV_BIGMEM_H
#define TKV_BIGMEM_H

#include <stddef.h>

/* Below this, plain malloc: a huge page for a small allocation would waste
 * most of it. */
#define TKV_BIGMEM_MIN ((size_t)2 << 20)

/* malloc(n), but an allocation of TKV_BIGMEM_MIN or more is aligned to
 * 2 MiB and asks the kernel for huge pages (a hint: without them it is
 * ordinary memory). Free it with free(); malloc_usable_size() works. */
void *tkv_bigmem_alloc(size_t n);

/* calloc(n, size) the same way; NULL if n * size overflows. */
void *tkv_bigmem_calloc(size_t n, size_t size);

#endif
