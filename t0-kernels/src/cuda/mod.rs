//! CUDA kernels (feature `cuda`): CUDA C sources compiled at run time by NVRTC, launched through
//! [cudarc](https://docs.rs/cudarc) with the CUDA libraries loaded dynamically, so a build with
//! the feature needs no CUDA toolkit and runs (CPU only) on machines without one.
//!
//! What is here: the kernel sources ([`SOURCES`]: decode GEMV in f32, bf16 and f16, a bf16
//! tensor-core GEMM for longer inputs, RMS norm,
//! softmax, argmax, row summaries for decoding (log-sum-exp and top-k) and the logits processors'
//! edits before them, ReLU / gelu_new / SiLU plain and gated, residual add, scale, embedding, the
//! KV-cache append, attention with T5's relative bias), [`compile`] (NVRTC, any `sm_XX`), and
//! [`CudaKernels`] (one device: every module compiled for its compute capability once per
//! process, device buffers, launches on views). Each
//! launch is checked against the scalar reference in `t0-kernels/tests/cuda.rs` when a device is
//! present; without one those tests print why they skip. `t0_model::device::CudaBackend` runs
//! the model on them (device-resident weights and caches); no GPU has run any of it yet: see
//! docs/cuda.md for what is built and what is left.
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

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};

use crate::logit_edit::{check_edits, Edit};
use crate::row_summary::RowSummary;
use crate::Activation;

/// The cudarc this crate is built against (its buffer and view types appear in the API).
pub use cudarc;
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
    ("gemm", include_str!("gemm.cu")),
];

/// The kernel entry points of each module (what [`CudaKernels`] loads).
pub const ENTRY_POINTS: &[(&str, &[&str])] = &[
    ("gemv", &["gemv_f32", "gemv_bf16", "gemv_f16"]),
    ("norm", &["rms_norm", "add_rms_norm"]),
    ("softmax", &["softmax_rows", "argmax_rows", "row_summary", "edit_logits"]),
    (
        "activation",
        &[
            "gated_act",
            "act_inplace",
            "add_inplace",
            "scale_inplace",
            "embedding_f32",
            "embedding_f32_coded",
            "kv_append",
        ],
    ),
    ("attention", &["attention"]),
    ("gemm", &["gemm_bf16_tc", "round_bf16"]),
];

/// Launches recorded as a CUDA graph ([`CudaKernels::begin_recording`]), replayed by
/// [`CudaRecording::launch`] with the same buffers and arguments.
pub struct CudaRecording(cudarc::driver::CudaGraph);

// SAFETY: a graph is not safe to use from two threads at once (it is not `Sync`), but it may
// move between threads: `launch` binds the device context to the calling thread first.
unsafe impl Send for CudaRecording {}

impl CudaRecording {
    /// Runs the recorded launches again, on the stream they were recorded from.
    pub fn launch(&self) -> Result<(), CudaError> {
        Ok(self.0.launch()?)
    }
}

impl std::fmt::Debug for CudaRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CudaRecording")
    }
}

