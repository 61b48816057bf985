//! `--device`: where `t0 bench` and `t0 generate` run the model, the benchmark of the device
//! path ([`t0_model::device::DeviceModel`]) and its greedy generation.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use t0_model::device::{Backend, DeviceDType, DeviceModel};
use t0_model::{Generated, GenerationConfig, T5Model};

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU model (packed weights, the fastest CPU path).
    Cpu,
    /// The device path on host memory with the CPU kernels: what a GPU runs, step for step
    /// (for checking the device orchestration where there is no GPU).
    Host,
    /// CUDA device N (feature `cuda`).
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Host => write!(f, "host"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Parse `cpu`, `host`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device, String> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "cpu" => Ok(Device::Cpu),
        "host" => Ok(Device::Host),
        "cuda" | "gpu" => Ok(Device::Cuda(0)),
        _ => match lower.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::Cuda(n)),
            _ => Err(format!("`{s}` is not a device (expected cpu, host, cuda or cuda:N)")),
        },
    }
}

/// `--dtype` of the commands that run on the CPU or a device: a CPU dtype, or f16 (devices only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightDType {
    /// f32, bf16 or int8.
    Cpu(t0_model::PackDType),
    /// IEEE half weights with f32 activations ([`DeviceDType::F16`]).
    F16,
}

impl std::fmt::Display for WeightDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightDType::Cpu(d) => f.write_str(t0_model::weights::dtype_name(*d)),
            WeightDType::F16 => f.write_str("f16"),
        }
    }
}

/// Parse `--dtype` of `generate`, `score` and `bench`: f32, bf16, int8 or f16.
pub fn parse_weight_dtype(s: &str) -> Result<WeightDType, String> {
    match s.to_ascii_lowercase().as_str() {
        "f16" | "fp16" | "float16" | "half" => Ok(WeightDType::F16),
        _ => super::parse_dtype(s)
            .map(WeightDType::Cpu)
            .map_err(|_| format!("`{s}` is not a weight dtype (expected f32, bf16, int8, or f16 with --device)")),
    }
}

/// The dtype the CPU model converts to at load (`None`: as stored); f16 is refused.
pub fn cpu_dtype(d: Option<WeightDType>) -> Result<Option<t0_model::PackDType>> {
    match d {
        None => Ok(None),
        Some(WeightDType::Cpu(p)) => Ok(Some(p)),
        Some(WeightDType::F16) => bail!(
            "--dtype f16 runs on a device (--device host or cuda[:N]), which keeps the activations in f32 \
             (T5's activations overflow f16); the CPU model converts to f32, bf16 or int8"
        ),
    }
}

/// The weight dtype a device path stores (`--dtype`; f32 by default).
pub fn device_dtype(d: Option<WeightDType>) -> Result<DeviceDType> {
    match d {
        None | Some(WeightDType::Cpu(t0_model::PackDType::F32)) => Ok(DeviceDType::F32),
        Some(WeightDType::Cpu(t0_model::PackDType::Bf16)) => Ok(DeviceDType::Bf16),
        Some(WeightDType::F16) => Ok(DeviceDType::F16),
        Some(other) => bail!("--dtype {other} is not available on a device (f32, bf16 or f16)"),
    }
}

/// What the device benchmark measured.
pub struct DeviceBench {
    pub backend: String,
    pub upload_s: f64,
    pub encoder_ms: f64,
    pub step_ms: Vec<f64>,
    /// Decode steps that ran as a replay of a recorded step (a CUDA graph).
    pub replayed_steps: usize,
    pub decode_ms_per_step: f64,
    pub tokens_per_s: f64,
    pub step_weight_bytes: usize,
    pub peak_bandwidth_gbs: Option<f64>,
}

