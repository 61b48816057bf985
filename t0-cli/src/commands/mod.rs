//! One module per subcommand.

pub mod bench;
pub mod convert;
pub mod device;
pub mod generate;
pub mod inspect;
pub mod jobs;
pub mod load_args;
pub mod model_arg;
pub mod profile;
pub mod random_init;
pub mod score;
pub mod serve;
pub mod tokenize;

/// Parse `27,7,48,1` into token ids.
pub fn parse_ids(s: &str) -> Result<Vec<u32>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|t| {
            let t = t.trim();
            t.parse::<u32>()
                .map_err(|_| format!("`{t}` is not a token id (expected a comma-separated list like 27,7,48,1)"))
        })
        .collect()
}

/// Parse a weight dtype for `--dtype`.
pub fn parse_dtype(s: &str) -> Result<t0_model::PackDType, String> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => Ok(t0_model::PackDType::F32),
        "bf16" | "bfloat16" => Ok(t0_model::PackDType::Bf16),
        "int8" | "i8" => Ok(t0_model::PackDType::Int8),
        _ => Err(format!("`{s}` is not a weight dtype (expected f32, bf16 or int8)")),
    }
}