/// Most top entries per row [`CudaKernels::row_summaries`] takes (it makes `k` passes over a
/// row: meant for beam search and top-k sampling).
pub const ROW_SUMMARY_MAX_K: usize = 256;

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
    /// One zero, passed for an absent bias or mask.
    dummy: CudaSlice<f32>,
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
        // One stream of our own (the legacy default stream cannot be captured as a graph), and
        // no per-buffer event tracking: every buffer is used on this stream alone, in order.
        // SAFETY: tracking is off before any buffer exists, and no other stream touches them.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
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
        let dummy = stream.alloc_zeros::<f32>(1)?;
        Ok(Self { ctx, stream, functions, arch, dummy })
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

    /// The first `len` values of a device view (waits for the stream).
    pub fn download_prefix(&self, dev: &CudaView<'_, f32>, len: usize) -> Result<Vec<f32>, CudaError> {
        Self::check_len("download", dev.len(), len)?;
        let mut out = vec![0.0f32; len];
        if len > 0 {
            self.stream.memcpy_dtoh(&dev.slice(..len), &mut out)?;
        }
        Ok(out)
    }

    /// Copies `values` into the start of `dst` (no allocation).
    pub fn write(&self, dst: &mut CudaViewMut<'_, f32>, values: &[f32]) -> Result<(), CudaError> {
        Self::check_len("write", dst.len(), values.len())?;
        if !values.is_empty() {
            self.stream.memcpy_htod(values, &mut dst.slice_mut(..values.len()))?;
        }
        Ok(())
    }

    /// Starts recording this stream's launches as a CUDA graph (they are recorded, not run,
    /// until [`CudaKernels::end_recording`]). Nothing that allocates, copies from pageable host
    /// memory or waits for the device may run in between.
    pub fn begin_recording(&self) -> Result<(), CudaError> {
        use cudarc::driver::sys::CUstreamCaptureMode;
        Ok(self.stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?)
    }

    /// Ends a recording: the launches since [`CudaKernels::begin_recording`], instantiated as a
    /// graph (none were run: launch it to run them).
    pub fn end_recording(&self) -> Result<CudaRecording, CudaError> {
        let graph = self.stream.end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0))?;
        graph.map(CudaRecording).ok_or_else(|| CudaError::Driver("the recording captured no launches".into()))
    }

    /// A zeroed device buffer of `len` f32.
    pub fn zeros(&self, len: usize) -> Result<CudaSlice<f32>, CudaError> {
        Ok(self.stream.alloc_zeros::<f32>(len)?)
    }

    /// A zeroed device buffer of `len` 16-bit values (bf16 bits).
    pub fn zeros_u16(&self, len: usize) -> Result<CudaSlice<u16>, CudaError> {
        Ok(self.stream.alloc_zeros::<u16>(len.max(1))?)
    }

    /// Whether the device has the bf16 tensor cores [`CudaKernels::gemm_bf16`] runs on (`mma`
    /// with bf16 inputs: sm_80 and later).
    pub fn has_bf16_tensor_cores(&self) -> bool {
        self.arch.trim_start_matches("sm_").parse::<u32>().is_ok_and(|v| v >= 80)
    }

    fn function(&self, name: &str) -> Result<&CudaFunction, CudaError> {
        self.functions.get(name).ok_or_else(|| CudaError::InvalidArgument(format!("no kernel `{name}`")))
    }

    fn check_len(what: &str, len: usize, need: usize) -> Result<(), CudaError> {
        if len < need {
            return Err(CudaError::InvalidArgument(format!("{what}: {len} elements, {need} needed")));
        }
        Ok(())
    }

    fn int(what: &str, v: usize) -> Result<i32, CudaError> {
        i32::try_from(v).map_err(|_| CudaError::InvalidArgument(format!("{what} = {v} does not fit the kernel")))
    }

    /// One thread per element: block 256, enough blocks for `count`.
    fn flat(count: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (count.div_ceil(256).max(1) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block of 256 threads per row.
    fn per_row(rows: usize) -> Result<LaunchConfig, CudaError> {
        Ok(LaunchConfig {
            grid_dim: (Self::int("rows", rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        })
    }

    /// The device memory's peak bandwidth in GB/s, from its clock and bus width as the driver
    /// reports them (`2 × clock × width / 8`, double data rate).
    pub fn peak_bandwidth_gbs(&self) -> Result<f64, CudaError> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let clock_khz = self.ctx.attribute(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)? as f64;
        let bus_bits = self.ctx.attribute(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)? as f64;
        Ok(2.0 * clock_khz * 1e3 * bus_bits / 8.0 / 1e9)
    }

    /// Waits for every launch so far.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        Ok(self.stream.synchronize()?)
    }

    /// `y[m, n] = x[m, k] · wᵀ` for a row-major f32 weight `[n, k]`, `m ≤` [`GEMV_MAX_M`].
    pub fn gemv_f32(
        &self,
        x: &CudaView<'_, f32>,
        m: usize,
        w: &CudaView<'_, f32>,
        n: usize,
        k: usize,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        self.gemv_checked("gemv_f32", x, m, w, n, k, y)
    }

    /// As [`CudaKernels::gemv_f32`] for a bf16 weight given as raw bits.
    pub fn gemv_bf16(
        &self,
        x: &CudaView<'_, f32>,
        m: usize,
        w: &CudaView<'_, u16>,
        n: usize,
        k: usize,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        self.gemv_checked("gemv_bf16", x, m, w, n, k, y)
    }

    /// As [`CudaKernels::gemv_f32`] for an IEEE half (f16) weight given as raw bits (widened
    /// exactly; the activations and the sums stay f32).
    pub fn gemv_f16(
        &self,
        x: &CudaView<'_, f32>,
        m: usize,
        w: &CudaView<'_, u16>,
        n: usize,
        k: usize,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        self.gemv_checked("gemv_f16", x, m, w, n, k, y)
    }

    /// `out[i] = bf16(x[i])` for the first `count` values, rounded to nearest even (as the CPU's
    /// bf16 matmul rounds its activations).
    pub fn round_bf16(
        &self,
        x: &CudaView<'_, f32>,
        count: usize,
        out: &mut CudaViewMut<'_, u16>,
    ) -> Result<(), CudaError> {
        Self::check_len("round_bf16 x", x.len(), count)?;
        Self::check_len("round_bf16 out", out.len(), count)?;
        if count == 0 {
            return Ok(());
        }
        let c = Self::int("count", count)?;
        let f = self.function("round_bf16")?;
        // SAFETY: one thread per element below `count`, which both lengths cover.
        unsafe { self.stream.launch_builder(f).arg(x).arg(out).arg(&c).launch(Self::flat(count))? };
        Ok(())
    }

    /// `y[m, n] = x[m, k] · wᵀ` on bf16 tensor cores, for bf16 activations `x` (see
    /// [`CudaKernels::round_bf16`]) and a row-major bf16 weight `[n, k]`, both as raw bits: each
    /// product bf16 × bf16, the sums f32. Any `m`, `n`, `k`; needs
    /// [`CudaKernels::has_bf16_tensor_cores`] (an error otherwise).
    pub fn gemm_bf16(
        &self,
        x: &CudaView<'_, u16>,
        m: usize,
        w: &CudaView<'_, u16>,
        n: usize,
        k: usize,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        if !self.has_bf16_tensor_cores() {
            return Err(CudaError::InvalidArgument(format!("gemm_bf16: {} has no bf16 tensor cores", self.arch)));
        }
        Self::check_len("gemm x", x.len(), m * k)?;
        Self::check_len("gemm w", w.len(), n * k)?;
        Self::check_len("gemm y", y.len(), m * n)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let (mi, ni, ki) = (Self::int("m", m)?, Self::int("n", n)?, Self::int("k", k)?);
        Self::int("m · k", m * k)?;
        Self::int("n · k", n * k)?;
        Self::int("m · n", m * n)?;
        let blocks = |v: usize| u32::try_from(v.div_ceil(64)).unwrap_or(u32::MAX);
        if m.div_ceil(64) > 65_535 {
            return Err(CudaError::InvalidArgument(format!("gemm_bf16: m = {m} is over the grid's 65535 × 64 rows")));
        }
        let cfg = LaunchConfig { grid_dim: (blocks(n), blocks(m), 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
        let f = self.function("gemm_bf16_tc")?;
        // SAFETY: the kernel reads x[m·k] and w[n·k] and writes y[m·n] (edges masked), all checked
        // above; the device has the sm_80 instructions it uses.
        unsafe { self.stream.launch_builder(f).arg(x).arg(w).arg(y).arg(&mi).arg(&ni).arg(&ki).launch(cfg)? };
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn gemv_checked<W>(
        &self,
        name: &str,
        x: &CudaView<'_, f32>,
        m: usize,
        w: &CudaView<'_, W>,
        n: usize,
        k: usize,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        if m == 0 || m > GEMV_MAX_M {
            return Err(CudaError::InvalidArgument(format!("gemv: m = {m}, expected 1..={GEMV_MAX_M}")));
        }
        Self::check_len("gemv x", x.len(), m * k)?;
        Self::check_len("gemv w", w.len(), n * k)?;
        Self::check_len("gemv y", y.len(), m * n)?;
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
        x: &CudaView<'_, f32>,
        weight: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        Self::check_len("rms_norm x", x.len(), rows * cols)?;
        Self::check_len("rms_norm weight", weight.len(), cols)?;
        Self::check_len("rms_norm y", y.len(), rows * cols)?;
        let ci = Self::int("cols", cols)?;
        let f = self.function("rms_norm")?;
        // SAFETY: one block per row of `cols` values, lengths checked above.
        unsafe {
            self.stream.launch_builder(f).arg(x).arg(weight).arg(y).arg(&ci).arg(&eps).launch(Self::per_row(rows)?)?
        };
        Ok(())
    }

    /// `acc += x` over `rows · cols` values, then `y` = the RMS norm of each row of `acc` (a
    /// residual add and the next block's norm in one launch; the same bits as
    /// [`CudaKernels::add_inplace`] then [`CudaKernels::rms_norm`]).
    #[allow(clippy::too_many_arguments)]
    pub fn add_rms_norm(
        &self,
        acc: &mut CudaViewMut<'_, f32>,
        x: &CudaView<'_, f32>,
        weight: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        Self::check_len("add_rms_norm acc", acc.len(), rows * cols)?;
        Self::check_len("add_rms_norm x", x.len(), rows * cols)?;
        Self::check_len("add_rms_norm weight", weight.len(), cols)?;
        Self::check_len("add_rms_norm y", y.len(), rows * cols)?;
        if rows == 0 {
            return Ok(());
        }
        let ci = Self::int("cols", cols)?;
        let f = self.function("add_rms_norm")?;
        // SAFETY: one block per row of `cols` values, lengths checked above.
        unsafe {
            let mut launch = self.stream.launch_builder(f);
            launch.arg(acc).arg(x).arg(weight).arg(y).arg(&ci).arg(&eps);
            launch.launch(Self::per_row(rows)?)?
        };
        Ok(())
    }

    /// Softmax of each of the `rows` rows of `x` in place.
    pub fn softmax(&self, x: &mut CudaViewMut<'_, f32>, rows: usize, cols: usize) -> Result<(), CudaError> {
        Self::check_len("softmax x", x.len(), rows * cols)?;
        let ci = Self::int("cols", cols)?;
        // SAFETY: one block per row, lengths checked above.
        unsafe {
            self.stream.launch_builder(self.function("softmax_rows")?).arg(x).arg(&ci).launch(Self::per_row(rows)?)?
        };
        Ok(())
    }

    /// The index of the largest value of each row (greedy decoding on device; the first on ties).
    pub fn argmax(&self, x: &CudaView<'_, f32>, rows: usize, cols: usize) -> Result<Vec<u32>, CudaError> {
        Self::check_len("argmax x", x.len(), rows * cols)?;
        let ci = Self::int("cols", cols)?;
        let mut out = self.stream.alloc_zeros::<i32>(rows.max(1))?;
        let f = self.function("argmax_rows")?;
        // SAFETY: one block of 256 threads per row (the kernel's shared arrays are 256 long).
        unsafe { self.stream.launch_builder(f).arg(x).arg(&ci).arg(&mut out).launch(Self::per_row(rows)?)? };
        let ids = self.stream.clone_dtoh(&out)?;
        Ok(ids.into_iter().take(rows).map(|i| i.max(0) as u32).collect())
    }

    /// Each row's [`RowSummary`]: log-sum-exp, the `k` largest entries (at most
    /// [`ROW_SUMMARY_MAX_K`]) and the value at `targets[r]` (`targets` empty: none), computed on
    /// the device; `rows · (2 + 2k)` numbers come back instead of the rows.
    pub fn row_summaries(
        &self,
        x: &CudaView<'_, f32>,
        rows: usize,
        cols: usize,
        k: usize,
        targets: &[u32],
    ) -> Result<Vec<RowSummary>, CudaError> {
        Self::check_len("row_summaries x", x.len(), rows * cols)?;
        if k > ROW_SUMMARY_MAX_K {
            return Err(CudaError::InvalidArgument(format!("row_summaries: k = {k} is more than {ROW_SUMMARY_MAX_K}")));
        }
        if !targets.is_empty() && targets.len() != rows {
            return Err(CudaError::InvalidArgument(format!(
                "row_summaries: {} targets for {rows} rows",
                targets.len()
            )));
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        let (ci, ki) = (Self::int("cols", cols)?, Self::int("k", k)?);
        let t: Vec<i32> = (0..rows).map(|r| targets.get(r).map_or(-1, |&t| i32::try_from(t).unwrap_or(-1))).collect();
        let t = self.stream.clone_htod(&t)?;
        let width = 2 + 2 * k;
        let mut out = self.stream.alloc_zeros::<f32>(rows * width)?;
        let f = self.function("row_summary")?;
        // SAFETY: one block of 256 threads per row (the kernel's shared arrays are 256 long);
        // `out` holds `2 + 2k` values per row, `t` one target per row.
        unsafe {
            self.stream.launch_builder(f).arg(x).arg(&ci).arg(&ki).arg(&t).arg(&mut out).launch(Self::per_row(rows)?)?
        };
        let host = self.stream.clone_dtoh(&out)?;
        Ok(host
            .chunks_exact(width)
            .map(|o| {
                let top = (0..k)
                    .map(|j| (o[2 + j], o[2 + k + j].to_bits() as i32))
                    .take_while(|&(_, i)| i >= 0)
                    .map(|(v, i)| (v, i as u32))
                    .collect();
                RowSummary { log_sum_exp: o[0], target: o[1], top }
            })
            .collect())
    }

    /// Applies the logits processors' `edits` (entry index, [`Edit`]; checked here by
    /// [`check_edits`]) to `x` in place, one thread per edit: what a step's rows become before
    /// [`CudaKernels::row_summaries`] when a processor is at work. The same bits as
    /// [`crate::logit_edit::apply_edits`] (IEEE division).
    pub fn edit_logits(&self, x: &mut CudaViewMut<'_, f32>, edits: &[(u32, Edit)]) -> Result<(), CudaError> {
        check_edits(x.len(), edits).map_err(CudaError::InvalidArgument)?;
        if edits.is_empty() {
            return Ok(());
        }
        let n = Self::int("edits", edits.len())?;
        let index: Vec<u32> = edits.iter().map(|&(i, _)| i).collect();
        let code: Vec<f32> = edits.iter().map(|&(_, e)| e.code()).collect();
        let (index, code) = (self.stream.clone_htod(&index)?, self.stream.clone_htod(&code)?);
        let f = self.function("edit_logits")?;
        // SAFETY: one thread per edit; every index is inside `x` and none repeats (checked above).
        unsafe { self.stream.launch_builder(f).arg(x).arg(&index).arg(&code).arg(&n).launch(Self::flat(edits.len()))? };
        Ok(())
    }

    /// `out[r, c] = act(gate_up[r, c]) · gate_up[r, ff + c]` (rows of `[gate | up]`).
    pub fn gated_act(
        &self,
        act: Activation,
        gate_up: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
        rows: usize,
        ff: usize,
    ) -> Result<(), CudaError> {
        Self::check_len("gated_act gate_up", gate_up.len(), rows * 2 * ff)?;
        Self::check_len("gated_act out", out.len(), rows * ff)?;
        Self::int("rows · 2 · ff", rows * 2 * ff)?;
        let (ri, fi, ai) = (Self::int("rows", rows)?, Self::int("ff", ff)?, act_code(act));
        let f = self.function("gated_act")?;
        // SAFETY: one thread per output, lengths checked above.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(gate_up)
                .arg(out)
                .arg(&ri)
                .arg(&fi)
                .arg(&ai)
                .launch(Self::flat(rows * ff))?
        };
        Ok(())
    }

    /// `x = act(x)` over the first `count` values.
    pub fn act_inplace(&self, act: Activation, x: &mut CudaViewMut<'_, f32>, count: usize) -> Result<(), CudaError> {
        Self::check_len("act x", x.len(), count)?;
        let (ci, ai) = (Self::int("count", count)?, act_code(act));
        let f = self.function("act_inplace")?;
        // SAFETY: one thread per value, length checked above.
        unsafe { self.stream.launch_builder(f).arg(x).arg(&ci).arg(&ai).launch(Self::flat(count))? };
        Ok(())
    }

    /// `x += y` over the first `count` values.
    pub fn add_inplace(
        &self,
        x: &mut CudaViewMut<'_, f32>,
        y: &CudaView<'_, f32>,
        count: usize,
    ) -> Result<(), CudaError> {
        Self::check_len("add x", x.len(), count)?;
        Self::check_len("add y", y.len(), count)?;
        let ci = Self::int("count", count)?;
        let f = self.function("add_inplace")?;
        // SAFETY: one thread per value, lengths checked above.
        unsafe { self.stream.launch_builder(f).arg(x).arg(y).arg(&ci).launch(Self::flat(count))? };
        Ok(())
    }

    /// `x *= s` over the first `count` values.
    pub fn scale_inplace(&self, x: &mut CudaViewMut<'_, f32>, count: usize, s: f32) -> Result<(), CudaError> {
        Self::check_len("scale x", x.len(), count)?;
        let ci = Self::int("count", count)?;
        let f = self.function("scale_inplace")?;
        // SAFETY: one thread per value, length checked above.
        unsafe { self.stream.launch_builder(f).arg(x).arg(&ci).arg(&s).launch(Self::flat(count))? };
        Ok(())
    }

    /// `out[t, :] = table[ids[t], :]` for a `[rows, cols]` f32 table; ids are checked here.
    pub fn embedding(
        &self,
        table: &CudaView<'_, f32>,
        cols: usize,
        ids: &[u32],
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        let rows = table.len().checked_div(cols).unwrap_or(0);
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= rows) {
            return Err(CudaError::InvalidArgument(format!("embedding: id {bad} is not below {rows}")));
        }
        Self::check_len("embedding out", out.len(), ids.len() * cols)?;
        if ids.is_empty() || cols == 0 {
            return Ok(());
        }
        let ids: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
        let dids = self.upload(&ids)?;
        let ci = Self::int("cols", cols)?;
        let cfg = LaunchConfig {
            grid_dim: (cols.div_ceil(256) as u32, Self::int("tokens", ids.len())? as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let f = self.function("embedding_f32")?;
        // SAFETY: every id is a row of the table, out holds ids·cols values (checked above).
        unsafe { self.stream.launch_builder(f).arg(table).arg(&dids).arg(out).arg(&ci).launch(cfg)? };
        Ok(())
    }

    /// `out[t, :] = table[ids[t], :]` for `n` ids read from device memory as f32-coded integers
    /// (a decode step's tokens, written before the step so that a recorded step replays with new
    /// ones; an id outside the table writes nothing).
    pub fn embedding_coded(
        &self,
        table: &CudaView<'_, f32>,
        cols: usize,
        ids: &CudaView<'_, f32>,
        n: usize,
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        Self::check_len("embedding ids", ids.len(), n)?;
        Self::check_len("embedding out", out.len(), n * cols)?;
        if n == 0 || cols == 0 {
            return Ok(());
        }
        let (ci, vi) = (Self::int("cols", cols)?, Self::int("vocab", table.len() / cols)?);
        let cfg = LaunchConfig {
            grid_dim: (cols.div_ceil(256) as u32, Self::int("tokens", n)? as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let f = self.function("embedding_f32_coded")?;
        // SAFETY: out holds n·cols values (checked above); the kernel reads only ids inside the
        // table's `vocab` rows.
        unsafe { self.stream.launch_builder(f).arg(table).arg(ids).arg(out).arg(&ci).arg(&vi).launch(cfg)? };
        Ok(())
    }

    /// Writes the keys and values of `rows` rows of `qkv` (`[rows, q | k | v]`, each part
    /// `heads·d` wide) at position `pos_at[0]` (an f32-coded integer in device memory, so that a
    /// recorded decode step replays at later positions; outside `[0, cap)` nothing is written)
    /// of caches laid out `[rows, heads, cap, d]`.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_append(
        &self,
        qkv: &CudaView<'_, f32>,
        k: &mut CudaViewMut<'_, f32>,
        v: &mut CudaViewMut<'_, f32>,
        rows: usize,
        heads: usize,
        d: usize,
        cap: usize,
        pos_at: &CudaView<'_, f32>,
    ) -> Result<(), CudaError> {
        Self::check_len("kv_append qkv", qkv.len(), rows * 3 * heads * d)?;
        Self::check_len("kv_append k", k.len(), rows * heads * cap * d)?;
        Self::check_len("kv_append v", v.len(), rows * heads * cap * d)?;
        Self::check_len("kv_append position", pos_at.len(), 1)?;
        let count = rows * heads * d;
        Self::int("rows · heads · cap · d", rows * heads * cap * d)?;
        let (ri, hi, di, ci) = (rows as i32, heads as i32, d as i32, cap as i32);
        let f = self.function("kv_append")?;
        let mut launch = self.stream.launch_builder(f);
        launch.arg(qkv).arg(k).arg(v).arg(&ri).arg(&hi).arg(&di).arg(&ci).arg(pos_at);
        // SAFETY: one thread per (row, head, column); every index is inside the lengths checked,
        // and the kernel writes nothing for a position outside [0, cap).
        unsafe { launch.launch(Self::flat(count))? };
        Ok(())
    }

    /// T5 attention for one layer: see [`CudaAttention`] and attention.cu for the layouts.
    /// `a.batch` problems run in one launch.
    pub fn attention(&self, a: &CudaAttention<'_, '_>, out: &mut CudaViewMut<'_, f32>) -> Result<(), CudaError> {
        let (heads, d, q_len, kv_len, batch) = (a.heads, a.d, a.q_len, a.kv_len, a.batch);
        let inner = heads * d;
        Self::check_len("attention out", out.len(), batch * q_len * inner)?;
        if batch == 0 || q_len == 0 || heads == 0 || d == 0 {
            return Ok(());
        }
        let q_last = (batch - 1) * a.q_batch_stride + (q_len - 1) * a.q_row_stride + inner;
        Self::check_len("attention q", a.q.len(), q_last)?;
        if kv_len > 0 {
            let last =
                (batch - 1) * a.kv_batch_stride + (heads - 1) * a.kv_head_stride + (kv_len - 1) * a.kv_row_stride + d;
            Self::check_len("attention k", a.k.len(), last)?;
            Self::check_len("attention v", a.v.len(), last)?;
        }
        if let Some(m) = a.mask {
            Self::check_len("attention mask", m.len(), kv_len)?;
        }
        // With the position on the device, check the bias for the last position it can hold
        // (causality keeps every distance at or below 0, the first position's reach).
        let q_pos0 = match a.q_pos_at {
            None => a.q_pos0,
            Some(p) => {
                Self::check_len("attention position", p.len(), 1)?;
                if !a.causal || kv_len < q_len {
                    return Err(CudaError::InvalidArgument(
                        "attention: a position on the device needs causal attention over a cache of kv_len ≥ q_len"
                            .into(),
                    ));
                }
                kv_len - q_len
            }
        };
        if let Some((b, head_stride, offset)) = a.bias {
            // Relative distances j − (q_pos0 + i) span [−(q_pos0 + q_len − 1), kv_len − 1 − q_pos0].
            if offset + 1 < q_pos0 + q_len {
                return Err(CudaError::InvalidArgument(format!(
                    "attention bias: offset {offset} is too small for queries from position {q_pos0}"
                )));
            }
            let hi = (offset + kv_len).saturating_sub(q_pos0 + 1);
            Self::check_len("attention bias", b.len(), (heads - 1) * head_stride + hi.max(offset) + 1)?;
        }
        let shared = (kv_len + 32) * 4;
        if shared > 48 * 1024 {
            return Err(CudaError::InvalidArgument(format!(
                "attention: kv_len {kv_len} needs more than 48 KiB of shared memory"
            )));
        }
        if batch > 65_535 {
            return Err(CudaError::InvalidArgument(format!("attention: batch {batch} is over the grid's 65535")));
        }
        // A missing bias or mask is a one-element dummy buffer (flags tell the kernel to ignore it).
        let none = self.dummy.as_view();
        let int = Self::int;
        let (bias, bias_stride, bias_offset) = a.bias.map_or((&none, 0, 0), |(b, s, o)| (b, s, o));
        let sizes = [
            int("heads", heads)?,
            int("d", d)?,
            int("q_len", q_len)?,
            int("kv_len", kv_len)?,
            int("q_pos0", a.q_pos0)?,
            i32::from(a.causal),
            int("q_row_stride", a.q_row_stride)?,
            int("kv_head_stride", a.kv_head_stride)?,
            int("kv_row_stride", a.kv_row_stride)?,
            int("bias head stride", bias_stride)?,
            int("bias offset", bias_offset)?,
        ];
        let batch_strides = [a.q_batch_stride as i64, a.kv_batch_stride as i64];
        let cfg = LaunchConfig {
            grid_dim: (sizes[2] as u32, sizes[0] as u32, batch as u32),
            block_dim: (128, 1, 1),
            shared_mem_bytes: shared as u32,
        };
        let (has_bias, has_mask) = (i32::from(a.bias.is_some()), i32::from(a.mask.is_some()));
        let f = self.function("attention")?;
        let mut launch = self.stream.launch_builder(f);
        launch.arg(a.q).arg(a.k).arg(a.v).arg(bias).arg(a.mask.unwrap_or(&none)).arg(&has_bias).arg(&has_mask);
        launch.arg(out);
        for s in &sizes {
            launch.arg(s);
        }
        launch.arg(&batch_strides[0]).arg(&batch_strides[1]);
        let has_pos = i32::from(a.q_pos_at.is_some());
        launch.arg(a.q_pos_at.unwrap_or(&none)).arg(&has_pos);
        // SAFETY: every buffer's length was checked against the shape, strides and batch above;
        // shared memory holds kv_len scores and 32 floats of scratch.
        unsafe { launch.launch(cfg)? };
        Ok(())
    }
}

/// The kernels' activation code.
fn act_code(act: Activation) -> i32 {
    match act {
        Activation::Relu => 0,
        Activation::GeluNew => 1,
        Activation::Silu => 2,
    }
}

/// One [`CudaKernels::attention`] call, with the layouts of [`crate::AttentionArgs`]: query `i`,
/// head `h` at `q[i·q_row_stride + h·d]`; key `j`, head `h` at `k[h·kv_head_stride +
/// j·kv_row_stride]` (values alike); the output `[q_len, heads·d]` densely. `batch` problems of
/// the same shape run in one launch: problem `t` reads its queries `t·q_batch_stride` further on,
/// its keys and values `t·kv_batch_stride` further on (0: all share them), shares the bias and
/// the mask, and writes its output after problem `t − 1`'s.
#[derive(Clone, Copy)]
pub struct CudaAttention<'a, 'b> {
    /// Queries.
    pub q: &'a CudaView<'b, f32>,
    /// Keys.
    pub k: &'a CudaView<'b, f32>,
    /// Values.
    pub v: &'a CudaView<'b, f32>,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub d: usize,
    /// Query rows.
    pub q_len: usize,
    /// Keys.
    pub kv_len: usize,
    /// Absolute position of query row 0 (for causality and the bias).
    pub q_pos0: usize,
    /// Keys after the query's position are skipped.
    pub causal: bool,
    /// `q_pos0` read by the kernel from element 0 of this buffer (an f32-coded integer: a
    /// decode step's position, so that a recorded step replays at later positions) instead of
    /// the field; causal only, with `kv_len` the cache's capacity (the keys after the position
    /// are masked by causality), and `q_pos0` taken as `kv_len − q_len` for the bounds checks.
    pub q_pos_at: Option<&'a CudaView<'b, f32>>,
    /// Distance between query rows.
    pub q_row_stride: usize,
    /// Distance between heads of the keys and values.
    pub kv_head_stride: usize,
    /// Distance between keys.
    pub kv_row_stride: usize,
    /// Relative bias by distance as [`crate::BiasView`]: `(values, head_stride, offset)`, the
    /// bias of `(h, i, j)` at `values[h·head_stride + offset + j − (q_pos0 + i)]`.
    pub bias: Option<(&'a CudaView<'b, f32>, usize, usize)>,
    /// Additive mask per key.
    pub mask: Option<&'a CudaView<'b, f32>>,
    /// Problems in the launch (1: one).
    pub batch: usize,
    /// Distance between the problems' queries.
    pub q_batch_stride: usize,
    /// Distance between the problems' keys (and values); 0 when they share them.
    pub kv_batch_stride: usize,
}