/// Uploads `model` to `backend` as `dtype`, a layer at a time, with a progress bar; returns
/// the device model and the seconds it took.
fn upload<B: Backend>(model: &T5Model, backend: B, dtype: DeviceDType) -> Result<(DeviceModel<B>, f64)> {
    let t = Instant::now();
    let bar = crate::ui::bar(0, "uploading {bar:30} {pos}/{len} layers");
    let dev = DeviceModel::new_with_progress(model, backend, dtype, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    dev.backend().synchronize()?;
    Ok((dev, t.elapsed().as_secs_f64()))
}

/// Work to run on a device model whatever its backend: [`on_device`] picks the backend.
pub trait DeviceJob {
    /// What the job returns.
    type Output;
    /// Runs the job on `model` uploaded to `backend`.
    fn run<B: Backend>(self, model: &T5Model, backend: B) -> Result<Self::Output>;
}

/// Runs `job` on `device` (not [`Device::Cpu`], which needs no backend).
pub fn on_device<J: DeviceJob>(device: Device, model: &T5Model, job: J) -> Result<J::Output> {
    match device {
        Device::Cpu => bail!("the CPU model runs without a device backend"),
        Device::Host => job.run(model, t0_model::device::HostBackend::new()),
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => job.run(model, t0_model::device::CudaBackend::new(n)?),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => {
            bail!("this t0 was built without CUDA support: rebuild with `cargo build --release -p t0-cli --features cuda`")
        }
    }
}

/// The device benchmark as a [`DeviceJob`]: uploads the model and times the encoder (each
/// input alone, the mean of `runs` after a warm-up) and `new_tokens` decode steps of all inputs
/// together (each row feeding back its device-side argmax, EOS replaced so that every step runs).
pub struct Bench<'a> {
    pub dtype: DeviceDType,
    pub inputs: &'a [Vec<u32>],
    pub runs: usize,
    pub new_tokens: usize,
}

impl DeviceJob for Bench<'_> {
    type Output = DeviceBench;
    fn run<B: Backend>(self, model: &T5Model, backend: B) -> Result<DeviceBench> {
        let Bench { dtype, inputs, runs, new_tokens } = self;
        let (dev, upload_s) = upload(model, backend, dtype)?;
        let c = dev.config();

        let encode_all = || -> Result<Vec<Arc<t0_model::device::DeviceEncoded<B>>>> {
            let out = inputs.iter().map(|x| dev.encode(x).map(Arc::new)).collect::<t0_model::Result<Vec<_>>>()?;
            dev.backend().synchronize()?;
            Ok(out)
        };
        let (sources, encoder_ms) = super::bench::mean_ms(runs, encode_all)?;

        let start = vec![c.decoder_start_token_id; inputs.len()];
        let mut warm = dev.start(sources.clone(), 1)?;
        dev.step(&mut warm, &start)?;
        dev.argmax(&warm)?;
        drop(warm);
        let mut state = dev.start(sources, new_tokens)?;
        let mut next = start;
        let mut step_ms = Vec::with_capacity(new_tokens);
        let t = Instant::now();
        for _ in 0..new_tokens {
            let ts = Instant::now();
            dev.step(&mut state, &next)?;
            next = dev.argmax(&state)?;
            step_ms.push(ts.elapsed().as_secs_f64() * 1e3);
            for tok in &mut next {
                if *tok == c.eos_token_id {
                    // Keep decoding: any other id will do (the figures are about time).
                    *tok = (c.eos_token_id + 1) % c.vocab_size as u32;
                }
            }
        }
        let decode_s = t.elapsed().as_secs_f64();
        let replayed_steps = state.replayed_steps();
        step_ms.sort_by(f64::total_cmp);
        Ok(DeviceBench {
            backend: dev.backend().name(),
            upload_s,
            encoder_ms,
            decode_ms_per_step: decode_s * 1e3 / new_tokens as f64,
            tokens_per_s: (inputs.len() * new_tokens) as f64 / decode_s,
            step_ms,
            replayed_steps,
            step_weight_bytes: dev.step_weight_bytes(),
            peak_bandwidth_gbs: dev.backend().peak_bandwidth_gbs(),
        })
    }
}

/// Rank classification on a device as a [`DeviceJob`]: uploads the model, then scores the
/// choices ([`DeviceModel::classify`]).
pub struct Classify<'a> {
    pub dtype: DeviceDType,
    pub prompt: &'a [u32],
    pub choices: &'a [Vec<u32>],
    pub length_normalize: bool,
}

impl DeviceJob for Classify<'_> {
    type Output = t0_model::Classification;
    fn run<B: Backend>(self, model: &T5Model, backend: B) -> Result<t0_model::Classification> {
        let (dev, _) = upload(model, backend, self.dtype)?;
        Ok(dev.classify(self.prompt, self.choices, self.length_normalize)?)
    }
}

/// Generation on a device as a [`DeviceJob`]: uploads the model, then greedy search, sampling or
/// beam search of each input as `cfg` says ([`DeviceModel::generate`]).
pub struct Generate<'a> {
    pub dtype: DeviceDType,
    pub inputs: &'a [Vec<u32>],
    pub cfg: &'a GenerationConfig,
}

impl DeviceJob for Generate<'_> {
    type Output = Vec<Vec<Generated>>;
    fn run<B: Backend>(self, model: &T5Model, backend: B) -> Result<Vec<Vec<Generated>>> {
        let (dev, _) = upload(model, backend, self.dtype)?;
        Ok(dev.generate(self.inputs, self.cfg)?)
    }
}
