/*
 * store_mem.h - the test hook of the in-memory store (store_mem.c), built
 * instead of store.c when tkv is configured with -Dstore=memory (meson
 * then defines TKV_STORE_MEMORY for whatever links libtkvserver). Fuzzing
 * and tests only: nothing it holds outlives the process.
 *
 * The hook stands in for a failing disk. LevelDB calls write() and
 * fdatasync() on its log and manifest files, where a test can make them
 * fail; the memory store has no files, so it asks the hook instead at the
 * three points where LevelDB would touch them on the caller's thread.
 */
#ifndef TKV_STORE_MEM_H
#define TKV_STORE_MEM_H

typedef enum tkv_store_mem_event {
    /* tkv_store_write() is about to append the batch to the log (every
     * write, empty batches too). Failing it writes nothing: the store is
     * unchanged, as when LevelDB's write() of the log fails (ENOSPC). */
    TKV_STORE_MEM_LOG_WRITE,
    /* A synced tkv_store_write() appended the batch to the log and syncs
     * it. Failing it (EIO) leaves the batch "in limbo": the write fails and
     * reads do not see it, but the next successful open or reopen of the
     * directory replays it, as LevelDB replays a log record whose sync
     * failed after write() succeeded. */
    TKV_STORE_MEM_LOG_SYNC,
    /* tkv_store_open() or tkv_store_reopen() syncs its new state (LevelDB:
     * the manifest). Failing it fails the open; after a reopen the store is
     * left closed, and a batch in limbo stays there. */
    TKV_STORE_MEM_OPEN_SYNC,
} tkv_store_mem_event;

/* Returns 0 to let the event happen, or an errno value to fail it with.
 * Called on the thread making the store call, with no store lock held. */
typedef int (*tkv_store_mem_fault_fn)(void *ctx, tkv_store_mem_event ev);

/* Installs fn (NULL: none) with its ctx for every memory store of the
 * process. Set it while no store call is running. */
void tkv_store_mem_set_fault_hook(tkv_store_mem_fault_fn fn, void *ctx);

#endif
