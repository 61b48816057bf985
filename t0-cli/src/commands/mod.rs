//! One module per subcommand.

pub mod generate;
pub mod random_init;

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
