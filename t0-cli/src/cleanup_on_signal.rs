//! Ctrl-C (or SIGTERM, SIGHUP) while a multi-GB file is written must not leave the temporary
//! file behind: the handler removes it (and the directory this run created for it, when empty),
//! then lets the signal end the process as usual. Used by `t0 random-init` and `t0 convert`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// The temporary weights file, and the output directory if this run creates it.
static PATHS: OnceLock<(CString, Option<CString>)> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here: unlink, rmdir, signal, raise.
    if let Some((tmp, dir)) = PATHS.get() {
        // SAFETY: NUL-terminated paths made before the handler was installed.
        unsafe {
            libc::unlink(tmp.as_ptr());
            if let Some(d) = dir {
                libc::rmdir(d.as_ptr());
            }
        }
    }
    // SAFETY: restore the default action and re-raise, so the exit status says which
    // signal ended the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: remove the file `tmp`, then the directory `dir` if given (it
/// goes only if empty by then), then die of the signal. Installed once per process.
pub fn install(tmp: &Path, dir: Option<&Path>) {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).ok();
    let Some(tmp) = c(tmp) else { return };
    let dir = dir.and_then(c);
    if PATHS.set((tmp, dir)).is_err() {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` only makes async-signal-safe calls.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}
