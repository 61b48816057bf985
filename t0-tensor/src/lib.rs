//! t0-tensor
