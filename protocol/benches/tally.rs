//! Criterion benchmarks: incremental tally updates and queries at one million
//! live pledges (SPEC R-TALLY-4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pledge_protocol::tally::{MAX_THRESHOLD, Tally, TallySnapshot, recompute_active};
use std::hint::black_box;

const LIVE: u32 = 1_000_000;

/// xorshift64*: deterministic thresholds without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn threshold(&mut self, t_max: u32) -> u32 {
        1 + (self.next() % u64::from(t_max)) as u32
    }

    /// `t_max · u³` for uniform `u`: most pledges ask for small groups. With
    /// 1M pledges over 1..=10^8 the active count lands near 10^5, inside the
    /// domain, so `active()` descends the whole tree.
    fn skewed(&mut self, t_max: u32) -> u32 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u * f64::from(t_max)) as u32).clamp(1, t_max)
    }

    fn draw(&mut self, shape: Shape, t_max: u32) -> u32 {
        match shape {
            Shape::Uniform => self.threshold(t_max),
            Shape::Skewed => self.skewed(t_max),
            // People pick round numbers: 1,000 distinct thresholds in all.
            Shape::Round => (self.skewed(1000) * (t_max / 1000)).max(1),
        }
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Uniform,
    Skewed,
    Round,
}

/// One million pledges over `1..=t_max`.
fn filled(t_max: u32, shape: Shape) -> Tally {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tally = Tally::new(t_max).unwrap();
    for _ in 0..LIVE {
        tally.add(rng.draw(shape, t_max)).unwrap();
    }
    tally
}

fn bench(c: &mut Criterion) {
    for (label, t_max, shape) in [
        ("1e6-uniform", 1_000_000u32, Shape::Uniform),
        ("1e8-uniform", MAX_THRESHOLD, Shape::Uniform),
        ("1e8-skewed", MAX_THRESHOLD, Shape::Skewed),
        ("1e8-round", MAX_THRESHOLD, Shape::Round),
    ] {
        let mut tally = filled(t_max, shape);
        eprintln!(
            "{label}: live {} distinct {} active {} next {:?} index {} MiB",
            tally.live(),
            tally.distinct(),
            tally.active(),
            tally.next_activation(),
            tally.heap_bytes() >> 20
        );
        let mut rng = Rng(42);
        c.bench_function(&format!("tally/{label}/add+remove at 1M live"), |b| {
            b.iter(|| {
                let t = rng.draw(shape, t_max);
                tally.add(black_box(t)).unwrap();
                tally.remove(black_box(t)).unwrap();
            });
        });
        c.bench_function(&format!("tally/{label}/amend at 1M live"), |b| {
            // Move a pledge away from a live threshold and back.
            let live: Vec<u32> = tally.histogram().map(|(t, _)| t).take(4096).collect();
            let mut i = 0usize;
            b.iter(|| {
                let old = live[i % live.len()];
                let new = rng.draw(shape, t_max);
                tally.amend(old, new).unwrap();
                tally.amend(new, old).unwrap();
                i += 1;
            });
        });
        c.bench_function(&format!("tally/{label}/active at 1M live"), |b| {
            b.iter(|| black_box(&tally).active());
        });
        c.bench_function(&format!("tally/{label}/next_activation at 1M live"), |b| {
            b.iter(|| black_box(&tally).next_activation());
        });
    }

    let mut group = c.benchmark_group("tally/1e6/whole");
    group.sample_size(10);
    group.bench_function("build 1M pledges by add", |b| {
        b.iter(|| filled(1_000_000, Shape::Uniform).live());
    });
    let tally = filled(1_000_000, Shape::Uniform);
    group.bench_function("snapshot (histogram walk)", |b| {
        b.iter(|| tally.snapshot().unwrap().live());
    });
    let snap = tally.snapshot().unwrap();
    group.bench_function("recompute_active from scratch", |b| {
        b.iter(|| recompute_active(black_box(snap.buckets())));
    });
    let bytes = snap.to_bytes();
    group.bench_function("decode final tally", |b| {
        b.iter_batched(
            || bytes.clone(),
            |bytes| TallySnapshot::from_bytes(&bytes).unwrap().active(),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
