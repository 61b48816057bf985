//! Where a tensor's data lives.

use std::fmt;
use std::str::FromStr;

use crate::TensorError;

/// A compute device. Only the CPU exists in this build; CUDA arrives behind the `cuda` feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory, CPU kernels.
    #[default]
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}

impl FromStr for Device {
    type Err = TensorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            other => Err(TensorError::UnknownDevice(other.to_string())),
        }
    }
}
