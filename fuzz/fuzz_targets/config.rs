//! Any text as config.json: a typed error or a config whose derived sizes do not overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t0_model::{memory, PackDType, T5Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = T5Config::from_json_str(text, "config.json".as_ref()) else { return };
    let _ = c.inner_dim();
    let _ = c.num_parameters();
    for dt in [None, Some(PackDType::F32), Some(PackDType::Bf16), Some(PackDType::Int8)] {
        let e = memory::estimate(&c, dt, u64::MAX);
        let mem = memory::MemInfo { total: 1 << 34, available: 1 << 33 };
        let _ = memory::check(&e, &mem, "m".as_ref());
    }
    let _ = t0_model::random_init::weights_bytes(&c, t0_tensor::DType::BF16);
});
