//! Batch assembly speed: NTU-style batches of 64 (synthetic clips of ~100 frames, 2 persons,
//! crop/resize + rotation + bone) and NW-UCLA batches of 16 (the bundled set, training feeder).
//! Prints milliseconds per batch for one thread and for all cores, and the time to read the
//! bundled NW-UCLA archive.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfhead::data::batch::{Batcher, EpochPlan};
use sfhead::data::feed::{Feeder, NtuFeeder, Stream, UclaFeeder};
use sfhead::data::ucla::UclaSplits;
use sfhead::data::{ClipSet, InMemoryClips, Sequence};
use std::sync::Arc;
use std::time::Instant;

fn ntu_like_clips(n: usize) -> InMemoryClips {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut set = InMemoryClips::new();
    for i in 0..n {
        let frames = rng.random_range(80..=120);
        let data = (0..frames * 150)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        set.push(
            format!("clip{i}"),
            (i % 60) as u32,
            Sequence::new(frames, 2, 25, data),
        );
    }
    set
}

/// Mean milliseconds per batch over whole epochs (after one warm-up epoch).
fn ms_per_batch(
    set: Arc<dyn ClipSet>,
    feeder: Arc<dyn Feeder>,
    threads: usize,
    batch: usize,
) -> f64 {
    let batcher = Batcher::new(set, feeder, threads, 4).expect("thread pool");
    let mut epoch = 0;
    let mut run = || {
        let start = Instant::now();
        let mut count = 0;
        for batch in batcher.epoch(EpochPlan::train(batch, 1, epoch)) {
            std::hint::black_box(batch.expect("feeds"));
            count += 1;
        }
        epoch += 1;
        (start.elapsed().as_secs_f64() * 1e3, count)
    };
    run();
    let (mut ms, mut batches) = (0.0, 0);
    for _ in 0..3 {
        let (t, n) = run();
        ms += t;
        batches += n;
    }
    ms / batches as f64
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ntu: Arc<dyn ClipSet> = Arc::new(ntu_like_clips(64 * 8));
    let ntu_feeder: Arc<dyn Feeder> = Arc::new(NtuFeeder::train(Stream::Bone, false));
    let start = Instant::now();
    let ucla: Arc<dyn ClipSet> = Arc::new(UclaSplits::open(None).expect("bundled NW-UCLA").train);
    let load = start.elapsed().as_secs_f64() * 1e3;
    let ucla_feeder: Arc<dyn Feeder> = Arc::new(UclaFeeder::new(true, Stream::Joint, false));
    println!("reading the bundled NW-UCLA archive (1,484 clips): {load:.0} ms");
    println!("batch assembly, ms per batch ({cores} cores available)");
    for threads in [1, cores] {
        let a = ms_per_batch(ntu.clone(), ntu_feeder.clone(), threads, 64);
        let b = ms_per_batch(ucla.clone(), ucla_feeder.clone(), threads, 16);
        println!(
            "  {threads:>2} thread(s): NTU-style 64 × (3, 64, 25, 2): {a:7.2} ms   NW-UCLA 16 × (3, 52, 20, 1): {b:7.2} ms"
        );
    }
}
