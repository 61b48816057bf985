//! `t0 random-init`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use t0_model::random_init::write_random_model;
use t0_model::T5Config;
use t0_tensor::DType;

/// Options of `t0 random-init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// HF config.json giving the shapes (e.g. bigscience/T0_3B's).
    #[arg(long)]
    config: PathBuf,
    /// Output model directory (created; files are written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generator (same seed, same bytes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Weight dtype: f32 or bf16 (layer norms stay f32).
    #[arg(long, default_value = "f32")]
    dtype: DType,
}

pub fn run(a: Args) -> Result<()> {
    let text = std::fs::read_to_string(&a.config).with_context(|| format!("reading {}", a.config.display()))?;
    let config = T5Config::from_json_str(&text, &a.config)?;
    let need = t0_model::random_init::weights_bytes(&config, a.dtype);
    if let Some(free) = free_bytes(&a.out) {
        if need > free {
            bail!("{}: the weights need {} but the disk has only {} free", a.out.display(), size(need), size(free));
        }
    }
    #[cfg(unix)]
    {
        let tmp = t0_tensor::SafeTensorsWriter::temp_path(&a.out.join("model.safetensors"));
        crate::cleanup_on_signal::install(&tmp, (!a.out.exists()).then_some(a.out.as_path()));
    }
    let bar = crate::ui::bar(0, "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}");
    write_random_model(&config, &text, &a.out, a.seed, a.dtype, |name, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    })?;
    bar.finish_and_clear();
    eprintln!("wrote {} ({} parameters, {})", a.out.display(), config.num_parameters(), a.dtype);
    Ok(())
}

/// Free bytes (for an unprivileged user) on the file system that will hold `path`: that of its
/// nearest existing ancestor. `None` where unknown.
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let abs = std::path::absolute(path).ok()?;
    let dir = abs.ancestors().find(|p| p.exists())?;
    statvfs_free(dir)
}

#[cfg(unix)]
fn statvfs_free(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right type; the struct is
    // read only when the call reports success.
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    // Pseudo file systems (/proc, /sys) report no blocks at all: creating the directory will
    // give the real error.
    if st.f_blocks == 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn size(bytes: u64) -> String {
    if bytes >= 100_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

#[cfg(not(unix))]
fn statvfs_free(_: &std::path::Path) -> Option<u64> {
    None
}
