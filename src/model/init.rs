//! Seeded parameter initialisers with PyTorch's definitions.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// A seeded source of initial values: the same seed gives the same model.
pub struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn normal(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let d = Normal::new(mean, std).expect("a finite, non-negative std");
        (0..n).map(|_| d.sample(&mut self.rng)).collect()
    }

    pub fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        let d = Uniform::new(lo, hi).expect("lo < hi");
        (0..n).map(|_| d.sample(&mut self.rng)).collect()
    }

    /// `kaiming_normal_(mode="fan_out")` for a ReLU network: N(0, √(2/fan_out)) with
    /// fan_out = shape[0]·(kernel size), the shape being PyTorch's (C_out, C_in, kh, kw).
    pub fn kaiming_normal_fan_out(&mut self, shape: &[usize]) -> Vec<f32> {
        let fan_out: usize = shape[0] * shape[2..].iter().product::<usize>();
        let n = shape.iter().product();
        self.normal(n, 0.0, (2.0 / fan_out as f32).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaiming_fan_out_has_the_right_spread() {
        let w = Init::new(1).kaiming_normal_fan_out(&[50, 40, 5, 1]);
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!(
            (var - 2.0 / 250.0).abs() < 0.1 * 2.0 / 250.0,
            "variance {var}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        assert_eq!(
            Init::new(7).normal(5, 0.0, 1.0),
            Init::new(7).normal(5, 0.0, 1.0)
        );
        assert_ne!(
            Init::new(7).normal(5, 0.0, 1.0),
            Init::new(8).normal(5, 0.0, 1.0)
        );
    }
}
