//! CUDA kernels (feature `cuda`): CUDA C sources compiled at run time by NVRTC, launched through
//! [cudarc](https://docs.rs/cudarc) with the CUDA libraries loaded dynamically, so a build with
//! the feature needs no CUDA toolkit and runs (CPU only) on machines without one.
//!
//! What is here: the kernel sources ([`SOURCES`]: decode GEMV in f32 and bf16, RMS norm,
//! softmax, argmax, gated GELU, ReLU, residual add, embedding, attention with T5's relative
//! bias), [`compile`] (NVRTC, any `sm_XX`), and [`CudaKernels`] (one device: every module
//! compiled for its compute capability once per process, device buffers, launches). Each
//! launch is checked against the scalar reference in `t0-kernels/tests/cuda.rs` when a device is
//! present; without one those tests print why they skip. The model does not run on the GPU
//! yet (no device-resident decoder): see docs/cuda.md for what is built and what is left.
//!
//! ```
//! // Works with or without CUDA: the sources are plain strings, NVRTC is optional.
//! assert!(t0_kernels::cuda::SOURCES.iter().any(|(name, _)| *name == "gemv"));
//! if t0_kernels::cuda::nvrtc_available() {
//!     let ptx = t0_kernels::cuda::compile("norm", "sm_80").unwrap();
//!     assert!(ptx.contains(".entry rms_norm"));
//! }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

/// Helpers prepended to every source (warp/block reductions, bf16 bits to f32).
pub const COMMON: &str = include_str!("common.cuh");

/// Every kernel source, by module name.
pub const SOURCES: &[(&str, &str)] = &[
    ("gemv", include_str!("gemv.cu")),
    ("norm", include_str!("norm.cu")),
    ("softmax", include_str!("softmax.cu")),
    ("activation", include_str!("activation.cu")),
    ("attention", include_str!("attention.cu")),
];

/// The kernel entry points of each module (what [`CudaKernels`] loads).
pub const ENTRY_POINTS: &[(&str, &[&str])] = &[
    ("gemv", &["gemv_f32", "gemv_bf16"]),
    ("norm", &["rms_norm"]),
    ("softmax", &["softmax_rows", "argmax_rows"]),
    ("activation", &["gated_gelu", "relu_inplace", "add_inplace", "embedding_f32"]),
    ("attention", &["attention"]),
];

/// Most rows of `x` one GEMV launch takes (`GEMV_MAX_M` in gemv.cu).
pub const GEMV_MAX_M: usize = 8;

/// A CUDA failure: the library missing, a compile error, a driver error, or a bad argument.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The NVRTC or driver library could not be loaded.
    #[error("CUDA is not available: {0}")]
    Unavailable(String),
    /// NVRTC rejected a source (with its log).
    #[error("NVRTC could not compile `{module}` for {arch}: {log}")]
    Compile {
        /// The module name.
        module: String,
        /// The target architecture.
        arch: String,
        /// NVRTC's message.
        log: String,
    },
    /// A driver call failed.
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// Sizes that do not fit the kernel.
    #[error("{0}")]
    InvalidArgument(String),
}

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        CudaError::Driver(e.to_string())
    }
}

/// True when the NVRTC library can be loaded (compiling needs it, a device does not).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to open the shared library by its candidate names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// True when the CUDA driver library can be loaded (a GPU may still be absent).
pub fn driver_available() -> bool {
    // SAFETY: only tries to open the shared library by its candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Number of CUDA devices (0 without the driver library or a GPU).
pub fn device_count() -> usize {
    if !driver_available() {
        return 0;
    }
    CudaContext::device_count().map(|n| n.max(0) as usize).unwrap_or(0)
}

fn compile_ptx(module: &str, arch: &'static str) -> Result<Ptx, CudaError> {
    if !nvrtc_available() {
        return Err(CudaError::Unavailable("the NVRTC library (libnvrtc) was not found".into()));
    }
    let src = SOURCES
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, s)| *s)
        .ok_or_else(|| CudaError::InvalidArgument(format!("no kernel module `{module}`")))?;
    let opts = CompileOptions {
        arch: Some(arch),
        name: Some(format!("{module}.cu")),
        // Exact IEEE division and square roots: parity with the CPU comes first.
        prec_div: Some(true),
        prec_sqrt: Some(true),
        ..Default::default()
    };
    compile_ptx_with_opts(format!("{COMMON}\n{src}"), opts).map_err(|e| CudaError::Compile {
        module: module.into(),
        arch: arch.into(),
        log: e.to_string(),
    })
}

