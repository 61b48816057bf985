//! [`T0`]: the model together with its tokenizer: text in, text out. The one obvious entry
//! point for applications.

use std::path::Path;

pub use t0_tokenizer::Tokenizer;

use crate::{Classification, Generated, GenerationConfig, LoadOptions, ModelError, Result, T0Builder, T5Model};

/// A generated answer with its text.
#[derive(Clone, Debug, PartialEq)]
pub struct TextGeneration {
    /// Ids, log-probs and (beam search) score.
    pub generated: Generated,
    /// The ids decoded, special tokens skipped.
    pub text: String,
}

/// A T5 / T0 model and its tokenizer (if the directory has one).
///
/// ```
/// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
/// use t0_model::{GenerationConfig, T0};
/// let t0 = T0::from_dir("tests/fixtures/models/t0-tiny".as_ref())?;
/// let out = t0.generate_text(&["Is this review positive or negative? Review: best skillet ever"], &GenerationConfig::greedy(8))?;
/// println!("{}", out[0][0].text);
/// let r = t0.classify_text("Is this review positive or negative? Review: best skillet ever", &["Positive", "Negative"], false)?;
/// println!("best: {}", r.best);
/// # Ok::<(), t0_model::ModelError>(())
/// ```
#[derive(Debug)]
pub struct T0 {
    model: T5Model,
    tokenizer: Option<Tokenizer>,
    /// Why the directory's tokenizer did not load ([`T0::with_model_lenient`]).
    tokenizer_error: Option<String>,
    add_eos: bool,
}

/// The tokenizer of a model directory (`spiece.model`, else `tokenizer.json`); `None` when it
/// has neither.
fn dir_tokenizer(dir: &Path) -> Option<std::result::Result<Tokenizer, t0_tokenizer::TokenizerError>> {
    let has_tokenizer = dir.join("spiece.model").is_file() || dir.join("tokenizer.json").is_file();
    has_tokenizer.then(|| Tokenizer::from_dir(dir))
}

