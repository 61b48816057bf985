//! [`LineBuf`]: an owned, zero-initialised buffer of cache lines for packed weights, placed so
//! the kernel can back it with 2 MiB pages.
//!
//! A decode step streams every weight once, so TLB misses on 4 KiB pages cost real bandwidth:
//! measured on this project's 2-core AVX-512 machine, two threads summing 1 GiB read 30.7 GB/s
//! from 4 KiB pages and 36.6 GB/s from 2 MiB pages. Buffers of 2 MiB or more are therefore
//! allocated 2 MiB-aligned and, on Linux, marked `MADV_HUGEPAGE` before their first touch (the
//! common `transparent_hugepage=madvise` setting only gives huge pages to regions that ask).
//! Elsewhere, or when the kernel declines, they are ordinary memory.

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

use crate::scratch::CacheLine;

/// Size of a transparent huge page on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// An owned, zero-initialised `[CacheLine]` (see the module docs).
pub struct LineBuf {
    ptr: NonNull<CacheLine>,
    len: usize,
}

// SAFETY: `LineBuf` owns its allocation exclusively, like a `Vec<CacheLine>`.
unsafe impl Send for LineBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for LineBuf {}

impl LineBuf {
    fn layout(len: usize) -> Layout {
        let bytes = len.max(1) * 64;
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        // `bytes` is a multiple of 64 far below isize::MAX for any buffer that fits in memory;
        // a request that does not is an allocation failure.
        Layout::from_size_align(bytes, align).unwrap_or_else(|_| handle_alloc_error(Layout::new::<CacheLine>()))
    }

    /// `len` zeroed cache lines.
    pub fn zeroed(len: usize) -> Self {
        let layout = Self::layout(len);
        let raw = if layout.align() == HUGE_PAGE {
            // Advise before the first touch (zeroing), so the faults can take huge pages.
            // SAFETY: the layout has a non-zero size; the bytes are zeroed before any read.
            unsafe {
                let raw = alloc(layout);
                if !raw.is_null() {
                    advise_huge(raw, layout.size());
                    raw.write_bytes(0, layout.size());
                }
                raw
            }
        } else {
            // SAFETY: the layout has a non-zero size.
            unsafe { alloc_zeroed(layout) }
        };
        let Some(ptr) = NonNull::new(raw.cast::<CacheLine>()) else { handle_alloc_error(layout) };
        Self { ptr, len }
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, bytes: usize) {
    // SAFETY: `ptr..ptr + bytes` is one live allocation of ours; MADV_HUGEPAGE only changes how
    // the kernel backs it. Failure (e.g. THP disabled) leaves ordinary pages, which is fine.
    unsafe {
        libc::madvise(ptr.cast(), bytes, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _bytes: usize) {}

impl Drop for LineBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this very layout.
        unsafe { dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len)) }
    }
}

impl std::ops::Deref for LineBuf {
    type Target = [CacheLine];
    fn deref(&self) -> &[CacheLine] {
        // SAFETY: `len` initialised (zeroed) lines live at `ptr` for as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for LineBuf {
    fn deref_mut(&mut self) -> &mut [CacheLine] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Clone for LineBuf {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

/// A zeroed `f32` buffer placed like the packed weights: from 2 MiB up it is 2 MiB-aligned and offered
/// 2 MiB pages before its first touch. For large activations written once per call (a
/// cross-attention cache: 25 MB for T0_3B at 64 tokens), whose 4 KiB first-touch page faults can
/// cost more than the writes themselves.
///
/// ```
/// let mut b = t0_kernels::F32Buf::zeroed(5);
/// b[4] = 1.5;
/// assert_eq!(&b[..], &[0.0, 0.0, 0.0, 0.0, 1.5]);
/// ```
#[derive(Clone)]
pub struct F32Buf {
    lines: LineBuf,
    len: usize,
}

impl F32Buf {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        Self { lines: LineBuf::zeroed(len.div_ceil(16)), len }
    }
}

impl std::ops::Deref for F32Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.lines[..])[..self.len]
    }
}

impl std::ops::DerefMut for F32Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut(&mut self.lines[..])[..self.len]
    }
}

impl std::fmt::Debug for F32Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "F32Buf(len {})", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_buffers_have_their_length_and_huge_alignment() {
        for len in [0, 1, 17, HUGE_PAGE / 4 + 5] {
            let mut b = F32Buf::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&v| v == 0.0));
            if len >= HUGE_PAGE / 4 {
                assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
            }
            if len > 0 {
                b[len - 1] = 2.5;
                assert_eq!(b.clone()[len - 1], 2.5);
            }
        }
    }

    #[test]
    fn zeroed_aligned_and_cloned() {
        for len in [0, 1, 7, (HUGE_PAGE / 64) + 3] {
            let mut b = LineBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|l| l.0 == [0; 64]));
            let align = if len * 64 >= HUGE_PAGE { HUGE_PAGE } else { 64 };
            assert_eq!(b.as_ptr() as usize % align, 0);
            if len > 0 {
                b[len - 1].0[5] = 9;
                let c = b.clone();
                assert_eq!(c[len - 1].0[5], 9);
            }
        }
    }
}
