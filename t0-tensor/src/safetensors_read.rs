//! Reading safetensors files through a memory map, validated before any tensor byte is read.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use serde_json::Value;

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
/// ```
/// # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap(); // the repository root
/// let f = t0_tensor::SafeTensorsFile::open("tests/fixtures/models/t0-tiny/model.safetensors".as_ref())?;
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

/// Headers larger than this are refused (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// Element size of every dtype name the safetensors format defines; `None` for names it
/// does not define.
fn format_dtype_size(name: &str) -> Option<usize> {
    Some(match name {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

impl SafeTensorsFile {
    /// Map and validate `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| TensorError::io(path, e))?;
        let meta = file.metadata().map_err(|e| TensorError::io(path, e))?;
        if meta.is_dir() {
            return Err(TensorError::invalid(path, "it is a directory"));
        }
        let len = meta.len();
        if len < 8 {
            return Err(TensorError::invalid(
                path,
                format!("file is {len} bytes, shorter than the 8-byte header length"),
            ));
        }
        // SAFETY: the map is read-only; `validate` checks every range against the map's length
        // before any of it is read. (Another process truncating the file while we run is
        // outside our control.)
        let map = unsafe { Mmap::map(&file) }.map_err(|e| TensorError::io(path, e))?;
        Self::from_map(path, map)
    }

    /// Validate an in-memory copy of a safetensors file (`name` is used in error messages).
    /// The bytes are copied into an anonymous map, so tensors are views as with
    /// [`SafeTensorsFile::open`].
    ///
    /// ```
    /// let err = t0_tensor::SafeTensorsFile::from_bytes("x.safetensors".as_ref(), b"\x09\0\0\0\0\0\0\0{}").unwrap_err();
    /// assert!(err.to_string().contains("x.safetensors"), "{err}");
    /// ```
    pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 8 {
            return Err(TensorError::invalid(
                name,
                format!("file is {} bytes, shorter than the 8-byte header length", bytes.len()),
            ));
        }
        let mut anon = memmap2::MmapMut::map_anon(bytes.len()).map_err(|e| TensorError::io(name, e))?;
        anon.copy_from_slice(bytes);
        let map = anon.make_read_only().map_err(|e| TensorError::io(name, e))?;
        Self::from_map(name, map)
    }

    fn from_map(path: &Path, map: Mmap) -> Result<Self> {
        let (entries, metadata) = validate(path, &map)?;
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

type Parsed = (HashMap<String, Entry>, HashMap<String, String>);

/// Check the whole layout of a safetensors file held in `bytes`: the header length, that the
/// header is a JSON object of the format's schema, every tensor's dtype, shape and byte range
/// (inside the file, exactly the shape's size, no overlaps). Nothing past the header is read.
fn validate(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let bad = |reason: String| TensorError::invalid(path, reason);
    let len = bytes.len() as u64;
    let mut head = [0u8; 8];
    head.copy_from_slice(
        bytes.get(..8).ok_or_else(|| bad(format!("file is {len} bytes, shorter than the 8-byte header length")))?,
    );
    let header_len = u64::from_le_bytes(head);
    if header_len > len - 8 {
        return Err(bad(format!("header length {header_len} runs past the end of the {len}-byte file")));
    }
    if header_len > MAX_HEADER {
        return Err(bad(format!("header length {header_len} is larger than the format's limit of 100 MB")));
    }
    let data_start = 8 + header_len as usize;
    let header =
        std::str::from_utf8(&bytes[8..data_start]).map_err(|e| bad(format!("the header is not valid UTF-8 ({e})")))?;
    if !header.trim_start().starts_with('{') {
        return Err(bad("the header is not a JSON object (it does not start with `{`)".into()));
    }
    let header: serde_json::Map<String, Value> =
        serde_json::from_str(header).map_err(|e| bad(format!("the header is not valid JSON: {e}")))?;
    let mut entries = HashMap::new();
    let mut metadata = HashMap::new();
    let mut ranges = Vec::new();
    for (name, info) in &header {
        if name == "__metadata__" {
            let Value::Object(m) = info else {
                return Err(bad(format!("`__metadata__` is {}, not an object of strings", kind(info))));
            };
            for (k, v) in m {
                let Value::String(v) = v else {
                    return Err(bad(format!("`__metadata__.{k}` is {}, not a string", kind(v))));
                };
                metadata.insert(k.clone(), v.clone());
            }
            continue;
        }
        let field = |f: &str| info.get(f).ok_or_else(|| bad(format!("tensor `{name}` has no `{f}`")));
        let dt = match field("dtype")? {
            Value::String(s) => s.clone(),
            v => return Err(bad(format!("tensor `{name}`: `dtype` is {}, not a string", kind(v)))),
        };
        let size = format_dtype_size(&dt).ok_or_else(|| bad(format!("tensor `{name}` has unknown dtype {dt:?}")))?;
        let shape =
            usizes(field("shape")?).ok_or_else(|| bad(format!("tensor `{name}`: `shape` is not a list of sizes")))?;
        let offsets = usizes(field("data_offsets")?)
            .filter(|o| o.len() == 2)
            .ok_or_else(|| bad(format!("tensor `{name}`: `data_offsets` is not a pair [begin, end]")))?;
        let (s, e) = (offsets[0], offsets[1]);
        let nbytes = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| bad(format!("tensor `{name}`: shape {shape:?} is too large")))?;
        if s > e {
            return Err(bad(format!("tensor `{name}` has offsets {s}..{e}, which end before they begin")));
        }
        if e - s != nbytes {
            return Err(bad(format!(
                "tensor `{name}` has offsets {s}..{e} ({} bytes), but shape {shape:?} of {dt} needs {nbytes} bytes",
                e - s
            )));
        }
        let end = data_start.checked_add(e).filter(|&end| end as u64 <= len).ok_or_else(|| {
            bad(format!(
                "the file is truncated: tensor `{name}` needs bytes {s}..{e} of the data, but the file ends {} bytes into it",
                len - data_start as u64
            ))
        })?;
        let start = data_start + s;
        ranges.push((start, end, name.clone()));
        let dtype = DType::from_safetensors_name(&dt).ok_or(dt);
        entries.insert(name.clone(), Entry { dtype, shape, start, end });
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad(format!("tensors `{}` and `{}` overlap", w[0].2, w[1].2)));
        }
    }
    Ok((entries, metadata))
}