impl T0 {
    /// Load a model given as a directory **or** a hub id (`bigscience/T0_3B`, looked up in the
    /// local Hugging Face cache, see [`crate::hub`]), with default options. For a revision,
    /// load-time conversion or other kernels, use [`T0::builder`].
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
    /// let t0 = t0_model::T0::from_pretrained("tests/fixtures/models/t0-tiny")?; // or "bigscience/T0_3B"
    /// assert_eq!(t0.encode("Hello")?.last(), Some(&1)); // `</s>` appended
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Self::builder(model).load()
    }

    /// A [`T0Builder`] for `model` (a directory or a hub id): revision, dtype, kernels, progress.
    pub fn builder<'a>(model: impl Into<String>) -> T0Builder<'a> {
        T0Builder::new(model)
    }

    /// Load the model of `dir` and its tokenizer (`spiece.model`, else `tokenizer.json`) if
    /// present; a model without a tokenizer still works with token ids.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::load(dir, LoadOptions::default())
    }

    /// As [`T0::from_dir`] with options.
    pub fn load(dir: &Path, options: LoadOptions) -> Result<Self> {
        Self::with_model(T5Model::load(dir, options)?)
    }

    /// Wrap a loaded model, with the tokenizer of its directory if it has one.
    pub fn with_model(model: T5Model) -> Result<Self> {
        let tokenizer = dir_tokenizer(model.dir()).transpose()?;
        Ok(Self { model, tokenizer, tokenizer_error: None, add_eos: true })
    }

    /// As [`T0::with_model`], but tokenizer files that do not load (an unsupported kind, such
    /// as a BPE `tokenizer.json`, or a damaged file) leave the pipeline without a tokenizer
    /// instead of failing: token ids still work, and [`T0::tokenizer`] (so text input) returns
    /// [`ModelError::TokenizerUnavailable`] with the reason, also given by
    /// [`T0::tokenizer_error`].
    ///
    /// ```
    /// # let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/relu-tied-deepdec");
    /// let dir = std::env::temp_dir().join(format!("t0-lenient-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// for f in ["config.json", "model.safetensors"] {
    ///     std::fs::copy(src.join(f), dir.join(f))?;
    /// }
    /// std::fs::write(dir.join("spiece.model"), b"not a sentencepiece model")?;
    /// let t0 = t0_model::T0::with_model_lenient(t0_model::T5Model::from_dir(&dir)?);
    /// assert!(t0.tokenizer_error().is_some());
    /// assert!(t0.encode("Hello").is_err());
    /// let out = t0.model().generate(&[vec![5, 1]], &t0_model::GenerationConfig::greedy(2))?;
    /// assert!(!out[0][0].token_ids.is_empty());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_model_lenient(model: T5Model) -> Self {
        let (tokenizer, tokenizer_error) = match dir_tokenizer(model.dir()) {
            None => (None, None),
            Some(Ok(t)) => (Some(t), None),
            Some(Err(e)) => (None, Some(e.to_string())),
        };
        Self { model, tokenizer, tokenizer_error, add_eos: true }
    }

    /// Why the model directory's tokenizer did not load, for a pipeline made by
    /// [`T0::with_model_lenient`]; `None` when it loaded or there is none.
    pub fn tokenizer_error(&self) -> Option<&str> {
        self.tokenizer_error.as_deref()
    }

    /// Encode prompts with `</s>` appended (HF's default, as in T0's model card; the default)
    /// or without (as T0's evaluation scripts do).
    pub fn with_eos(mut self, add_eos: bool) -> Self {
        self.add_eos = add_eos;
        self
    }

    /// The model.
    pub fn model(&self) -> &T5Model {
        &self.model
    }

    /// The tokenizer, or an error saying which file is missing.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| match &self.tokenizer_error {
            Some(reason) => {
                ModelError::TokenizerUnavailable { dir: self.model.dir().to_path_buf(), reason: reason.clone() }
            }
            None => ModelError::MissingFile {
                dir: self.model.dir().to_path_buf(),
                what: "no spiece.model or tokenizer.json: text input needs a tokenizer (use token ids instead)".into(),
            },
        })
    }

    /// Token ids of a prompt.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let ids = self.tokenizer()?.encode_with(text, self.add_eos);
        let vocab = self.model.config().vocab_size;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::InvalidArgument(format!(
                "{}: the tokenizer gave token id {id}, but the model's vocabulary has {vocab} entries: \
                 the tokenizer files do not belong to this model",
                self.model.dir().display()
            )));
        }
        Ok(ids)
    }

    /// Generate for each prompt; per prompt, `cfg.num_return_sequences` answers.
    pub fn generate_text(&self, prompts: &[&str], cfg: &GenerationConfig) -> Result<Vec<Vec<TextGeneration>>> {
        let inputs = prompts.iter().map(|p| self.encode(p)).collect::<Result<Vec<_>>>()?;
        let out = self.model.generate(&inputs, cfg)?;
        self.with_text(out)
    }

    /// Attach decoded text to generated sequences.
    pub fn with_text(&self, out: Vec<Vec<Generated>>) -> Result<Vec<Vec<TextGeneration>>> {
        let tok = self.tokenizer()?;
        Ok(out
            .into_iter()
            .map(|seqs| {
                seqs.into_iter()
                    .map(|g| TextGeneration { text: tok.decode(&g.token_ids, true), generated: g })
                    .collect()
            })
            .collect())
    }

    /// Token ids of an answer choice: always with `</s>`, whatever [`Self::with_eos`] says for
    /// prompts (T0's evaluation scores the end of the answer too).
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
    /// let t0 = t0_model::T0::from_pretrained("tests/fixtures/models/t0-tiny")?.with_eos(false);
    /// assert_eq!(t0.encode_choice("Yes")?.last(), Some(&1));
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn encode_choice(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer()?.encode_with(text, true))
    }

    /// Rank classification of text choices (each encoded with `</s>`, as T0's evaluation does).
    pub fn classify_text(&self, prompt: &str, choices: &[&str], length_normalize: bool) -> Result<Classification> {
        let mut out = self.classify_texts(&[(prompt, choices)], length_normalize)?;
        Ok(out.remove(0))
    }

    /// [`Self::classify_text`] for several prompts, each with its own choices, scored as one
    /// batch ([`T5Model::classify_batch`]): one encoder pass and one decoder pass for all.
    ///
    /// ```
    /// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
    /// let t0 = t0_model::T0::from_pretrained("tests/fixtures/models/t0-tiny")?;
    /// let sentiment: &[&str] = &["Positive", "Negative"];
    /// let rs = t0.classify_texts(
    ///     &[("Review: best skillet ever. Positive or negative?", sentiment), ("Is the sky green?", &["Yes", "No"])],
    ///     false,
    /// )?;
    /// println!("{} {}", sentiment[rs[0].best], rs[1].best);
    /// # Ok::<(), t0_model::ModelError>(())
    /// ```
    pub fn classify_texts(&self, items: &[(&str, &[&str])], length_normalize: bool) -> Result<Vec<Classification>> {
        let mut prompts = Vec::with_capacity(items.len());
        let mut choices = Vec::with_capacity(items.len());
        for (prompt, cs) in items {
            prompts.push(self.encode(prompt)?);
            choices.push(cs.iter().map(|c| self.encode_choice(c)).collect::<Result<Vec<_>>>()?);
        }
        let batch: Vec<crate::ClassifyItem> =
            prompts.iter().zip(&choices).map(|(p, c)| (p.as_slice(), c.as_slice())).collect();
        self.model.classify_batch(&batch, length_normalize)
    }
}
