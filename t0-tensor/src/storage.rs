//! The bytes behind a tensor: owned typed vectors, or a range of a memory-mapped file.

use std::ops::Range;
use std::sync::Arc;

use half::{bf16, f16};
use memmap2::Mmap;

/// Tensor data. Owned variants are typed vectors, so they are always aligned for their type;
/// a mapped range is checked for alignment when the tensor is made (and copied if it is not).
#[derive(Debug)]
pub enum Storage {
    /// Owned f32 values.
    F32(Vec<f32>),
    /// Owned bf16 values.
    BF16(Vec<bf16>),
    /// Owned f16 values.
    F16(Vec<f16>),
    /// Owned int8 values.
    I8(Vec<i8>),
    /// A byte range of a memory-mapped file (zero-copy).
    Mapped {
        /// The map, shared by every tensor of the file.
        map: Arc<Mmap>,
        /// The tensor's bytes inside the map.
        range: Range<usize>,
    },
}

impl Storage {
    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Storage::F32(v) => bytemuck::cast_slice(v),
            Storage::BF16(v) => bytemuck::cast_slice(v),
            Storage::F16(v) => bytemuck::cast_slice(v),
            Storage::I8(v) => bytemuck::cast_slice(v),
            Storage::Mapped { map, range } => &map[range.clone()],
        }
    }

    /// True when the data is a view of a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Storage::Mapped { .. })
    }
}
