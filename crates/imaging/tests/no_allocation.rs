//! A decompression bomb must be refused before any large buffer exists. This binary holds a
//! single test so the allocation high-water mark it reads is its own.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use clearair_imaging::{DecodeLimits, ImagingError, decode};

/// The system allocator, remembering the largest single request.
struct LargestRequest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for LargestRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestRequest = LargestRequest;

#[test]
fn bomb_header_is_refused_without_a_large_allocation() {
    let bomb = common::png_claiming(100_000, 100_000);
    // Generous limits except pixels, so only the header check can stop it.
    let limits = DecodeLimits {
        max_width: u32::MAX,
        max_height: u32::MAX,
        max_alloc_bytes: u64::MAX,
        ..DecodeLimits::default()
    };
    LARGEST.store(0, Ordering::Relaxed);
    let result = decode(&bomb, &limits);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(matches!(
        result,
        Err(ImagingError::TooLarge {
            width: 100_000,
            height: 100_000,
            ..
        })
    ));
    assert!(
        largest < 64 * 1024,
        "largest allocation during decode: {largest} bytes"
    );
}
