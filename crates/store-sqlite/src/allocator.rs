//! SQLite allocates through mimalloc, the allocator of the binaries, instead of the C library's
//! `malloc`.
//!
//! Under load the writer's connection allocates and frees without pause: page buffers as the
//! cache turns over, the statement journal of every savepoint in 1 KiB chunks, values copied
//! out for sqlx. With glibc's allocator that was ~4 % of `cronhook`'s CPU at 12 000 executions
//! per second, much of it consolidating free chunks (BENCHMARKS.md, session 12).

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// Hands SQLite mimalloc's functions, once per process, before the first connection opens.
/// Returns whether SQLite allocates through them: SQLite takes an allocator only before it first
/// initializes, so a process that used SQLite some other way first keeps the C library's.
pub(crate) fn route_sqlite_to_mimalloc() -> bool {
    static ROUTED: OnceLock<bool> = OnceLock::new();
    *ROUTED.get_or_init(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(sqlite_malloc),
            xFree: Some(sqlite_free),
            xRealloc: Some(sqlite_realloc),
            xSize: Some(sqlite_size),
            xRoundup: Some(sqlite_roundup),
            xInit: Some(sqlite_init),
            xShutdown: Some(sqlite_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to an sqlite3_mem_methods, of which
        // SQLite keeps its own copy before returning. The functions below keep SQLite's
        // contract (8-byte aligned blocks, sizes of live blocks). No other SQLite call runs
        // meanwhile: every connection of this process is opened through `SqliteStore::open`,
        // which calls this first, and the OnceLock runs it once.
        #[allow(unsafe_code)]
        let rc = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            )
        };
        if rc != ffi::SQLITE_OK {
            tracing::warn!(
                code = rc,
                "SQLite was initialized before the store opened; it keeps the C library's allocator"
            );
        }
        rc == ffi::SQLITE_OK
    })
}

// SQLite asks with an int and never for a negative size; a block SQLite frees or resizes is one
// these functions returned.

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_malloc(size: c_int) -> *mut c_void {
    // SAFETY: mi_malloc accepts any size and returns null when out of memory, as SQLite expects.
    unsafe { libmimalloc_sys::mi_malloc(usize::try_from(size).unwrap_or(0)) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_free(block: *mut c_void) {
    // SAFETY: `block` came from sqlite_malloc or sqlite_realloc (or is null).
    unsafe { libmimalloc_sys::mi_free(block) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_realloc(block: *mut c_void, size: c_int) -> *mut c_void {
    // SAFETY: as sqlite_free; on failure the old block stays valid, as SQLite expects.
    unsafe { libmimalloc_sys::mi_realloc(block, usize::try_from(size).unwrap_or(0)) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_size(block: *mut c_void) -> c_int {
    // SAFETY: as sqlite_free; the usable size is at least what was asked.
    let size = unsafe { libmimalloc_sys::mi_usable_size(block) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_roundup(size: c_int) -> c_int {
    // SAFETY: a pure function of its argument.
    let rounded = unsafe { libmimalloc_sys::mi_good_size(usize::try_from(size).unwrap_or(0)) };
    c_int::try_from(rounded).unwrap_or(size)
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_allocates_through_mimalloc_once_a_store_is_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("alloc.db").display());
        let store = crate::SqliteStore::open(&url).await.expect("open");
        store.migrate().await.expect("migrate");
        assert!(
            route_sqlite_to_mimalloc(),
            "configured before SQLite initialized"
        );
        #[allow(unsafe_code)]
        // SAFETY: a block from sqlite3_malloc, asked about and freed through SQLite's allocator.
        unsafe {
            let block = ffi::sqlite3_malloc(1000);
            assert!(!block.is_null());
            assert!(
                libmimalloc_sys::mi_is_in_heap_region(block),
                "SQLite's block is mimalloc's"
            );
            assert!(ffi::sqlite3_msize(block) >= 1000);
            let grown = ffi::sqlite3_realloc(block, 100_000);
            assert!(libmimalloc_sys::mi_is_in_heap_region(grown));
            ffi::sqlite3_free(grown);
        }
        // The store works on it.
        use cronhook_store::Store;
        store.ping().await.expect("ping");
    }
}
