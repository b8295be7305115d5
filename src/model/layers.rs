//! Building blocks shared by the models' modules.

use super::init::Init;
use crate::engine::{Graph, TensorId};
use crate::ops::conv1x1::conv1x1;

/// A convolution's weight (PyTorch's (C_out, C_in, kh, kw)) and bias.
#[derive(Debug, Clone, Copy)]
pub struct Conv {
    pub weight: TensorId,
    pub bias: TensorId,
}

impl Conv {
    /// `{prefix}.weight` with kaiming_normal (fan_out) and `{prefix}.bias` = 0, as CTR-GCN
    /// initialises its convolutions.
    pub fn kaiming(g: &mut Graph, prefix: &str, shape: [usize; 4], init: &mut Init) -> Self {
        let weight = init.kaiming_normal_fan_out(&shape);
        Self {
            weight: g.parameter(&format!("{prefix}.weight"), &shape, weight),
            bias: g.parameter(&format!("{prefix}.bias"), &[shape[0]], vec![0.0; shape[0]]),
        }
    }

    /// `{prefix}.weight` and `{prefix}.bias` with PyTorch's default Conv2d initialisation, both
    /// U(±1/√fan_in) (kaiming_uniform with a = √5), fan_in = C_in·kh·kw.
    pub fn pytorch_default(
        g: &mut Graph,
        prefix: &str,
        shape: [usize; 4],
        init: &mut Init,
    ) -> Self {
        let fan_in: usize = shape[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let weight = init.uniform(shape.iter().product(), -bound, bound);
        let bias = init.uniform(shape[0], -bound, bound);
        Self {
            weight: g.parameter(&format!("{prefix}.weight"), &shape, weight),
            bias: g.parameter(&format!("{prefix}.bias"), &[shape[0]], bias),
        }
    }

    /// The convolution as a 1×1 convolution of `x` (B, C_in, ...).
    pub fn apply_1x1(&self, g: &mut Graph, x: TensorId) -> TensorId {
        conv1x1(g, x, self.weight, Some(self.bias))
    }
}
