//! The threaded batcher: order, drop_last, repeat, determinism across thread counts, running
//! ahead through a bounded channel, errors.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfhead::data::batch::{Batch, Batcher, EpochPlan};
use sfhead::data::feed::{Feeder, NtuFeeder, SampleKey, Stream};
use sfhead::data::{ClipSet, InMemoryClips, Sequence};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `n` random NTU-style clips of 40–139 frames, labels `i % 7`.
fn clips(n: usize) -> InMemoryClips {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut set = InMemoryClips::new();
    for i in 0..n {
        let frames = rng.random_range(40..140);
        let data = (0..frames * 150)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        set.push(
            format!("clip{i:03}"),
            (i % 7) as u32,
            Sequence::new(frames, 2, 25, data),
        );
    }
    set
}

fn collect(batcher: &Batcher, plan: EpochPlan) -> Vec<Batch> {
    batcher.epoch(plan).map(Result::unwrap).collect()
}

fn batcher(set: InMemoryClips, feeder: NtuFeeder, threads: usize) -> Batcher {
    Batcher::new(Arc::new(set), Arc::new(feeder), threads, 2).unwrap()
}

#[test]
fn test_epochs_keep_the_set_order_and_the_short_last_batch() {
    let set = clips(21);
    let feeder = NtuFeeder::test(Stream::Joint, false);
    let batches = collect(&batcher(set.clone(), feeder.clone(), 2), EpochPlan::test(8));
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].shape, [5, 3, 64, 25, 2]);
    let clips: Vec<usize> = batches.iter().flat_map(|b| b.clips.clone()).collect();
    assert_eq!(clips, (0..21).collect::<Vec<_>>());
    let sample = feeder.shape().len();
    for b in &batches {
        for (k, &i) in b.clips.iter().enumerate() {
            assert_eq!(b.labels[k], set.label(i));
            let mut expected = vec![0.0; sample];
            feeder
                .feed(set.get(i), SampleKey::new(0, 0, i), &mut expected)
                .unwrap();
            assert_eq!(&b.x[k * sample..(k + 1) * sample], &expected[..]);
        }
    }
}

#[test]
fn train_epochs_shuffle_per_seed_and_epoch_and_drop_the_short_batch() {
    let b = batcher(clips(30), NtuFeeder::train(Stream::Joint, false), 2);
    let order = |seed, epoch| -> Vec<usize> {
        collect(&b, EpochPlan::train(8, seed, epoch))
            .iter()
            .flat_map(|b| b.clips.clone())
            .collect()
    };
    let first = order(1, 0);
    assert_eq!(first.len(), 24, "30 clips, batches of 8, drop_last");
    let mut seen = first.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 24, "no clip twice");
    assert_ne!(first, (0..24).collect::<Vec<_>>());
    assert_eq!(first, order(1, 0));
    assert_ne!(first, order(1, 1));
    assert_ne!(first, order(2, 0));
}

#[test]
fn repeat_visits_each_clip_that_many_times_with_fresh_augmentation() {
    let set = clips(10);
    let b = batcher(set, NtuFeeder::train(Stream::Joint, false), 2);
    let batches = collect(&b, EpochPlan::train(4, 3, 0).with_repeat(5));
    assert_eq!(batches.len(), 12, "50 samples in batches of 4, drop_last");
    let mut counts: HashMap<usize, Vec<&[f32]>> = HashMap::new();
    for batch in &batches {
        for (k, &clip) in batch.clips.iter().enumerate() {
            counts
                .entry(clip)
                .or_default()
                .push(&batch.x[k * 9600..(k + 1) * 9600]);
        }
    }
    assert!(counts.values().all(|v| v.len() <= 5));
    let (_, copies) = counts.iter().find(|(_, v)| v.len() >= 2).unwrap();
    assert_ne!(copies[0], copies[1], "each pass draws its own augmentation");
}

#[test]
fn batches_are_identical_for_any_thread_count() {
    let set = clips(40);
    let plan = EpochPlan::train(16, 9, 4).with_repeat(2);
    let runs: Vec<Vec<Batch>> = [1, 2, 5]
        .into_iter()
        .map(|threads| {
            collect(
                &batcher(set.clone(), NtuFeeder::train(Stream::Bone, true), threads),
                plan,
            )
        })
        .collect();
    assert_eq!(runs[0].len(), 5);
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
}

/// Counts the clips handed out, to watch how far the batcher runs ahead.
struct Counting {
    inner: InMemoryClips,
    served: AtomicUsize,
}

impl ClipSet for Counting {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn name(&self, index: usize) -> &str {
        self.inner.name(index)
    }
    fn label(&self, index: usize) -> u32 {
        self.inner.label(index)
    }
    fn clip(&self, index: usize) -> Sequence {
        self.served.fetch_add(1, Ordering::SeqCst);
        self.inner.clip(index)
    }
}

#[test]
fn runs_ahead_of_the_consumer_but_only_as_far_as_the_channel_allows() {
    let set = Arc::new(Counting {
        inner: clips(64),
        served: AtomicUsize::new(0),
    });
    let feeder = Arc::new(NtuFeeder::test(Stream::Joint, false));
    let prefetch = 2;
    let batcher = Batcher::new(set.clone(), feeder, 2, prefetch).unwrap();
    let mut batches = batcher.epoch(EpochPlan::test(4));
    // Untouched, the batcher fills the channel and assembles one more batch, then waits.
    let full = (prefetch + 1) * 4;
    let start = Instant::now();
    while set.served.load(Ordering::SeqCst) < full && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(set.served.load(Ordering::SeqCst), full);
    batches.next().unwrap().unwrap();
    let start = Instant::now();
    while set.served.load(Ordering::SeqCst) < full + 4 && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(set.served.load(Ordering::SeqCst), full + 4);
    drop(batches); // must not hang on the waiting worker
}

#[test]
fn a_refused_clip_ends_the_epoch_with_its_name() {
    let mut set = clips(6);
    set.push("odd_one", 0, Sequence::new(3, 1, 20, vec![1.0; 180]));
    let b = batcher(set, NtuFeeder::test(Stream::Joint, false), 2);
    let results: Vec<_> = b.epoch(EpochPlan::test(4)).collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    let e = results[1].as_ref().unwrap_err();
    assert_eq!((e.clip, e.name.as_str()), (6, "odd_one"));
    assert!(e.to_string().contains("25 joints"), "{e}");
}