/// A JSON list of non-negative integers that fit in `usize`.
fn usizes(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?.iter().map(|x| x.as_u64().and_then(|n| usize::try_from(n).ok())).collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with the given header JSON followed by `data`.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn err(bytes: &[u8]) -> String {
        SafeTensorsFile::from_bytes("t.safetensors".as_ref(), bytes).unwrap_err().to_string()
    }

    #[test]
    fn a_good_file_reads_back() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let f = SafeTensorsFile::from_bytes("t".as_ref(), &file(h, &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap();
        assert_eq!(f.tensor("a").unwrap().to_f32_vec(), [1.0, 2.0]);
        assert_eq!(f.metadata()["format"], "pt");
    }

    #[test]
    fn every_bad_layout_is_an_error_naming_the_file() {
        let t = |shape: &str, offsets: &str| {
            format!(r#"{{"a":{{"dtype":"F32","shape":{shape},"data_offsets":{offsets}}}}}"#)
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"abc".to_vec(), "shorter than the 8-byte header"),
            (file("{}", b"").iter().take(9).copied().collect(), "header length 2 runs past"),
            (
                {
                    let mut f = file("{}", b"");
                    f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                    f
                },
                "runs past",
            ),
            (file("[1]", b""), "not a JSON object"),
            (file("{\"a\":", b""), "not valid JSON"),
            (file("\u{ff}\u{fe}", b""), "not a JSON object"),
            (file(&t("[2]", "[0,8]"), &[0; 4]), "truncated"),
            (file(&t("[2]", "[0,12]"), &[0; 12]), "needs 8 bytes"),
            (file(&t("[2]", "[8,0]"), &[0; 8]), "end before they begin"),
            (file(&t("[2]", "[0]"), &[0; 8]), "not a pair"),
            (file(&t("[-2]", "[0,8]"), &[0; 8]), "`shape` is not a list"),
            (file(&t("[4611686018427387904, 8]", "[0,8]"), &[0; 8]), "too large"),
            // An end offset near 2^64: must not overflow.
            (
                file(
                    r#"{"a":{"dtype":"U8","shape":[18446744073709551000],"data_offsets":[0,18446744073709551000]}}"#,
                    &[],
                ),
                "truncated",
            ),
            (file(r#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, &[0]), "unknown dtype \"Q4\""),
            (file(r#"{"a":{"shape":[1],"data_offsets":[0,1]}}"#, &[0]), "has no `dtype`"),
            (file(r#"{"a":7}"#, &[0]), "has no `dtype`"),
            (file(r#"{"__metadata__":{"x":1}}"#, &[]), "not a string"),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    &[0; 12],
                ),
                "overlap",
            ),
        ];
        for (bytes, needle) in cases {
            let e = err(&bytes);
            assert!(e.starts_with("t.safetensors: not a valid safetensors file"), "{e}");
            assert!(e.contains(needle), "{e:?} does not contain {needle:?}");
        }
    }

    #[test]
    fn unsupported_dtypes_fail_on_access_only() {
        let h = r#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
        let f = SafeTensorsFile::from_bytes("t".as_ref(), &file(h, &[0; 12])).unwrap();
        assert!(f.tensor("b").is_ok());
        let e = f.tensor("a").unwrap_err().to_string();
        assert!(e.contains("dtype I64"), "{e}");
        assert!(f.tensor("c").unwrap_err().to_string().contains("no tensor named `c`"));
    }

    #[test]
    fn a_short_file_on_disk_is_an_error_not_a_fault() {
        let dir = std::env::temp_dir().join(format!("t0-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("short.safetensors");
        let h = r#"{"a":{"dtype":"F32","shape":[1024],"data_offsets":[0,4096]}}"#;
        std::fs::write(&p, file(h, &[0; 100])).unwrap();
        let e = SafeTensorsFile::open(&p).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("short.safetensors"), "{e}");
        let e = SafeTensorsFile::open(&dir).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
