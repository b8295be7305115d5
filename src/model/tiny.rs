//! A tiny network with the shape of a skeleton model's head: 1×1 conv → BN → ReLU → mean over
//! (T, V) → Linear. It proves that the engine trains, and comes with a synthetic problem it can
//! solve.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::init::Init;
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::{conv1x1::conv1x1, linear::linear, reduce::mean};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyConfig {
    pub channels: usize,
    pub hidden: usize,
    pub classes: usize,
    pub frames: usize,
    pub joints: usize,
}

impl Default for TinyConfig {
    fn default() -> Self {
        Self {
            channels: 3,
            hidden: 16,
            classes: 4,
            frames: 8,
            joints: 5,
        }
    }
}

pub struct TinyNet {
    conv_weight: TensorId,
    conv_bias: TensorId,
    bn: BatchNorm,
    fc_weight: TensorId,
    fc_bias: TensorId,
}

impl TinyNet {
    /// Declares the parameters (`conv.*`, `bn.*`, `fc.*`), initialised from `seed`.
    pub fn new(g: &mut Graph, c: &TinyConfig, seed: u64) -> Self {
        let mut init = Init::new(seed);
        let conv_shape = [c.hidden, c.channels, 1, 1];
        let bound = 1.0 / (c.hidden as f32).sqrt();
        Self {
            conv_weight: g.parameter(
                "conv.weight",
                &conv_shape,
                init.kaiming_normal_fan_out(&conv_shape),
            ),
            conv_bias: g.parameter("conv.bias", &[c.hidden], vec![0.0; c.hidden]),
            bn: BatchNorm::new(g, "bn", c.hidden),
            fc_weight: g.parameter(
                "fc.weight",
                &[c.classes, c.hidden],
                init.normal(c.classes * c.hidden, 0.0, (2.0 / c.classes as f32).sqrt()),
            ),
            fc_bias: g.parameter(
                "fc.bias",
                &[c.classes],
                init.uniform(c.classes, -bound, bound),
            ),
        }
    }

    /// Logits (B, classes) of `x` (B, C, T, V).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let h = conv1x1(g, x, self.conv_weight, Some(self.conv_bias));
        let h = self.bn.apply_relu(g, h, mode);
        let pooled = mean(g, h, &[2, 3]);
        linear(g, pooled, self.fc_weight, Some(self.fc_bias))
    }
}

/// A separable problem: the mean of class k on channel c is +1 or −1 by bit c of k (so classes
/// differ by at least 2 on some channel; up to 2^channels classes), and a sample is that mean
/// plus Gaussian noise (σ = 0.5) at every (t, v). Batch `index` of a run is drawn from
/// (`problem_seed`, `index`), so a run is reproducible.
pub fn separable_batch(
    c: &TinyConfig,
    batch: usize,
    problem_seed: u64,
    index: u64,
) -> (Vec<f32>, Vec<u32>) {
    assert!(
        c.classes <= 1 << c.channels,
        "too many classes for distinct sign patterns"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(problem_seed ^ (index + 1).wrapping_mul(0x9e37_79b9));
    let noise = Normal::new(0.0f32, 0.5).expect("valid std");
    let classes = Uniform::new(0, c.classes as u32).expect("at least one class");
    let points = c.frames * c.joints;
    let mut x = Vec::with_capacity(batch * c.channels * points);
    let mut labels = Vec::with_capacity(batch);
    for _ in 0..batch {
        let label = classes.sample(&mut rng);
        labels.push(label);
        for ch in 0..c.channels {
            let mu = if (label >> ch) & 1 == 1 { 1.0 } else { -1.0 };
            x.extend((0..points).map(|_| mu + noise.sample(&mut rng)));
        }
    }
    (x, labels)
}
