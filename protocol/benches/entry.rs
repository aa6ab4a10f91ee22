//! Criterion benchmarks: entry (placeholder until filled).
fn main() {}
