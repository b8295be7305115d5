//! A part of a clip set chosen by index, and the held-out split of a training set: the samples
//! an ensemble's weights are fitted on, which training then never sees.

use std::sync::Arc;

use super::{ClipSet, Sequence};

/// The clips of `inner` at `indices`, in that order.
pub struct Subset {
    inner: Arc<dyn ClipSet>,
    indices: Vec<usize>,
}

impl Subset {
    pub fn new(inner: Arc<dyn ClipSet>, indices: Vec<usize>) -> Self {
        assert!(
            indices.iter().all(|&i| i < inner.len()),
            "subset indices within the set"
        );
        Self { inner, indices }
    }
}

impl ClipSet for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn name(&self, index: usize) -> &str {
        self.inner.name(self.indices[index])
    }
    fn label(&self, index: usize) -> u32 {
        self.inner.label(self.indices[index])
    }
    fn clip(&self, index: usize) -> Sequence {
        self.inner.clip(self.indices[index])
    }
}

/// Whether sample `name` belongs to the held-out `fraction` of a training set under `seed`.
/// Decided by a hash of the name alone, so the split does not depend on the order or the size
/// of the set, and every stream of an ensemble (joint, bone, motion) holds out the same samples.
pub fn is_held_out(name: &str, seed: u64, fraction: f64) -> bool {
    // FNV-1a over the seed and the name, then a 53-bit fraction in [0, 1).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // A final avalanche: FNV's high bits change little between names that differ at the end.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    ((h >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// Splits a training set into (kept for training, held out) by [`is_held_out`].
pub fn split_holdout(
    set: Arc<dyn ClipSet>,
    seed: u64,
    fraction: f64,
) -> (Arc<dyn ClipSet>, Arc<dyn ClipSet>) {
    let (held, kept): (Vec<usize>, Vec<usize>) =
        (0..set.len()).partition(|&i| is_held_out(set.name(i), seed, fraction));
    (
        Arc::new(Subset::new(set.clone(), kept)),
        Arc::new(Subset::new(set, held)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_out_share_is_near_the_fraction_and_fixed_by_name() {
        let names: Vec<String> = (0..4000)
            .map(|i| format!("S{:03}C001P{:03}R001A{:03}", i % 17, i % 40, i % 60))
            .collect();
        let held = names.iter().filter(|n| is_held_out(n, 1, 0.1)).count();
        assert!((300..500).contains(&held), "{held} of 4000 held out");
        let again = names.iter().filter(|n| is_held_out(n, 1, 0.1)).count();
        assert_eq!(held, again);
        assert!(names.iter().all(|n| !is_held_out(n, 1, 0.0)));
        let other_seed = names
            .iter()
            .filter(|n| is_held_out(n, 1, 0.1) != is_held_out(n, 2, 0.1))
            .count();
        assert!(other_seed > 0, "the seed changes the split");
    }
}
