//! t0-tokenizer
