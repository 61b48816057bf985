//! Will the model fit? An estimate of the memory a load needs, from `config.json` and the sizes
//! of the weight files (before any weight is read), checked against what the machine has.
//!
//! Two kinds of memory are counted separately:
//! - **resident**: weights converted at load ([`crate::LoadOptions::dtype`]) live in anonymous
//!   memory that cannot be paged out to the file: they must fit in `MemAvailable`;
//! - **mapped**: weights used as stored are a read-only map of the file. Its pages are loaded
//!   lazily and the kernel may drop them under pressure (they are re-read from disk), so they are
//!   not counted against `MemAvailable`; but if they do not fit in the machine's RAM at all
//!   (`MemTotal`), every decode step reads the whole model from disk again. That is refused too.
//!
//! The estimate covers the weights only (activations and KV caches are small next to them for
//! the inputs [`crate::LoadOptions::max_input_tokens`] allows). When the machine's memory is
//! unknown (not Linux, or `/proc/meminfo` unreadable) nothing is refused.

use std::path::Path;

use t0_kernels::PackDType;

use crate::{ModelError, Result, T5Config};

/// Memory a load needs, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Anonymous memory: weights converted at load.
    pub resident: u64,
    /// File-backed, read-only mapped memory: weights used as stored.
    pub mapped: u64,
    /// The conversion dtype (`None`: as stored).
    pub dtype: Option<PackDType>,
}

/// What the machine has, in bytes (Linux `/proc/meminfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`: the machine's RAM.
    pub total: u64,
    /// `MemAvailable`: what can be allocated without swapping.
    pub available: u64,
}

impl MemInfo {
    /// This machine's memory, or `None` where it cannot be read.
    pub fn current() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/meminfo").ok()?)
    }

    /// Parse the text of `/proc/meminfo` (`MemTotal` and `MemAvailable`, in kB).
    ///
    /// ```
    /// let m = t0_model::memory::MemInfo::parse("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 500 kB\n").unwrap();
    /// assert_eq!((m.total, m.available), (1_024_000, 512_000));
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
            let kb: u64 = line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()?;
            kb.checked_mul(1024)
        };
        Some(Self { total: field("MemTotal")?, available: field("MemAvailable")? })
    }
}

/// Bytes of one element of a packed weight, and the extra bytes per output row (int8's scale and
/// compensation term).
fn packed_cost(dtype: PackDType) -> (u128, u128) {
    match dtype {
        PackDType::F32 => (4, 0),
        PackDType::Bf16 => (2, 0),
        PackDType::Int8 => (1, 8),
    }
}

/// Estimate the memory of loading a model of `config` whose weight files hold `file_bytes`
/// bytes, with weights converted to `dtype` (or used as stored).
///
/// ```
/// use t0_model::{memory::estimate, PackDType, T5Config};
/// let c = T5Config::from_file("../tests/fixtures/t0_3b/config.json".as_ref()).unwrap();
/// let e = estimate(&c, Some(PackDType::Bf16), 11_400_000_000);
/// assert!(e.resident > 5_000_000_000 && e.resident < 6_000_000_000, "{e:?}");
/// assert_eq!(estimate(&c, None, 11_400_000_000).mapped, 11_400_000_000);
/// ```
pub fn estimate(config: &T5Config, dtype: Option<PackDType>, file_bytes: u64) -> MemoryEstimate {
    let Some(dt) = dtype else {
        return MemoryEstimate { resident: 0, mapped: file_bytes, dtype };
    };
    let c = config;
    let u = |x: usize| x as u128;
    let (d, inner, ff, vocab) = (u(c.d_model), u(c.inner_dim()), u(c.d_ff), u(c.vocab_size));
    let (per_elem, per_row) = packed_cost(dt);
    let linear = |rows: u128, cols: u128| rows * cols * per_elem + rows * per_row;
    let attention = 3 * linear(inner, d) + linear(d, inner);
    let ffn = if c.feed_forward.gated { 2 * linear(ff, d) } else { linear(ff, d) } + linear(d, ff);
    // The LM head is packed whether tied (a converted copy of the table) or not.
    let packed =
        u(c.num_layers) * (attention + ffn) + u(c.num_decoder_layers) * (2 * attention + ffn) + linear(vocab, d);
    // The embedding table (and the norms) stay mapped, in the file's dtype: estimate the
    // file's bytes per parameter from its size.
    let params = u(c.num_parameters()).max(1);
    let table = vocab * d * u128::from(file_bytes) / params;
    let sat = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    MemoryEstimate { resident: sat(packed), mapped: sat(table.min(u128::from(file_bytes))), dtype }
}

