//! Accuracies of a labelled score set: top-1, top-5, per class and the mean over classes.

use std::fmt;

use serde::Serialize;

use crate::scores::Scores;
use crate::train::top_k_hits;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAccuracy {
    pub class: usize,
    pub samples: usize,
    /// Samples of this class whose top-1 prediction is right.
    pub hits: usize,
}

impl ClassAccuracy {
    /// Top-1 accuracy of the class (0 for a class without test samples).
    pub fn top1(&self) -> f64 {
        self.hits as f64 / self.samples.max(1) as f64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    pub samples: usize,
    pub top1: f64,
    pub top5: f64,
    /// The mean of the per-class top-1 over the classes that have samples.
    pub mean_class: f64,
    pub per_class: Vec<ClassAccuracy>,
    /// `confusion[true_class * classes + predicted_class]`: sample counts.
    pub confusion: Vec<usize>,
}

impl Accuracy {
    /// `None` when the scores carry no labels.
    pub fn of(scores: &Scores) -> Option<Self> {
        let labels = scores.labels.as_ref()?;
        Some(Self::new(&scores.values, labels, scores.classes))
    }

    /// Accuracies of (labels.len() × classes) row-major `scores`; a prediction is the first
    /// largest score, the tie rule of the training log's top-k.
    pub fn new(scores: &[f32], labels: &[u32], classes: usize) -> Self {
        let mut per_class: Vec<ClassAccuracy> = (0..classes)
            .map(|class| ClassAccuracy {
                class,
                samples: 0,
                hits: 0,
            })
            .collect();
        let mut confusion = vec![0; classes * classes];
        for (row, &label) in scores.chunks(classes).zip(labels) {
            let predicted = argmax(row);
            let c = &mut per_class[label as usize];
            c.samples += 1;
            c.hits += usize::from(predicted == label as usize);
            confusion[label as usize * classes + predicted] += 1;
        }
        let present: Vec<f64> = per_class
            .iter()
            .filter(|c| c.samples > 0)
            .map(ClassAccuracy::top1)
            .collect();
        let (top1, top5) = top_k_hits(scores, labels, classes);
        let n = labels.len().max(1) as f64;
        Self {
            samples: labels.len(),
            top1: top1 as f64 / n,
            top5: top5 as f64 / n,
            mean_class: present.iter().sum::<f64>() / present.len().max(1) as f64,
            per_class,
            confusion,
        }
    }

    /// Top-1 of class `c`, `None` when the set has no sample of it.
    pub fn class(&self, c: usize) -> Option<f64> {
        let a = &self.per_class[c];
        (a.samples > 0).then(|| a.top1())
    }
}

/// The first index of the largest score.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (c, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = c;
        }
    }
    best
}

impl fmt::Display for Accuracy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} samples: top-1 {:.2} %, top-5 {:.2} %, mean class accuracy {:.2} %",
            self.samples,
            100.0 * self.top1,
            100.0 * self.top5,
            100.0 * self.mean_class
        )?;
        for c in self.per_class.iter().filter(|c| c.samples > 0) {
            writeln!(
                f,
                "  class {:>3}: {:>6.2} % of {}",
                c.class + 1,
                100.0 * c.top1(),
                c.samples
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_per_class_and_confusions() {
        // Three classes; sample 2 is a class-0 sample predicted as 2, sample 3 a tie.
        let scores = [
            0.9, 0.1, 0.0, // 0 → 0
            0.1, 0.8, 0.1, // 1 → 1
            0.2, 0.1, 0.7, // 0 → 2
            0.5, 0.5, 0.0, // 1 → 0 (tie to the lower class)
        ];
        let a = Accuracy::new(&scores, &[0, 1, 0, 1], 3);
        let samples: Vec<usize> = a.per_class.iter().map(|c| c.samples).collect();
        let hits: Vec<usize> = a.per_class.iter().map(|c| c.hits).collect();
        assert_eq!(samples, [2, 2, 0]);
        assert_eq!(hits, [1, 1, 0]);
        assert_eq!(a.confusion, [1, 0, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(a.class(2), None);
        assert_eq!(a.mean_class, 0.5);
        assert_eq!(a.top1, 0.5);
        assert_eq!(a.top5, 1.0);
    }
}
