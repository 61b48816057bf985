//! Streaming, atomic safetensors writing: the header first, then each tensor's bytes in order,
//! into a temporary file that is renamed over the target only when everything was written.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{DType, Result, TensorError};

/// Name, dtype and shape of a tensor to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// A spec.
    pub fn new(name: impl Into<String>, dtype: DType, shape: Vec<usize>) -> Self {
        Self { name: name.into(), dtype, shape }
    }
    /// Bytes of data (`usize::MAX` when the size overflows; [`SafeTensorsWriter::create`]
    /// refuses such a spec).
    pub fn nbytes(&self) -> usize {
        crate::tensor::checked_numel(&self.shape).and_then(|n| n.checked_mul(self.dtype.size())).unwrap_or(usize::MAX)
    }
}

/// Writes a safetensors file tensor by tensor, so a file far larger than memory can be made.
///
/// ```
/// use t0_tensor::{DType, SafeTensorsFile, SafeTensorsWriter, TensorSpec};
/// let dir = std::env::temp_dir().join(format!("t0-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("x.safetensors");
/// let specs = vec![TensorSpec::new("a", DType::F32, vec![2])];
/// let mut w = SafeTensorsWriter::create(&path, &specs, Default::default())?;
/// w.write_tensor("a", bytemuck::cast_slice(&[1.0f32, 2.0]))?;
/// w.finish()?;
/// let f = SafeTensorsFile::open(&path)?;
/// assert_eq!(f.tensor("a")?.as_f32()?, &[1.0, 2.0]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), t0_tensor::TensorError>(())
/// ```
#[derive(Debug)]
pub struct SafeTensorsWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    specs: Vec<TensorSpec>,
    next: usize,
}

impl SafeTensorsWriter {
    /// Start writing `specs` (in this order) to `path`, with optional `__metadata__`.
    pub fn create(path: &Path, specs: &[TensorSpec], metadata: BTreeMap<String, String>) -> Result<Self> {
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert("__metadata__".into(), serde_json::to_value(&metadata).unwrap_or_default());
        }
        let mut offset = 0usize;
        for s in specs {
            let end = offset.checked_add(s.nbytes()).filter(|_| s.nbytes() != usize::MAX).ok_or_else(|| {
                TensorError::Write {
                    path: path.into(),
                    reason: format!("tensor `{}`: shape {:?} is too large", s.name, s.shape),
                }
            })?;
            header.insert(
                s.name.clone(),
                serde_json::json!({
                    "dtype": s.dtype.safetensors_name(),
                    "shape": s.shape,
                    "data_offsets": [offset, end],
                }),
            );
            offset = end;
        }
        let mut json = serde_json::to_vec(&serde_json::Value::Object(header))
            .map_err(|e| TensorError::Write { path: path.into(), reason: e.to_string() })?;
        // Pad the header with spaces (as the format allows) so the data starts 64-byte aligned:
        // mapped tensors then start on a cache line when their offsets are multiples of 64.
        while (8 + json.len()) % 64 != 0 {
            json.push(b' ');
        }
        let tmp = Self::temp_path(path);
        let file = File::create(&tmp).map_err(|e| TensorError::io(&tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let io = |e| TensorError::io(&tmp, e);
        out.write_all(&(json.len() as u64).to_le_bytes()).map_err(io)?;
        out.write_all(&json).map_err(io)?;
        Ok(Self { path: path.to_path_buf(), tmp: tmp.clone(), out: Some(out), specs: specs.to_vec(), next: 0 })
    }

    /// The temporary file this process writes `path` into before renaming it
    /// (`.NAME.PID.tmp` next to it): for a signal handler that must remove it.
    pub fn temp_path(path: &Path) -> PathBuf {
        let file_name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()))
    }

    /// The specs still to be written, in order.
    pub fn remaining(&self) -> &[TensorSpec] {
        &self.specs[self.next..]
    }

    /// Write the next tensor's bytes (little-endian). `name` must be the next spec's name and
    /// `bytes` may be given in several calls via [`SafeTensorsWriter::write_part`].
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let want = self.expect(name)?.nbytes();
        if bytes.len() != want {
            return Err(self.fail(format!("tensor `{name}`: {} bytes given, {want} declared", bytes.len())));
        }
        self.write_raw(bytes)?;
        self.next += 1;
        Ok(())
    }

    /// Write the next tensor from a sequence of byte chunks (for tensors produced piecewise).
    pub fn write_part<I, B>(&mut self, name: &str, parts: I) -> Result<()>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let want = self.expect(name)?.nbytes();
        let mut got = 0;
        for p in parts {
            got += p.as_ref().len();
            if got > want {
                break;
            }
            self.write_raw(p.as_ref())?;
        }
        if got != want {
            return Err(self.fail(format!("tensor `{name}`: {got} bytes given, {want} declared")));
        }
        self.next += 1;
        Ok(())
    }

    fn expect(&self, name: &str) -> Result<&TensorSpec> {
        match self.specs.get(self.next) {
            Some(s) if s.name == name => Ok(s),
            Some(s) => Err(self.fail(format!("expected tensor `{}` next, got `{name}`", s.name))),
            None => Err(self.fail(format!("tensor `{name}` was not declared"))),
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp.clone();
        match self.out.as_mut() {
            Some(out) => out.write_all(bytes).map_err(|e| TensorError::io(tmp, e)),
            None => Err(self.fail("writer already finished".into())),
        }
    }

    fn fail(&self, reason: String) -> TensorError {
        TensorError::Write { path: self.path.clone(), reason }
    }

    /// Flush, sync and atomically rename into place. Fails if a declared tensor is missing.
    pub fn finish(mut self) -> Result<()> {
        if let Some(s) = self.specs.get(self.next) {
            return Err(self.fail(format!("tensor `{}` was declared but not written", s.name)));
        }
        let tmp = self.tmp.clone();
        if let Some(out) = self.out.take() {
            let file = out.into_inner().map_err(|e| TensorError::io(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| TensorError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| TensorError::io(&self.path, e))?;
        Ok(())
    }
}

impl Drop for SafeTensorsWriter {
    /// An unfinished writer removes its temporary file: no half-written file is left behind.
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
