//! Per-thread scratch memory, so hot paths (decode GEMV, attention) allocate nothing once warm.
//!
//! Each thread owns a few growable buffers of 64-byte aligned cache lines, one per nesting level;
//! a request nested deeper than that gets a fresh allocation instead of a panic.

use std::cell::RefCell;

/// One 64-byte aligned cache line; buffers are made of these so packed panels start aligned.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct CacheLine(pub [u8; 64]);

/// `n` bytes rounded up to whole cache lines.
pub(crate) fn lines_for(bytes: usize) -> usize {
    bytes.div_ceil(64)
}

/// Scratch buffers per thread: a call nested inside another's `f` (the int8 matmul quantises a
/// row while holding its tile buffer) takes the next free one.
const SLOTS: usize = 3;

thread_local! {
    static SCRATCH: [RefCell<Vec<CacheLine>>; SLOTS] =
        const { [RefCell::new(Vec::new()), RefCell::new(Vec::new()), RefCell::new(Vec::new())] };
}

/// Runs `f` on at least `lines` cache lines of this thread's scratch (contents unspecified).
pub(crate) fn with_scratch<R>(lines: usize, f: impl FnOnce(&mut [CacheLine]) -> R) -> R {
    SCRATCH.with(|slots| {
        for cell in slots {
            if let Ok(mut buf) = cell.try_borrow_mut() {
                if buf.len() < lines {
                    buf.resize(lines, CacheLine([0; 64]));
                }
                return f(&mut buf[..lines]);
            }
        }
        f(&mut vec![CacheLine([0; 64]); lines])
    })
}

/// Runs `f` on at least `len` f32s of this thread's scratch (contents unspecified).
pub(crate) fn with_f32_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(lines_for(len * 4), |lines| f(&mut bytemuck::cast_slice_mut(lines)[..len]))
}
