/*
 * bigmem.c - see bigmem.h.
 */
#include "bigmem.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *tkv_bigmem_alloc(size_t n)
{
    if (n < TKV_BIGMEM_MIN)
        return malloc(n);
    /* Whole huge pages once rounding up costs at most a quarter more:
     * below that the tail past the last whole huge page stays in small
     * pages (callers such as vpage.c use what malloc_usable_size() gives
     * and count it against the memory budget). */
    size_t sz = n;
    if (n >= 4 * TKV_BIGMEM_MIN && n <= SIZE_MAX - TKV_BIGMEM_MIN)
        sz = (n + TKV_BIGMEM_MIN - 1) & ~(TKV_BIGMEM_MIN - 1);
    void *p = NULL;
    if (posix_memalign(&p, TKV_BIGMEM_MIN, sz) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    /* All of what the caller may use (malloc_usable_size), in whole huge
     * pages; a hint: failing it changes nothing. */
    (void)madvise(p, malloc_usable_size(p) & ~(TKV_BIGMEM_MIN - 1), MADV_HUGEPAGE);
#endif
    return p;
}

void *tkv_bigmem_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    if (n * size < TKV_BIGMEM_MIN)
        return calloc(n, size);
    /* Not necessarily fresh from the kernel (glibc may reuse its heap), so
     * zeroed here; the pages are touched once either way. */
    void *p = tkv_bigmem_alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}
