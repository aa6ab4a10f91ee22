//! Criterion benchmarks: merkle (placeholder until filled).
fn main() {}
