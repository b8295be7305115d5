//! The per-epoch records of a work directory, rewritten whole after every epoch (so a resumed
//! run's files hold exactly the epochs of its checkpoint): `log.jsonl`, the same as `log.csv`
//! for spreadsheets, and a TensorBoard event file for `tensorboard --logdir work_dirs`.

use std::io::Write;
use std::path::Path;

use super::tensorboard::{EventWriter, Scalar};
use super::trainer::EpochLog;
use crate::atomic::write_atomic;

pub const LOG_FILE: &str = "log.jsonl";
pub const CSV_FILE: &str = "log.csv";
/// TensorBoard reads any file whose name contains `tfevents`; a fixed name lets each epoch
/// replace it atomically.
pub const EVENTS_FILE: &str = "events.out.tfevents.sfhead";

/// Writes the three files for `logs`.
pub fn write(work_dir: &Path, logs: &[EpochLog]) -> std::io::Result<()> {
    let jsonl: String = logs
        .iter()
        .map(|l| serde_json::to_string(l).expect("logs serialise") + "\n")
        .collect();
    write_atomic(&work_dir.join(LOG_FILE), |f| f.write_all(jsonl.as_bytes()))?;
    write_atomic(&work_dir.join(CSV_FILE), |f| {
        f.write_all(csv(logs).as_bytes())
    })?;
    write_atomic(&work_dir.join(EVENTS_FILE), |f| f.write_all(&events(logs)))
}

/// The loss terms any epoch has, in name order.
fn term_names(logs: &[EpochLog]) -> Vec<&str> {
    let mut names: Vec<&str> = logs
        .iter()
        .flat_map(|l| l.loss_terms.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// One row per epoch, numbered from 1 as the progress lines are.
pub fn csv(logs: &[EpochLog]) -> String {
    let terms = term_names(logs);
    let mut out = String::from("epoch,lr,loss");
    for t in &terms {
        out += &format!(",{t}");
    }
    out += ",top1,top5,test_samples,seconds\n";
    for l in logs {
        out += &format!("{},{},{}", l.epoch + 1, l.lr, l.train_loss);
        for t in &terms {
            match l.loss_terms.get(*t) {
                Some(v) => out += &format!(",{v}"),
                None => out += ",",
            }
        }
        out += &format!(
            ",{},{},{},{:.3}\n",
            l.top1, l.top5, l.test_samples, l.seconds
        );
    }
    out
}

/// Scalars per epoch (step = epoch number from 1): `train/loss`, `train/<term>`, `train/lr`,
/// `test/top1`, `test/top5`.
pub fn events(logs: &[EpochLog]) -> Vec<u8> {
    let start = logs.first().map_or(0.0, |l| l.wall_time - l.seconds);
    let mut w = EventWriter::new(start);
    for l in logs {
        let mut scalars = vec![Scalar {
            tag: "train/loss".into(),
            value: l.train_loss as f32,
        }];
        for (name, value) in &l.loss_terms {
            scalars.push(Scalar {
                tag: format!("train/{name}"),
                value: *value as f32,
            });
        }
        scalars.push(Scalar {
            tag: "train/lr".into(),
            value: l.lr,
        });
        scalars.push(Scalar {
            tag: "test/top1".into(),
            value: l.top1 as f32,
        });
        scalars.push(Scalar {
            tag: "test/top5".into(),
            value: l.top5 as f32,
        });
        w.scalars(l.wall_time, l.epoch as i64 + 1, &scalars);
    }
    w.into_bytes()
}
