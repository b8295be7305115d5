//! What a person sees while a run trains: a progress bar per epoch (batch i/n, loss, learning
//! rate, samples/s, the epoch's and the run's ETA) and one for each evaluation, both on stderr
//! and drawn only when it is a terminal; and, on a software adapter, an early estimate of how
//! long an epoch and the run will take.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Steps timed before the time per epoch is estimated (after one warm-up step).
const ESTIMATE_AFTER: usize = 3;

pub struct RunProgress {
    software: Option<String>,
    epochs: usize,
    batch_size: usize,
    batches_per_epoch: usize,
    eval_batches: usize,
    /// Mean seconds per training step and per evaluation batch so far.
    step_seconds: Mean,
    eval_seconds: Mean,
    estimated: bool,
}

#[derive(Default, Clone, Copy)]
struct Mean {
    sum: f64,
    count: usize,
}

impl Mean {
    fn add(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
    }
    fn get(self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// `1 h 02 min`, `3 min 05 s`, `12 s`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

fn bar(len: usize, template: &str) -> ProgressBar {
    ProgressBar::new(len as u64)
        .with_style(ProgressStyle::with_template(template).expect("a valid progress template"))
}

/// The bar of one evaluation pass.
pub fn eval_bar(samples: usize) -> ProgressBar {
    bar(
        samples,
        "evaluating {bar:24} {pos}/{len} samples {per_sec} · eta {eta}",
    )
}

impl RunProgress {
    /// `software` names the adapter when it is a CPU driver.
    pub fn new(
        software: Option<String>,
        epochs: usize,
        batch_size: usize,
        batches_per_epoch: usize,
        eval_batches: usize,
    ) -> Self {
        if let Some(name) = &software {
            eprintln!(
                "{name} is a software driver: the GPU kernels run on the CPU, far slower than on \
                 a GPU. The time per epoch is estimated after the first steps."
            );
        }
        Self {
            software,
            epochs,
            batch_size,
            batches_per_epoch,
            eval_batches,
            step_seconds: Mean::default(),
            eval_seconds: Mean::default(),
            estimated: false,
        }
    }

    /// The bar of one training epoch.
    pub fn epoch_bar(&self, epoch: usize) -> ProgressBar {
        let b = bar(
            self.batches_per_epoch,
            "{prefix} {bar:24} {pos}/{len} {msg} · epoch eta {eta}",
        );
        b.set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
        b
    }

    /// Records a training step (`index` within the epoch) and refreshes the bar's message.
    pub fn step(
        &mut self,
        bar: &ProgressBar,
        epoch: usize,
        index: usize,
        took: Duration,
        loss: f32,
        lr: f32,
    ) {
        let first_of_run = epoch == 0 && index == 0;
        // The very first step also pays for driver warm-up; it would skew the estimate.
        if !first_of_run || self.batches_per_epoch == 1 {
            self.step_seconds.add(took.as_secs_f64());
        }
        bar.inc(1);
        let per_step = self.step_seconds.get().unwrap_or(took.as_secs_f64());
        let left_this_epoch = self.batches_per_epoch.saturating_sub(index + 1);
        let left_epochs = self.epochs.saturating_sub(epoch + 1);
        let eval = self.eval_seconds.get().unwrap_or(per_step / 3.0) * self.eval_batches as f64;
        let run_left = per_step * (left_this_epoch + left_epochs * self.batches_per_epoch) as f64
            + eval * (left_epochs + 1) as f64;
        bar.set_message(format!(
            "loss {loss:.4} · lr {lr:.5} · {:.1} samples/s · run eta {}",
            self.batch_size as f64 / per_step,
            human(run_left)
        ));
        // Short epochs are estimated from what they have, so the estimate comes before the end.
        let enough = ESTIMATE_AFTER.min(self.batches_per_epoch.saturating_sub(1).max(1));
        if self.software.is_some() && !self.estimated && self.step_seconds.count >= enough {
            self.estimated = true;
            let epoch_s = per_step * self.batches_per_epoch as f64 + eval;
            bar.suspend(|| {
                eprintln!(
                    "measured {:.2} s per step: about {} per epoch ({} batches and the evaluation), {} for the {} epochs",
                    per_step,
                    human(epoch_s),
                    self.batches_per_epoch,
                    human(epoch_s * self.epochs as f64),
                    self.epochs
                )
            });
        }
    }

    /// Records the time of one evaluation batch.
    pub fn eval_batch(&mut self, took: Duration) {
        self.eval_seconds.add(took.as_secs_f64());
    }
}

/// Times the interval since the last call.
pub struct Lap(Instant);

impl Lap {
    pub fn start() -> Self {
        Self(Instant::now())
    }
    pub fn next(&mut self) -> Duration {
        let now = Instant::now();
        let took = now - self.0;
        self.0 = now;
        took
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_epoch_is_estimated_before_it_ends() {
        let mut p = RunProgress::new(Some("llvmpipe".into()), 8, 4, 3, 2);
        let bar = ProgressBar::hidden();
        for i in 0..3 {
            assert!(!p.estimated, "estimated before step {i}");
            p.step(&bar, 0, i, Duration::from_secs(2), 1.0, 0.1);
        }
        assert!(p.estimated);
    }

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(human(12.4), "12 s");
        assert_eq!(human(185.0), "3 min 05 s");
        assert_eq!(human(3720.0), "1 h 02 min");
    }
}
