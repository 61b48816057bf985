//! Per-thread scratch memory, so hot paths (decode GEMV, attention) allocate nothing once warm.
//!
//! Each thread owns one growable buffer of 64-byte aligned cache lines. A nested request on the
//! same thread (which the kernels avoid) gets a fresh allocation instead of a panic.

use std::cell::RefCell;

/// One 64-byte aligned cache line; buffers are made of these so packed panels start aligned.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct CacheLine(pub [u8; 64]);

/// `n` bytes rounded up to whole cache lines.
pub(crate) fn lines_for(bytes: usize) -> usize {
    bytes.div_ceil(64)
}

thread_local! {
    static SCRATCH: RefCell<Vec<CacheLine>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on at least `lines` cache lines of this thread's scratch (contents unspecified).
pub(crate) fn with_scratch<R>(lines: usize, f: impl FnOnce(&mut [CacheLine]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < lines {
                buf.resize(lines, CacheLine([0; 64]));
            }
            f(&mut buf[..lines])
        }
        Err(_) => f(&mut vec![CacheLine([0; 64]); lines]),
    })
}

/// Runs `f` on at least `len` f32s of this thread's scratch (contents unspecified).
pub(crate) fn with_f32_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(lines_for(len * 4), |lines| f(&mut bytemuck::cast_slice_mut(lines)[..len]))
}
