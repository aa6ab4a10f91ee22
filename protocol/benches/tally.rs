//! Criterion benchmarks: tally (placeholder until filled).
fn main() {}
