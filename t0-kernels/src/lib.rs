//! t0-kernels
