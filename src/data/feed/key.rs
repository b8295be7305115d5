use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Domain tags that keep the sample streams and the shuffle stream of one (seed, epoch) apart.
const SAMPLE_STREAM: u64 = 0;
const SHUFFLE_STREAM: u64 = 1;
const NOISE_STREAM: u64 = 2;

/// What a sample's augmentation randomness depends on, and nothing else: the run's seed, the
/// epoch and the sample's position in the epoch (before shuffling). A generator keyed this way
/// draws the same numbers whichever thread asks and in whatever order, so a run is reproducible
/// for any thread count and batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub seed: u64,
    pub epoch: u64,
    pub index: u64,
}

impl SampleKey {
    pub fn new(seed: u64, epoch: u64, index: usize) -> Self {
        Self {
            seed,
            epoch,
            index: index as u64,
        }
    }

    /// A fresh generator for this sample (ChaCha8 keyed by the three numbers).
    pub fn rng(self) -> ChaCha8Rng {
        keyed(self.seed, self.epoch, self.index, SAMPLE_STREAM)
    }
}

/// The generator of an epoch's shuffle.
pub fn shuffle_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    keyed(seed, epoch, 0, SHUFFLE_STREAM)
}

/// The generator of an epoch's model noise (InfoGCN's latent sample), drawn step after step.
pub fn noise_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    keyed(seed, epoch, 0, NOISE_STREAM)
}

fn keyed(seed: u64, epoch: u64, index: u64, stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip([seed, epoch, index, stream]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn draw(mut rng: ChaCha8Rng) -> [u64; 4] {
        [rng.random(), rng.random(), rng.random(), rng.random()]
    }

    #[test]
    fn same_key_same_numbers_any_other_key_different() {
        let key = SampleKey::new(1, 3, 17);
        assert_eq!(draw(key.rng()), draw(key.rng()));
        let others = [
            SampleKey::new(2, 3, 17),
            SampleKey::new(1, 4, 17),
            SampleKey::new(1, 3, 18),
        ];
        for other in others {
            assert_ne!(draw(key.rng()), draw(other.rng()), "{other:?}");
        }
        assert_ne!(draw(SampleKey::new(1, 3, 0).rng()), draw(shuffle_rng(1, 3)));
    }
}
