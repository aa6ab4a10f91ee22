//! Criterion benchmarks: token (placeholder until filled).
fn main() {}