/// Compile the module `module` of [`SOURCES`] for `arch` (`sm_80`, `sm_90`, ...) and return its
/// PTX text.
pub fn compile(module: &str, arch: &str) -> Result<String, CudaError> {
    let arch = static_arch(arch)?;
    Ok(compile_ptx(module, arch)?.to_src())
}

/// NVRTC wants a `&'static str` architecture: the ones this crate targets.
fn static_arch(arch: &str) -> Result<&'static str, CudaError> {
    const ARCHS: [&str; 8] = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90", "sm_100"];
    ARCHS
        .iter()
        .find(|a| **a == arch)
        .copied()
        .ok_or_else(|| CudaError::InvalidArgument(format!("architecture `{arch}` is not one of {}", ARCHS.join(", "))))
}

/// The kernels on one device: modules compiled for its compute capability (once per process
/// and device), and the stream they run on.
pub struct CudaKernels {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: HashMap<&'static str, CudaFunction>,
    arch: &'static str,
}

impl std::fmt::Debug for CudaKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaKernels").field("arch", &self.arch).finish_non_exhaustive()
    }
}

/// Compiled PTX per architecture, shared by every device of that architecture.
fn ptx_cache() -> &'static Mutex<HashMap<(&'static str, &'static str), Ptx>> {
    static CACHE: OnceLock<Mutex<HashMap<(&'static str, &'static str), Ptx>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl CudaKernels {
    /// The kernels on device `ordinal`, or why they cannot run (no driver, no such device, a
    /// compile error).
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        if !driver_available() {
            return Err(CudaError::Unavailable("the CUDA driver library (libcuda) was not found".into()));
        }
        let count = device_count();
        if ordinal >= count {
            return Err(CudaError::Unavailable(format!("no CUDA device {ordinal} ({count} found)")));
        }
        let ctx = CudaContext::new(ordinal)?;
        let (major, minor) = ctx.compute_capability()?;
        let arch = static_arch(&format!("sm_{major}{minor}")).or_else(|_| static_arch("sm_90"))?;
        let stream = ctx.default_stream();
        let mut functions = HashMap::new();
        for (module, entries) in ENTRY_POINTS {
            let ptx = {
                let mut cache = ptx_cache().lock().unwrap_or_else(|p| p.into_inner());
                match cache.get(&(*module, arch)) {
                    Some(p) => p.clone(),
                    None => {
                        let p = compile_ptx(module, arch)?;
                        cache.insert((module, arch), p.clone());
                        p
                    }
                }
            };
            let m = ctx.load_module(ptx)?;
            for e in *entries {
                functions.insert(*e, m.load_function(e)?);
            }
        }
        Ok(Self { ctx, stream, functions, arch })
    }

    /// The architecture the kernels were compiled for (`sm_90` on an H100).
    pub fn arch(&self) -> &'static str {
        self.arch
    }

    /// The device context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Copy host values to a new device buffer.
    pub fn upload<T: cudarc::driver::DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>, CudaError> {
        Ok(self.stream.clone_htod(host)?)
    }

    /// Copy a device buffer back (waits for the stream).
    pub fn download<T: cudarc::driver::DeviceRepr>(&self, dev: &CudaSlice<T>) -> Result<Vec<T>, CudaError> {
        Ok(self.stream.clone_dtoh(dev)?)
    }

    /// A zeroed device buffer of `len` f32.
    pub fn zeros(&self, len: usize) -> Result<CudaSlice<f32>, CudaError> {
        Ok(self.stream.alloc_zeros::<f32>(len)?)
    }

    fn function(&self, name: &str) -> Result<&CudaFunction, CudaError> {
        self.functions.get(name).ok_or_else(|| CudaError::InvalidArgument(format!("no kernel `{name}`")))
    }

    fn check_len<T>(what: &str, s: &CudaSlice<T>, need: usize) -> Result<(), CudaError> {
        if s.len() < need {
            return Err(CudaError::InvalidArgument(format!("{what}: {} elements, {need} needed", s.len())));
        }
        Ok(())
    }

    fn int(what: &str, v: usize) -> Result<i32, CudaError> {
        i32::try_from(v).map_err(|_| CudaError::InvalidArgument(format!("{what} = {v} does not fit the kernel")))
    }

    /// `y[m, n] = x[m, k] · wᵀ` for a row-major f32 weight `[n, k]`, `m ≤` [`GEMV_MAX_M`].
    pub fn gemv_f32(
        &self,
        x: &CudaSlice<f32>,
        m: usize,
        w: &CudaSlice<f32>,
        n: usize,
        k: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        self.gemv("gemv_f32", x, m, w, n, k, y)
    }

    /// As [`CudaKernels::gemv_f32`] for a bf16 weight given as raw bits.
    pub fn gemv_bf16(
        &self,
        x: &CudaSlice<f32>,
        m: usize,
        w: &CudaSlice<u16>,
        n: usize,
        k: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        self.gemv("gemv_bf16", x, m, w, n, k, y)
    }

    #[allow(clippy::too_many_arguments)]
    fn gemv<W>(
        &self,
        name: &str,
        x: &CudaSlice<f32>,
        m: usize,
        w: &CudaSlice<W>,
        n: usize,
        k: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        if m == 0 || m > GEMV_MAX_M {
            return Err(CudaError::InvalidArgument(format!("gemv: m = {m}, expected 1..={GEMV_MAX_M}")));
        }
        Self::check_len("gemv x", x, m * k)?;
        Self::check_len("gemv w", w, n * k)?;
        Self::check_len("gemv y", y, m * n)?;
        let (mi, ni, ki) = (Self::int("m", m)?, Self::int("n", n)?, Self::int("k", k)?);
        let cfg = LaunchConfig { grid_dim: (n.div_ceil(8) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let f = self.function(name)?;
        // SAFETY: the kernel reads x[m·k] and w[n·k] and writes y[m·n], all checked above.
        unsafe { self.stream.launch_builder(f).arg(x).arg(&mi).arg(w).arg(y).arg(&ni).arg(&ki).launch(cfg)? };
        Ok(())
    }

    /// RMS norm of each of the `rows` rows of `x` (`cols` wide) into `y`.
    pub fn rms_norm(
        &self,
        x: &CudaSlice<f32>,
        weight: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        Self::check_len("rms_norm x", x, rows * cols)?;
        Self::check_len("rms_norm weight", weight, cols)?;
        Self::check_len("rms_norm y", y, rows * cols)?;
        let ci = Self::int("cols", cols)?;
        let cfg = LaunchConfig {
            grid_dim: (Self::int("rows", rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block per row of `cols` values, lengths checked above.
        unsafe {
            self.stream
                .launch_builder(self.function("rms_norm")?)
                .arg(x)
                .arg(weight)
                .arg(y)
                .arg(&ci)
                .arg(&eps)
                .launch(cfg)?
        };
        Ok(())
    }

    /// Softmax of each of the `rows` rows of `x` in place.
    pub fn softmax(&self, x: &mut CudaSlice<f32>, rows: usize, cols: usize) -> Result<(), CudaError> {
        Self::check_len("softmax x", x, rows * cols)?;
        let ci = Self::int("cols", cols)?;
        let cfg = LaunchConfig {
            grid_dim: (Self::int("rows", rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block per row, lengths checked above.
        unsafe { self.stream.launch_builder(self.function("softmax_rows")?).arg(x).arg(&ci).launch(cfg)? };
        Ok(())
    }

    /// The index of the largest value of each row (greedy decoding on device).
    pub fn argmax(&self, x: &CudaSlice<f32>, rows: usize, cols: usize) -> Result<Vec<u32>, CudaError> {
        Self::check_len("argmax x", x, rows * cols)?;
        let ci = Self::int("cols", cols)?;
        let mut out = self.stream.alloc_zeros::<i32>(rows)?;
        let cfg = LaunchConfig {
            grid_dim: (Self::int("rows", rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block of 256 threads per row (the kernel's shared arrays are 256 long).
        unsafe { self.stream.launch_builder(self.function("argmax_rows")?).arg(x).arg(&ci).arg(&mut out).launch(cfg)? };
        Ok(self.download(&out)?.into_iter().map(|i| i.max(0) as u32).collect())
    }

    /// `out[r, c] = gelu_new(gate_up[r, c]) · gate_up[r, ff + c]` (rows of `[gate | up]`).
    pub fn gated_gelu(
        &self,
        gate_up: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
        rows: usize,
        ff: usize,
    ) -> Result<(), CudaError> {
        Self::check_len("gated_gelu gate_up", gate_up, rows * 2 * ff)?;
        Self::check_len("gated_gelu out", out, rows * ff)?;
        let count = rows * ff;
        Self::int("rows · ff", count)?;
        let (ri, fi) = (Self::int("rows", rows)?, Self::int("ff", ff)?);
        let cfg =
            LaunchConfig { grid_dim: (count.div_ceil(256) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: one thread per output, lengths checked above.
        unsafe {
            self.stream
                .launch_builder(self.function("gated_gelu")?)
                .arg(gate_up)
                .arg(out)
                .arg(&ri)
                .arg(&fi)
                .launch(cfg)?
        };
        Ok(())
    }

    /// T5 attention for one layer (see attention.cu for the layouts): `q` `[q_len, heads·d]`,
    /// `k`/`v` `[heads, kv_len, d]`, `bias` `[heads, q_len, kv_len]`, `mask` `[kv_len]`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &CudaSlice<f32>,
        k: &CudaSlice<f32>,
        v: &CudaSlice<f32>,
        bias: Option<&CudaSlice<f32>>,
        mask: Option<&CudaSlice<f32>>,
        out: &mut CudaSlice<f32>,
        shape: AttentionShape,
    ) -> Result<(), CudaError> {
        let AttentionShape { heads, d, q_len, kv_len, q_pos0, causal } = shape;
        let inner = heads * d;
        Self::check_len("attention q", q, q_len * inner)?;
        Self::check_len("attention k", k, heads * kv_len * d)?;
        Self::check_len("attention v", v, heads * kv_len * d)?;
        Self::check_len("attention out", out, q_len * inner)?;
        if let Some(b) = bias {
            Self::check_len("attention bias", b, heads * q_len * kv_len)?;
        }
        if let Some(m) = mask {
            Self::check_len("attention mask", m, kv_len)?;
        }
        let shared = (kv_len + 32) * 4;
        if shared > 48 * 1024 {
            return Err(CudaError::InvalidArgument(format!(
                "attention: kv_len {kv_len} needs more than 48 KiB of shared memory"
            )));
        }
        // A null pointer stands for "no bias" / "no mask": a one-element dummy buffer keeps the
        // argument list typed, and the flags below tell the kernel to ignore it.
        let none = self.zeros(1)?;
        let (hi, di, qi, ki, pi, ci) = (
            Self::int("heads", heads)?,
            Self::int("d", d)?,
            Self::int("q_len", q_len)?,
            Self::int("kv_len", kv_len)?,
            Self::int("q_pos0", q_pos0)?,
            i32::from(causal),
        );
        let cfg = LaunchConfig {
            grid_dim: (qi as u32, hi as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: shared as u32,
        };
        let (has_bias, has_mask) = (i32::from(bias.is_some()), i32::from(mask.is_some()));
        let f = self.function("attention")?;
        let mut launch = self.stream.launch_builder(f);
        launch.arg(q).arg(k).arg(v).arg(bias.unwrap_or(&none)).arg(mask.unwrap_or(&none)).arg(&has_bias).arg(&has_mask);
        launch.arg(out).arg(&hi).arg(&di).arg(&qi).arg(&ki).arg(&pi).arg(&ci);
        // SAFETY: every buffer's length was checked against the shape above; shared memory
        // holds kv_len scores and 32 floats of scratch.
        unsafe { launch.launch(cfg)? };
        Ok(())
    }
}

/// The sizes of one [`CudaKernels::attention`] call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub d: usize,
    /// Query rows.
    pub q_len: usize,
    /// Keys.
    pub kv_len: usize,
    /// Absolute position of query row 0 (for causality).
    pub q_pos0: usize,
    /// Keys after the query's position are skipped.
    pub causal: bool,
}