/// Refuse `est` when `mem` obviously cannot hold it; `dir` names the model in the error.
///
/// ```
/// use t0_model::memory::{check, MemInfo, MemoryEstimate};
/// let mem = MemInfo { total: 16 << 30, available: 8 << 30 };
/// let fits = MemoryEstimate { resident: 6 << 30, mapped: 1 << 30, dtype: Some(t0_model::PackDType::Bf16) };
/// assert!(check(&fits, &mem, "m".as_ref()).is_ok());
/// let too_big = MemoryEstimate { resident: 12 << 30, ..fits };
/// assert!(check(&too_big, &mem, "m".as_ref()).unwrap_err().to_string().contains("12.9 GB"));
/// ```
pub fn check(est: &MemoryEstimate, mem: &MemInfo, dir: &Path) -> Result<()> {
    let what = match est.dtype {
        None => "as stored".to_string(),
        Some(dt) => format!("converted to {}", format!("{dt:?}").to_lowercase()),
    };
    let fail = |needed: u64, have: u64, kind: &str| {
        Err(ModelError::InsufficientMemory {
            dir: dir.to_path_buf(),
            reason: format!(
                "the weights {what} need about {} of memory, but this machine has {} {kind}",
                gb(needed),
                gb(have)
            ),
        })
    };
    if est.resident > mem.available {
        return fail(est.resident, mem.available, "available (MemAvailable)");
    }
    if est.resident.saturating_add(est.mapped) > mem.total {
        return fail(est.resident.saturating_add(est.mapped), mem.total, "in all (MemTotal)");
    }
    Ok(())
}

/// Total size of the files at `paths` (missing files count 0: opening them reports them).
pub(crate) fn file_bytes(paths: &[impl AsRef<Path>]) -> u64 {
    paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).fold(0u64, u64::saturating_add)
}

/// `12.3 GB`.
fn gb(bytes: u64) -> String {
    let g = bytes as f64 / 1e9;
    if g >= 100.0 {
        format!("{g:.0} GB")
    } else if g >= 0.1 {
        format!("{g:.1} GB")
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> T5Config {
        T5Config::from_json_str(json, "config.json".as_ref()).unwrap()
    }

    #[test]
    fn meminfo_parses_linux_format() {
        let m = MemInfo::parse("MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n").unwrap();
        assert_eq!(m, MemInfo { total: 24_576_000_000, available: 20_480_000_000 });
        assert_eq!(MemInfo::parse("MemTotal: 5 kB\n"), None);
        assert_eq!(MemInfo::parse("garbage"), None);
    }

    #[test]
    fn packed_sizes_follow_the_dtype() {
        let c = config(
            r#"{"vocab_size": 100, "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2,
                "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false}"#,
        );
        let f32 = estimate(&c, Some(PackDType::F32), 0).resident;
        let bf16 = estimate(&c, Some(PackDType::Bf16), 0).resident;
        assert_eq!(f32, 2 * bf16);
        // enc: 4·8·8 + 3·16·8 = 640; dec: 8·8·8 + 3·16·8 = 896; head 800 → 2336 elements.
        assert_eq!(f32, 2336 * 4);
        assert_eq!(estimate(&c, None, 12345), MemoryEstimate { resident: 0, mapped: 12345, dtype: None });
    }

    #[test]
    fn absurd_models_do_not_overflow_and_are_refused() {
        let c = config(
            r#"{"vocab_size": 16777216, "d_model": 65536, "d_kv": 4096, "d_ff": 1048576, "num_layers": 1024,
                "num_heads": 256, "feed_forward_proj": "gated-gelu"}"#,
        );
        let e = estimate(&c, Some(PackDType::F32), u64::MAX);
        assert!(e.resident > 1 << 50, "{e:?}");
        let mem = MemInfo { total: 1 << 40, available: 1 << 40 };
        let err = check(&e, &mem, "big".as_ref()).unwrap_err().to_string();
        assert!(err.starts_with("big: not enough memory"), "{err}");
        assert!(check(&estimate(&c, None, 2 << 40), &mem, "big".as_ref())
            .unwrap_err()
            .to_string()
            .contains("MemTotal"));
        assert!(check(&estimate(&c, None, 1 << 30), &mem, "big".as_ref()).is_ok());
    }
}
