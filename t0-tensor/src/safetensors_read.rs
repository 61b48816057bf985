//! Reading safetensors files through a memory map, validated before any tensor byte is read.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::SafeTensors;

use crate::{DType, Result, Tensor, TensorError};

#[derive(Clone, Debug)]
struct Entry {
    dtype: Result<DType, String>,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A memory-mapped safetensors file. Opening it validates the whole layout (header length and
/// JSON, dtypes, that every tensor's byte range matches its shape and lies inside the file, and
/// that ranges do not overlap), so reading a tensor never touches bytes past the end of the
/// file.
///
/// ```no_run
/// let f = t0_tensor::SafeTensorsFile::open("model.safetensors".as_ref())?;
/// let shared = f.tensor("shared.weight")?;
/// println!("{:?} {}", shared.shape(), shared.dtype());
/// # Ok::<(), t0_tensor::TensorError>(())
/// ```
#[derive(Debug)]
pub struct SafeTensorsFile {
    path: PathBuf,
    map: Arc<Mmap>,
    entries: HashMap<String, Entry>,
    metadata: HashMap<String, String>,
}

impl SafeTensorsFile {
    /// Map and validate `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| TensorError::io(path, e))?;
        let len = file.metadata().map_err(|e| TensorError::io(path, e))?.len();
        if len < 8 {
            return Err(TensorError::invalid(
                path,
                format!("file is {len} bytes, shorter than the 8-byte header length"),
            ));
        }
        // SAFETY: the map is read-only; we validate every range against the map's length before
        // reading it. (Another process truncating the file while we run is outside our control.)
        let map = unsafe { Mmap::map(&file) }.map_err(|e| TensorError::io(path, e))?;
        let header_len = u64::from_le_bytes(map[..8].try_into().unwrap_or([0; 8]));
        if header_len > len - 8 {
            return Err(TensorError::invalid(
                path,
                format!("header length {header_len} runs past the end of the {len}-byte file"),
            ));
        }
        let (n, meta) = SafeTensors::read_metadata(&map).map_err(|e| TensorError::invalid(path, describe(e)))?;
        let data_start = 8 + n;
        let mut entries = HashMap::new();
        let mut ranges = Vec::new();
        for (name, info) in meta.tensors() {
            let dt = format!("{:?}", info.dtype);
            let dtype = DType::from_safetensors_name(&dt).ok_or(dt);
            let (s, e) = info.data_offsets;
            let (start, end) = (data_start + s, data_start + e);
            if start > end || end as u64 > len {
                return Err(TensorError::invalid(
                    path,
                    format!("tensor `{name}` has offsets {s}..{e} outside the file"),
                ));
            }
            ranges.push((start, end, name.clone()));
            entries.insert(name, Entry { dtype, shape: info.shape.clone(), start, end });
        }
        ranges.sort();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(TensorError::invalid(path, format!("tensors `{}` and `{}` overlap", w[0].2, w[1].2)));
            }
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(Self { path: path.to_path_buf(), map: Arc::new(map), entries, metadata })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of all tensors (unordered).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// True when the file holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The `__metadata__` map of the header.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Shape and dtype of `name` without touching its data.
    pub fn info(&self, name: &str) -> Result<(Vec<usize>, DType)> {
        let e = self.entry(name)?;
        Ok((e.shape.clone(), self.dtype_of(name, e)?))
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries
            .get(name)
            .ok_or_else(|| TensorError::MissingTensor { path: self.path.clone(), name: name.to_string() })
    }

    fn dtype_of(&self, name: &str, e: &Entry) -> Result<DType> {
        e.dtype.clone().map_err(|dtype| TensorError::UnsupportedDType {
            path: self.path.clone(),
            name: name.to_string(),
            dtype,
        })
    }

    /// The tensor `name`, a zero-copy view into the map.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let e = self.entry(name)?;
        let dtype = self.dtype_of(name, e)?;
        Tensor::from_mapped(e.shape.clone(), dtype, self.map.clone(), e.start..e.end)
            .map_err(|err| TensorError::invalid(&self.path, format!("tensor `{name}`: {err}")))
    }

    /// Tell the OS that the pages of `name` will not be needed again (they are dropped from
    /// this process's resident set; reading them again re-faults them from the file).
    pub fn release(&self, name: &str) {
        if let Ok(e) = self.entry(name) {
            let page = 4096;
            let start = e.start.div_ceil(page) * page;
            let end = e.end / page * page;
            #[cfg(unix)]
            if end > start {
                // SAFETY: the map is a read-only, file-backed mapping: MADV_DONTNEED only drops
                // the resident pages, and a later read faults the same bytes back in from the
                // file. Failure is harmless (the pages simply stay resident).
                let _ =
                    unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
    }
}

fn describe(e: safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::InvalidHeader => "the header is not valid UTF-8".into(),
        E::InvalidHeaderStart => "the header does not start with `{`".into(),
        E::InvalidHeaderDeserialization => "the header is not valid JSON of the safetensors schema".into(),
        E::HeaderTooLarge => "the header is larger than 100 MB".into(),
        E::HeaderTooSmall => "the file is too short to hold a header".into(),
        E::InvalidHeaderLength => "the header length runs past the end of the file".into(),
        E::TensorInvalidInfo => "a tensor's byte range does not match its shape and dtype".into(),
        E::InvalidOffset(name) => format!("tensor `{name}` has offsets that are out of order or past the data"),
        E::MetadataIncompleteBuffer => "the file is truncated: the data is shorter than the header says".into(),
        E::ValidationOverflow => "a tensor's size overflows".into(),
        other => other.to_string(),
    }
}
