//! A decode step allocates nothing once warm: `T5Model::decode_step` on a state whose caches
//! were reserved, counted by a global allocator, for every load dtype, one and several rows.
//!
//! The model is big enough that every matmul splits across the thread pool (d_model 256,
//! gated-GELU d_ff 640, 4 heads, vocab 1000). The counted steps run on a pool thread, as the
//! kernels' own parallel calls do: called from outside the pool, rayon's injector queue
//! allocates a block per 63 jobs, which is rayon's, not the model's. This file holds one test so
//! that nothing else allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use t0_model::random_init::write_random_model;
use t0_model::{LoadOptions, PackDType, T5Config, T5Model};
use t0_tensor::DType;

/// Counts allocations (on every thread) while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONFIG: &str = r#"{"vocab_size": 1000, "d_model": 256, "d_kv": 64, "d_ff": 640, "num_layers": 2,
  "num_decoder_layers": 2, "num_heads": 4, "feed_forward_proj": "gated-gelu",
  "tie_word_embeddings": false, "model_type": "t5"}"#;

/// Allocations made by `f` (on any thread).
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}

#[test]
fn warm_decode_steps_allocate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let config = T5Config::from_json_str(CONFIG, "config.json".as_ref()).unwrap();
    write_random_model(&config, CONFIG, &dir, 5, DType::F32, |_, _, _| {}).unwrap();
    let input: Vec<u32> = (0..40).map(|i| (i * 37 % 990 + 3) as u32).collect();

    // The counter must see allocations at all.
    assert!(allocations(|| drop(std::hint::black_box(vec![0u8; 64]))) > 0);

    for dtype in [None, Some(PackDType::F32), Some(PackDType::Bf16), Some(PackDType::Int8)] {
        let model = T5Model::load(&dir, LoadOptions { dtype, ..LoadOptions::default() }).unwrap();
        for rows in [1usize, 3] {
            let inputs: Vec<&[u32]> = (0..rows).map(|r| &input[r..]).collect();
            // Warm every pool thread's kernel scratch with full-size encoder passes.
            let mut enc = model.encode(&inputs).unwrap();
            for _ in 0..3 {
                enc = model.encode(&inputs).unwrap();
            }
            let mut state = model.decoder_state(model.cross_cache(&enc), (0..rows).collect()).unwrap();
            state.reserve(32);
            let start = model.config().decoder_start_token_id;
            let mut next = vec![start; rows];
            let step = |state: &mut t0_model::DecoderState, next: &mut Vec<u32>| {
                let logits = model.decode_step(state, next, 1).unwrap();
                for (r, tok) in next.iter_mut().enumerate() {
                    let row = &logits[r * 1000..(r + 1) * 1000];
                    *tok = (0..1000).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0) as u32;
                }
            };
            rayon::scope(|_| {
                for _ in 0..3 {
                    step(&mut state, &mut next);
                }
                let n = allocations(|| {
                    for _ in 0..10 {
                        step(&mut state, &mut next);
                    }
                });
                assert_eq!(n, 0, "{dtype:?}, {rows} rows: 10 warm decode steps made {n} allocations");
            });
            assert_eq!(state.lens(), vec![13; rows].as_slice());
        }
    }
}
