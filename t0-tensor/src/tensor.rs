//! [`Tensor`]: a shape, a dtype and shared storage.

use std::ops::Range;
use std::sync::Arc;

use half::{bf16, f16};
use memmap2::Mmap;

use crate::{DType, Result, Storage, TensorError};

/// A dense, row-major tensor. Cloning is cheap (the storage is shared).
#[derive(Clone, Debug)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    storage: Arc<Storage>,
}

/// The number of elements of `shape`, or `None` when the product overflows `usize`.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

fn check_len(shape: &[usize], got: usize) -> Result<()> {
    let expected = checked_numel(shape).unwrap_or(usize::MAX);
    if expected != got {
        return Err(TensorError::LengthMismatch { shape: shape.to_vec(), expected, got });
    }
    Ok(())
}

impl Tensor {
    /// An owned f32 tensor.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        check_len(&shape, data.len())?;
        Ok(Self { shape, dtype: DType::F32, storage: Arc::new(Storage::F32(data)) })
    }

    /// An owned bf16 tensor.
    pub fn from_bf16(shape: Vec<usize>, data: Vec<bf16>) -> Result<Self> {
        check_len(&shape, data.len())?;
        Ok(Self { shape, dtype: DType::BF16, storage: Arc::new(Storage::BF16(data)) })
    }

    /// An owned f16 tensor.
    pub fn from_f16(shape: Vec<usize>, data: Vec<f16>) -> Result<Self> {
        check_len(&shape, data.len())?;
        Ok(Self { shape, dtype: DType::F16, storage: Arc::new(Storage::F16(data)) })
    }

    /// An owned int8 tensor.
    pub fn from_i8(shape: Vec<usize>, data: Vec<i8>) -> Result<Self> {
        check_len(&shape, data.len())?;
        Ok(Self { shape, dtype: DType::I8, storage: Arc::new(Storage::I8(data)) })
    }

    /// A tensor over `range` of a mapped file. The range must hold exactly the shape's
    /// elements; if it is not aligned for the dtype the bytes are copied into owned storage.
    pub(crate) fn from_mapped(shape: Vec<usize>, dtype: DType, map: Arc<Mmap>, range: Range<usize>) -> Result<Self> {
        check_len(&shape, range.len() / dtype.size())?;
        let bytes = &map[range.clone()];
        if (bytes.as_ptr() as usize).is_multiple_of(dtype.size()) {
            return Ok(Self { shape, dtype, storage: Arc::new(Storage::Mapped { map, range }) });
        }
        Self::from_bytes(shape, dtype, bytes)
    }

    /// An owned tensor copied from little-endian bytes.
    pub fn from_bytes(shape: Vec<usize>, dtype: DType, bytes: &[u8]) -> Result<Self> {
        if !bytes.len().is_multiple_of(dtype.size()) {
            return Err(TensorError::LengthMismatch {
                shape,
                expected: bytes.len().div_ceil(dtype.size()),
                got: bytes.len() / dtype.size(),
            });
        }
        let chunks = bytes.chunks_exact(dtype.size());
        match dtype {
            DType::F32 => Self::from_f32(shape, chunks.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            DType::BF16 => Self::from_bf16(shape, chunks.map(|c| bf16::from_le_bytes([c[0], c[1]])).collect()),
            DType::F16 => Self::from_f16(shape, chunks.map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
            DType::I8 => Self::from_i8(shape, chunks.map(|c| c[0] as i8).collect()),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        // Every constructor checked that the shape's product equals the data length.
        checked_numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// Size of the data in bytes.
    pub fn nbytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    fn typed<T: bytemuck::Pod>(&self, want: DType) -> Result<&[T]> {
        if self.dtype != want {
            return Err(TensorError::DTypeMismatch { expected: want, found: self.dtype });
        }
        // Alignment is guaranteed at construction (owned vectors are typed; mapped ranges are
        // checked in `from_mapped`).
        bytemuck::try_cast_slice(self.bytes())
            .map_err(|_| TensorError::DTypeMismatch { expected: want, found: self.dtype })
    }

    /// The data as f32 values (zero-copy); an error if the dtype is not f32.
    pub fn as_f32(&self) -> Result<&[f32]> {
        self.typed(DType::F32)
    }

    /// The data as bf16 values (zero-copy).
    pub fn as_bf16(&self) -> Result<&[bf16]> {
        self.typed(DType::BF16)
    }

    /// The data as f16 values (zero-copy).
    pub fn as_f16(&self) -> Result<&[f16]> {
        self.typed(DType::F16)
    }

    /// The data as i8 values (zero-copy).
    pub fn as_i8(&self) -> Result<&[i8]> {
        self.typed(DType::I8)
    }

    /// The values widened (or copied) to f32. Int8 values are returned as their integer value.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => self.as_f32().map(<[f32]>::to_vec).unwrap_or_default(),
            DType::BF16 => self.as_bf16().map(|v| v.iter().map(|x| x.to_f32()).collect()).unwrap_or_default(),
            DType::F16 => self.as_f16().map(|v| v.iter().map(|x| x.to_f32()).collect()).unwrap_or_default(),
            DType::I8 => self.as_i8().map(|v| v.iter().map(|&x| x as f32).collect()).unwrap_or_default(),
        }
    }

    /// An owned copy in another floating dtype (round to nearest even). Converting to `I8`
    /// rounds and saturates each value; quantisation with scales lives in the kernels crate.
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype {
            return self.clone();
        }
        let v = self.to_f32_vec();
        let shape = self.shape.clone();
        let storage = match dtype {
            DType::F32 => Storage::F32(v),
            DType::BF16 => Storage::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
            DType::F16 => Storage::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            DType::I8 => Storage::I8(v.iter().map(|&x| x.round().clamp(-128.0, 127.0) as i8).collect()),
        };
        Tensor { shape, dtype, storage: Arc::new(storage) }
    }
}
