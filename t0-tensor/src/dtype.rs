//! Element types.

use std::fmt;
use std::str::FromStr;

use crate::TensorError;

/// The element type of a tensor's storage. Compute is always f32; narrower types are storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 single precision.
    F32,
    /// bfloat16 (f32's range, 8 bits of mantissa).
    BF16,
    /// IEEE 754 half precision.
    F16,
    /// Signed 8-bit integers (quantised weights; scales are a separate tensor).
    I8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::I8 => 1,
        }
    }

    /// The name safetensors uses (`F32`, `BF16`, `F16`, `I8`).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::BF16 => "BF16",
            DType::F16 => "F16",
            DType::I8 => "I8",
        }
    }

    /// Parse a safetensors dtype name; `None` for types this crate does not hold.
    pub fn from_safetensors_name(s: &str) -> Option<Self> {
        match s {
            "F32" => Some(DType::F32),
            "BF16" => Some(DType::BF16),
            "F16" => Some(DType::F16),
            "I8" => Some(DType::I8),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I8 => "int8",
        })
    }
}

impl FromStr for DType {
    type Err = TensorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(DType::F32),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            "f16" | "float16" | "fp16" | "half" => Ok(DType::F16),
            "i8" | "int8" => Ok(DType::I8),
            _ => Err(TensorError::UnknownDType(s.to_string())),
        }
    }
}
