//! t0-model
