//! The process's global allocator: the system allocator, except that very
//! large requests are served by `mmap(MAP_NORESERVE)`; and the system
//! allocator's tuning for fetch buffers ([`tune_for_fetch_buffers`]).
//!
//! Why: the `kafka-protocol` decoders reserve `Vec` capacity from array
//! counts read off the wire before decoding any element. A 17-byte Metadata
//! request claiming 2^31-1 topics asks for ~150 GB; the system allocator
//! refuses, and Rust aborts the whole broker. Served from an unreserved
//! anonymous mapping, that reservation costs only address space: the decoder
//! touches no page of it, fails at the end of the frame with a decode error,
//! and the connection is closed as for any malformed request.
//!
//! No legitimate allocation here comes near the threshold: request frames
//! are capped at `--max-request-size` (100 MiB by default) and fetch
//! responses at 55 MiB. Memory from this path is real memory once touched,
//! so correctness does not depend on the size. Under strict overcommit
//! (`vm.overcommit_memory=2`) the kernel ignores MAP_NORESERVE and such a
//! request still fails; the codec should bound its own reservations, and
//! this can go when it does.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// mmap returns page-aligned memory; larger alignments stay with System.
const PAGE: usize = 4096;

pub struct Allocator {
    /// Allocations at least this large go to `mmap`.
    huge: usize,
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

impl Allocator {
    /// The broker's allocator: 1 GiB and up is mapped.
    pub const fn new() -> Self {
        Self { huge: 1 << 30 }
    }

    fn is_huge(&self, layout: &Layout) -> bool {
        layout.size() >= self.huge && layout.align() <= PAGE
    }
}

// SAFETY: every pointer handed out is either from `System` (and returned to
// it) or from a private anonymous mapping of at least `layout.size()` bytes,
// page-aligned (so aligned for any `align <= PAGE`), unmapped exactly once
// in `dealloc`. Which path a block took is a pure function of its layout,
// and callers pass the same layout to `dealloc` as to `alloc`.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.is_huge(&layout) {
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.is_huge(&layout) {
            // Anonymous mappings are zero-filled.
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.is_huge(&layout) {
            // SAFETY: `ptr` came from `map(layout.size())` (same layout).
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
        } else {
            // SAFETY: `ptr` came from System with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        if !self.is_huge(&layout) && !self.is_huge(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_layout` has a non-zero size (it is at least one of the
        // two sizes, and a huge one is non-zero, or new_size >= HUGE).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and do not
            // overlap (`new` is a fresh allocation); `ptr` is then freed with
            // the layout it was allocated with.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// Blocks up to this size come from the system allocator's heap, not from
/// a fresh mapping each (glibc's `M_MMAP_THRESHOLD`).
const HEAP_BLOCKS_UP_TO: i32 = 4 << 20;
/// Free memory at the top of a heap is kept for reuse up to this size
/// before it is given back (glibc's `M_TRIM_THRESHOLD`).
const KEEP_FREE_UP_TO: i32 = 16 << 20;

/// Tunes glibc's allocator for the fetch path: each partition read is a
/// buffer of up to `max.partition.fetch.bytes` (1 MiB by default), freed
/// once the response is written. With glibc's defaults such blocks are
/// mapped and unmapped, or the heap is trimmed under them, so every fetch
/// page-faults its buffer in afresh; that was a quarter of the broker's CPU
/// when consuming six partitions. Keeping blocks up to 4 MiB in the heap,
/// and up to 16 MiB of freed heap for reuse, removes that. Call once at
/// start, before any thread is spawned.
pub fn tune_for_fetch_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it takes no pointers,
    // and it runs before any other thread exists, so no allocation races it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREE_UP_TO);
    }
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; no existing memory is
    // affected. MAP_FAILED is turned into null, which callers treat as OOM.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reserves_far_more_than_memory_without_touching_it() {
        // 150 GB, as the malformed request asks; fine because untouched.
        let v: Vec<[u8; 72]> = Vec::with_capacity((1 << 31) - 1);
        assert!(v.capacity() >= (1 << 31) - 1);
    }

    #[test]
    fn mapped_blocks_keep_data_across_realloc_both_ways() {
        // A low threshold sends these small blocks down the mmap path.
        let a = Allocator { huge: 2 * PAGE };
        let small = Layout::from_size_align(100, 8).unwrap();
        let big = Layout::from_size_align(3 * PAGE, 8).unwrap();
        // SAFETY: every access stays inside its block's current size, and
        // each block is reallocated or freed once with its current layout.
        unsafe {
            let p = a.alloc(small);
            p.write_bytes(0xab, 100);
            // System -> mapped.
            let q = a.realloc(p, small, big.size());
            assert!(!q.is_null());
            assert_eq!(*q.add(99), 0xab);
            q.add(big.size() - 1).write(0xcd);
            // Mapped -> larger mapping.
            let r = a.realloc(q, big, 5 * PAGE);
            assert_eq!(*r.add(99), 0xab);
            assert_eq!(*r.add(big.size() - 1), 0xcd);
            // Mapped -> System.
            let bigger = Layout::from_size_align(5 * PAGE, 8).unwrap();
            let s = a.realloc(r, bigger, 100);
            assert_eq!(*s.add(0), 0xab);
            a.dealloc(s, small);
            let z = a.alloc_zeroed(big);
            assert_eq!(*z.add(big.size() / 2), 0);
            a.dealloc(z, big);
        }
    }
}
