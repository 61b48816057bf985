//! The examples in `examples/` run on the tiny fixture model as part of `cargo test` (CI also
//! runs each with `cargo run --example`).

#[allow(dead_code)]
#[path = "../examples/generate.rs"]
mod generate;

#[allow(dead_code)]
#[path = "../examples/classify.rs"]
mod classify;

#[allow(dead_code)]
#[path = "../examples/custom_kernel.rs"]
mod custom_kernel;

#[allow(dead_code)]
#[path = "../examples/bench_kernel.rs"]
mod bench_kernel;

#[test]
fn generate_example() {
    generate::run(generate::TINY).unwrap();
}

#[test]
fn classify_example() {
    classify::run(classify::TINY).unwrap();
}

#[test]
fn custom_kernel_example() {
    custom_kernel::run(custom_kernel::TINY).unwrap();
}

#[test]
fn bench_kernel_example() {
    bench_kernel::run(true);
}
