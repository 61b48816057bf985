//! Random weights at a config's exact shapes, in HF names, streamed to a safetensors file
//! tensor by tensor (so an 11 GB T0_3B-shaped file is written in bounded memory).
//!
//! Values are uniform with the standard deviation HF's `T5PreTrainedModel._init_weights`
//! uses for each tensor (layer norms are 1). The generator is a counter-based SplitMix64 over
//! (seed, tensor index, element chunk), written here rather than taken from a crate so that a
//! seed gives the same bytes forever and tensors fill in parallel.

use std::collections::BTreeMap;
use std::path::Path;

use half::bf16;
use rayon::prelude::*;
use t0_tensor::{DType, SafeTensorsWriter, TensorSpec};

use crate::{ModelError, Result, T5Config};

/// One tensor to create: its spec and the standard deviation of its values (0 = all ones).
#[derive(Clone, Debug)]
pub struct InitSpec {
    /// Name, dtype, shape.
    pub spec: TensorSpec,
    /// Standard deviation; `None` for layer norms (filled with 1.0).
    pub std: Option<f64>,
}

/// Every tensor of a T5 model for `config`, in HF names, in a stable order.
pub fn tensor_specs(config: &T5Config, dtype: DType) -> Vec<InitSpec> {
    let c = config;
    let (d, inner, ff) = (c.d_model, c.inner_dim(), c.d_ff);
    let df = d as f64;
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, std: Option<f64>| {
        // Norms stay f32 (tiny, and precision-sensitive).
        let dt = if std.is_none() { DType::F32 } else { dtype };
        out.push(InitSpec { spec: TensorSpec::new(name, dt, shape), std });
    };
    push("shared.weight".into(), vec![c.vocab_size, d], Some(1.0));
    for (stack, layers) in [("encoder", c.num_layers), ("decoder", c.num_decoder_layers)] {
        for i in 0..layers {
            let p = format!("{stack}.block.{i}.layer");
            let mut attention = |prefix: String| {
                let q_std = (df * c.d_kv as f64).powf(-0.5);
                push(format!("{prefix}.q.weight"), vec![inner, d], Some(q_std));
                push(format!("{prefix}.k.weight"), vec![inner, d], Some(df.powf(-0.5)));
                push(format!("{prefix}.v.weight"), vec![inner, d], Some(df.powf(-0.5)));
                push(format!("{prefix}.o.weight"), vec![d, inner], Some((inner as f64).powf(-0.5)));
                if (i == 0 || c.bias_per_layer) && prefix.ends_with("SelfAttention") {
                    let shape = vec![c.relative_attention_num_buckets, c.num_heads];
                    push(format!("{prefix}.relative_attention_bias.weight"), shape, Some(df.powf(-0.5)));
                }
                push(format!("{}.layer_norm.weight", prefix.rsplit_once('.').map_or("", |x| x.0)), vec![d], None);
            };
            attention(format!("{p}.0.SelfAttention"));
            let ff_idx = if stack == "decoder" {
                attention(format!("{p}.1.EncDecAttention"));
                2
            } else {
                1
            };
            let fp = format!("{p}.{ff_idx}.DenseReluDense");
            if c.feed_forward.gated {
                push(format!("{fp}.wi_0.weight"), vec![ff, d], Some(df.powf(-0.5)));
                push(format!("{fp}.wi_1.weight"), vec![ff, d], Some(df.powf(-0.5)));
            } else {
                push(format!("{fp}.wi.weight"), vec![ff, d], Some(df.powf(-0.5)));
            }
            push(format!("{fp}.wo.weight"), vec![d, ff], Some((ff as f64).powf(-0.5)));
            push(format!("{p}.{ff_idx}.layer_norm.weight"), vec![d], None);
        }
        push(format!("{stack}.final_layer_norm.weight"), vec![d], None);
    }
    if !c.tie_word_embeddings {
        push("lm_head.weight".into(), vec![c.vocab_size, d], Some(1.0));
    }
    out
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `out` with uniform values of standard deviation `std`, deterministically from
/// `(seed, tensor, start)`.
fn fill_uniform(out: &mut [f32], std: f64, seed: u64, tensor: u64, start: u64) {
    let half_width = (std * 3f64.sqrt()) as f32;
    let base = splitmix64(seed ^ splitmix64(tensor.wrapping_add(0x5151)));
    for (i, v) in out.iter_mut().enumerate() {
        let r = splitmix64(base.wrapping_add(start + i as u64));
        let u = (r >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
        *v = (2.0 * u - 1.0) * half_width;
    }
}

/// Bytes of elements `start..start + len` of tensor number `tensor`.
fn chunk_bytes(s: &InitSpec, seed: u64, tensor: u64, start: usize, len: usize) -> Vec<u8> {
    let mut vals = vec![1.0f32; len];
    if let Some(std) = s.std {
        const PIECE: usize = 1 << 16;
        vals.par_chunks_mut(PIECE).enumerate().for_each(|(j, c)| {
            fill_uniform(c, std, seed, tensor, (start + j * PIECE) as u64);
        });
    }
    match s.spec.dtype {
        DType::BF16 => {
            let b: Vec<bf16> = vals.iter().map(|&x| bf16::from_f32(x)).collect();
            bytemuck::cast_slice(&b).to_vec()
        }
        _ => bytemuck::cast_slice(&vals).to_vec(),
    }
}

/// Write `model.safetensors` (and `config.json`, copied verbatim from `config_text`) into
/// `out_dir`, atomically. Memory use is bounded by one chunk per thread, not the model size.
pub fn write_random_model(
    config: &T5Config,
    config_text: &str,
    out_dir: &Path,
    seed: u64,
    dtype: DType,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<()> {
    if !matches!(dtype, DType::F32 | DType::BF16) {
        return Err(ModelError::InvalidArgument(format!("random-init writes f32 or bf16, not {dtype}")));
    }
    let existed = out_dir.exists();
    let result = write_model_files(config, config_text, out_dir, seed, dtype, &mut progress);
    if result.is_err() && !existed {
        // Nothing half-written is left behind: the directory is ours, remove it whole.
        let _ = std::fs::remove_dir_all(out_dir);
    }
    result
}

fn write_model_files(
    config: &T5Config,
    config_text: &str,
    out_dir: &Path,
    seed: u64,
    dtype: DType,
    progress: &mut impl FnMut(&str, usize, usize),
) -> Result<()> {
    std::fs::create_dir_all(out_dir).map_err(|source| ModelError::Io { path: out_dir.into(), source })?;
    let specs = tensor_specs(config, dtype);
    let plain: Vec<TensorSpec> = specs.iter().map(|s| s.spec.clone()).collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("t0.random_init_seed".to_string(), seed.to_string());
    let weights = out_dir.join("model.safetensors");
    let mut w = SafeTensorsWriter::create(&weights, &plain, meta)?;
    const CHUNK: usize = 1 << 22; // elements per piece: 16 MB of f32
    for (ti, s) in specs.iter().enumerate() {
        let n: usize = s.spec.shape.iter().product();
        // A lazy iterator: one chunk is generated, written and dropped at a time.
        let chunks = (0..n).step_by(CHUNK).map(|start| chunk_bytes(s, seed, ti as u64, start, CHUNK.min(n - start)));
        w.write_part(&s.spec.name, chunks)?;
        progress(&s.spec.name, ti + 1, specs.len());
    }
    w.finish()?;
    write_atomic(&out_dir.join("config.json"), config_text.as_bytes())
}

/// Bytes of the `model.safetensors` that [`write_random_model`] writes for `config` (data only;
/// the header adds a few kB).
pub fn weights_bytes(config: &T5Config, dtype: DType) -> u64 {
    tensor_specs(config, dtype).iter().map(|s| s.spec.nbytes() as u64).fold(0u64, u64::saturating_add)
}

/// Write a small file atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let io = |source| ModelError::Io { path: path.to_path_buf(), source };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
