//! Any bytes as a safetensors file: validation must reject what it cannot read, and every
//! tensor of a file it accepts must be readable without touching bytes outside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t0_tensor::SafeTensorsFile;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = SafeTensorsFile::from_bytes("fuzz.safetensors".as_ref(), data) else { return };
    let names: Vec<String> = f.names().map(str::to_string).collect();
    for name in &names {
        if let Ok((shape, dtype)) = f.info(name) {
            if let Ok(t) = f.tensor(name) {
                assert_eq!(t.shape(), &shape[..]);
                assert_eq!(t.dtype(), dtype);
                assert_eq!(t.bytes().len(), t.nbytes());
                let _ = t.to_f32_vec();
            }
        }
    }
});
