//! The batcher: assembles `(N, C, T, V, M)` batches on a thread pool, one epoch at a time, ahead
//! of the consumer through a bounded channel.

use super::ClipSet;
use super::feed::{Feeder, SampleKey, shuffle_rng};
use rand::seq::SliceRandom;
use rayon::prelude::*;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// Which samples an epoch visits, in which order, and in which batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochPlan {
    pub batch_size: usize,
    /// A seeded shuffle of the epoch (training) or the set's own order (testing).
    pub shuffle: bool,
    /// Drop the last batch if it is short (training).
    pub drop_last: bool,
    /// Passes over the set per epoch (CTR-GCN trains NW-UCLA with 5).
    pub repeat: usize,
    pub seed: u64,
    pub epoch: u64,
}

impl EpochPlan {
    /// Training: shuffled, last short batch dropped, one pass.
    pub fn train(batch_size: usize, seed: u64, epoch: u64) -> Self {
        Self {
            batch_size,
            shuffle: true,
            drop_last: true,
            repeat: 1,
            seed,
            epoch,
        }
    }

    /// Testing: the set's order, every sample once.
    pub fn test(batch_size: usize) -> Self {
        Self {
            shuffle: false,
            drop_last: false,
            ..Self::train(batch_size, 0, 0)
        }
    }

    pub fn with_repeat(self, repeat: usize) -> Self {
        Self { repeat, ..self }
    }

    /// The epoch's positions in visiting order. Position `p` stands for clip `p % len` and is
    /// the sample index of its augmentation key, so each repeat of a clip draws afresh.
    pub fn order(&self, len: usize) -> Vec<usize> {
        let mut positions: Vec<usize> = (0..len * self.repeat).collect();
        if self.shuffle {
            positions.shuffle(&mut shuffle_rng(self.seed, self.epoch));
        }
        positions
    }

    /// The number of batches of an epoch over `len` clips.
    pub fn batches(&self, len: usize) -> usize {
        let samples = len * self.repeat;
        match self.batch_size {
            0 => 0,
            n if self.drop_last => samples / n,
            n => samples.div_ceil(n),
        }
    }
}

/// One batch: `x` is `(N, C, T, V, M)` row-major f32, N the samples times the feeder's clips per
/// sample (one but for a multi-clip test, whose clips of a sample are consecutive rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub x: Vec<f32>,
    /// `[N, C, T, V, M]`.
    pub shape: [usize; 5],
    pub labels: Vec<u32>,
    /// The clip index of each sample in the set (to name saved scores).
    pub clips: Vec<usize>,
}

/// A clip the feeder refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedError {
    pub clip: usize,
    pub name: String,
    pub message: String,
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "clip {} ({}): {}", self.clip, self.name, self.message)
    }
}

impl std::error::Error for FeedError {}

/// Feeds the clips of one set through one feeder on a private thread pool.
pub struct Batcher {
    set: Arc<dyn ClipSet>,
    feeder: Arc<dyn Feeder>,
    pool: Arc<rayon::ThreadPool>,
    prefetch: usize,
}

impl Batcher {
    /// `threads` = 0 uses one per core; `prefetch` is how many finished batches may wait for
    /// the consumer.
    pub fn new(
        set: Arc<dyn ClipSet>,
        feeder: Arc<dyn Feeder>,
        threads: usize,
        prefetch: usize,
    ) -> Result<Self, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("batcher-{i}"))
            .build()?;
        Ok(Self {
            set,
            feeder,
            pool: Arc::new(pool),
            prefetch,
        })
    }

    /// The clips this batcher feeds.
    pub fn set(&self) -> &Arc<dyn ClipSet> {
        &self.set
    }

    /// Starts assembling the batches of one epoch; they arrive in plan order. After an error
    /// the stream ends.
    pub fn epoch(&self, plan: EpochPlan) -> Batches {
        let len = self.set.len();
        let count = plan.batches(len);
        let (tx, rx) = sync_channel(self.prefetch);
        let (set, feeder, pool) = (self.set.clone(), self.feeder.clone(), self.pool.clone());
        let worker = std::thread::spawn(move || {
            let order = plan.order(len);
            for positions in order.chunks(plan.batch_size.max(1)).take(count) {
                let batch = pool.install(|| assemble(&*set, &*feeder, &plan, positions));
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        Batches {
            rx: Some(rx),
            worker: Some(worker),
            remaining: count,
        }
    }
}

/// Feeds the samples at `positions` into one batch, in parallel on the current pool.
fn assemble(
    set: &dyn ClipSet,
    feeder: &dyn Feeder,
    plan: &EpochPlan,
    positions: &[usize],
) -> Result<Batch, FeedError> {
    let shape = feeder.shape();
    // A sample is all its clips, one after the other: rows sample·clips + j of the batch.
    let per_sample = feeder.clips();
    let sample = shape.len() * per_sample;
    let clips: Vec<usize> = positions.iter().map(|p| p % set.len()).collect();
    let mut x = vec![0.0f32; positions.len() * sample];
    x.par_chunks_mut(sample.max(1))
        .zip(positions.par_iter().zip(&clips))
        .try_for_each(|(out, (&position, &clip))| {
            let key = SampleKey::new(plan.seed, plan.epoch, position);
            feeder
                .feed_clips(&set.clip(clip), key, out)
                .map_err(|message| FeedError {
                    clip,
                    name: set.name(clip).to_string(),
                    message,
                })
        })?;
    Ok(Batch {
        x,
        shape: [
            positions.len() * per_sample,
            shape.channels,
            shape.frames,
            shape.joints,
            shape.persons,
        ],
        labels: clips.iter().map(|&i| set.label(i)).collect(),
        clips,
    })
}

/// The batches of one epoch, in order. Dropping it early stops the assembly.
pub struct Batches {
    rx: Option<Receiver<Result<Batch, FeedError>>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Iterator for Batches {
    type Item = Result<Batch, FeedError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.rx.as_ref()?.recv().ok();
        match &item {
            Some(Ok(_)) => self.remaining = self.remaining.saturating_sub(1),
            Some(Err(_)) => self.remaining = 0,
            None => {
                self.remaining = 0;
                // The worker is gone: either the epoch is complete or a clip set panicked,
                // and a panic belongs to the consumer rather than to a silently short epoch.
                if let Some(Err(panic)) = self.worker.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
            }
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channel first makes a blocked `send` fail, so the worker ends.
        self.rx.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
