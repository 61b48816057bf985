//! [`T0Builder`]: load a [`T0`] from a directory or a hub id, with options.

use std::path::PathBuf;
use std::time::Instant;

use t0_kernels::{Kernels, PackDType};

use crate::hub::resolve_model;
use crate::{LoadOptions, Result, T5Model, T0};

/// Called after each linear weight is ready: `(tensor name, done, total)`.
type Progress<'a> = Box<dyn Fn(&str, usize, usize) + 'a>;

/// Options for loading a [`T0`]; made by [`T0::builder`], finished by [`T0Builder::load`].
///
/// ```
/// use t0_model::{GenerationConfig, PackDType, T0};
/// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
/// // A directory here; a hub id such as "bigscience/T0_3B" is looked up in the HF cache.
/// let t0 = T0::builder("tests/fixtures/models/t0-tiny")
///     .dtype(PackDType::Bf16) // convert the linear weights at load
///     .add_eos(false)         // encode prompts as T0's evaluation scripts do
///     .load()?;
/// let out = t0.generate_text(&["Is this a question?"], &GenerationConfig::greedy(4))?;
/// assert!(out[0][0].generated.token_ids.len() <= 4);
/// # Ok::<(), t0_model::ModelError>(())
/// ```
pub struct T0Builder<'a> {
    spec: String,
    revision: Option<String>,
    options: LoadOptions,
    add_eos: bool,
    progress: Option<Progress<'a>>,
}

impl std::fmt::Debug for T0Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T0Builder")
            .field("spec", &self.spec)
            .field("revision", &self.revision)
            .field("options", &self.options)
            .field("add_eos", &self.add_eos)
            .finish_non_exhaustive()
    }
}

impl<'a> T0Builder<'a> {
    /// Start from `model`: a directory, or a hub id (`bigscience/T0_3B`) in the HF cache.
    pub fn new(model: impl Into<String>) -> Self {
        Self { spec: model.into(), revision: None, options: LoadOptions::default(), add_eos: true, progress: None }
    }

    /// The revision of a hub id: a ref in the cache (default `main`) or a commit hash.
    pub fn revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = Some(revision.into());
        self
    }

    /// Convert the linear weights at load to `dtype` (see [`LoadOptions::dtype`]).
    pub fn dtype(mut self, dtype: PackDType) -> Self {
        self.options.dtype = Some(dtype);
        self
    }

    /// Run the model on these kernels instead of [`t0_kernels::select`]'s choice.
    pub fn kernels(mut self, kernels: &'static dyn Kernels) -> Self {
        self.options.kernels = kernels;
        self
    }

    /// All load options at once.
    pub fn options(mut self, options: LoadOptions) -> Self {
        self.options = options;
        self
    }

    /// Append `</s>` to text prompts (default true, as HF's tokenizer does); see [`T0::with_eos`].
    pub fn add_eos(mut self, add_eos: bool) -> Self {
        self.add_eos = add_eos;
        self
    }

    /// Call `f(tensor, done, total)` as the weights load (for a progress bar).
    pub fn on_progress(mut self, f: impl Fn(&str, usize, usize) + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// The directory the model resolves to (without loading it).
    pub fn resolve(&self) -> Result<PathBuf> {
        resolve_model(&self.spec, self.revision.as_deref())
    }

    /// Resolve the model and load it with its tokenizer.
    pub fn load(self) -> Result<T0> {
        let dir = self.resolve()?;
        let start = Instant::now();
        tracing::info!(dir = %dir.display(), dtype = ?self.options.dtype, kernels = self.options.kernels.name(), "loading");
        let model = match &self.progress {
            Some(p) => T5Model::load_with_progress(&dir, self.options, p.as_ref())?,
            None => T5Model::load(&dir, self.options)?,
        };
        let t0 = T0::with_model(model)?.with_eos(self.add_eos);
        tracing::info!(
            seconds = start.elapsed().as_secs_f64(),
            weight_bytes = t0.model().weight_bytes(),
            tokenizer = t0.tokenizer().is_ok(),
            "loaded"
        );
        Ok(t0)
    }
}
