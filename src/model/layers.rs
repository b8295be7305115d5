//! Building blocks shared by the models' modules.

use super::init::Init;
use crate::engine::{Graph, TensorId};
use crate::ops::add::add;
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::conv1x1::conv1x1;
use crate::ops::linear::linear;
use crate::ops::permute::permute;
use crate::ops::reduce::{expand, mean};
use crate::ops::reshape::reshape;

/// CTR-GCN's `data_bn` on a batch `x` (N, C, T, V, M): each (person, joint, coordinate) channel
/// normalised over (N, T), returned as the (N·M, C, T, V) rows the blocks take.
pub fn person_joint_bn(g: &mut Graph, bn: &BatchNorm, x: TensorId, mode: Mode) -> TensorId {
    let shape = g.shape(x).to_vec();
    let [n, c, t, v, m] = shape[..] else {
        panic!("data_bn takes (N, C, T, V, M), got {shape:?}");
    };
    let h = permute(g, x, &shape, &[0, 4, 3, 1, 2], &[n, m * v * c, t]);
    let h = bn.apply(g, h, mode);
    permute(g, h, &[n, m, v, c, t], &[0, 1, 3, 4, 2], &[n * m, c, t, v])
}

/// The pooled features of the last block's output `h` (N·M, C, T, V): the mean over frames,
/// joints and the M persons of each sample, (N, C), what every backbone's classifier reads.
pub fn pool_persons(g: &mut Graph, h: TensorId, persons: usize) -> TensorId {
    let shape = g.shape(h).to_vec();
    let [rows, c, t, v] = shape[..] else {
        panic!("pooling takes (N·M, C, T, V), got {shape:?}");
    };
    let h = reshape(g, h, &[rows / persons, persons, c, t * v]);
    mean(g, h, &[1, 3])
}

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

    /// A 1×1 conv of one of `branches` summed branches, as `conv_branch_init` starts it:
    /// weight N(0, √(2/(C_out·C_in·branches))), bias 0.
    pub fn branch(
        g: &mut Graph,
        prefix: &str,
        [cout, cin]: [usize; 2],
        branches: usize,
        init: &mut Init,
    ) -> Self {
        let std = (2.0 / (cout * cin * branches) as f32).sqrt();
        Self {
            weight: g.parameter(
                &format!("{prefix}.weight"),
                &[cout, cin, 1, 1],
                init.normal(cout * cin, 0.0, std),
            ),
            bias: g.parameter(&format!("{prefix}.bias"), &[cout], vec![0.0; cout]),
        }
    }

    /// The convolution as a 1×1 convolution of `x` (B, C_in, ...).
    pub fn apply_1x1(&self, g: &mut Graph, x: TensorId) -> TensorId {
        conv1x1(g, x, self.weight, Some(self.bias))
    }

    /// The 1×1 convolutions `convs` (of one C_in) packed (see [`Graph::pack`]), so that they
    /// run as one product with no copy per step: weights `{name}.weight` read as the stack
    /// (Σ C_out, C_in), biases `{name}.bias` as (Σ C_out). The members keep their state-dict
    /// names; ops read the stack. Each output element of the stack's product is the same sum in
    /// the same order as the member convolution's own.
    pub fn pack(g: &mut Graph, name: &str, convs: &[Conv]) -> Conv {
        let cin = g.shape(convs[0].weight)[1];
        let total: usize = convs.iter().map(|c| g.shape(c.weight)[0]).sum();
        let weights: Vec<TensorId> = convs.iter().map(|c| c.weight).collect();
        let biases: Vec<TensorId> = convs.iter().map(|c| c.bias).collect();
        let weight = g.pack(&format!("{name}.weight"), &weights);
        Conv {
            weight: reshape(g, weight, &[total, cin]),
            bias: g.pack(&format!("{name}.bias"), &biases),
        }
    }
}

/// A Linear layer's weight (C_out, C_in) and bias.
#[derive(Debug, Clone, Copy)]
pub struct Dense {
    pub weight: TensorId,
    pub bias: TensorId,
}

impl Dense {
    /// `{prefix}.weight` from `weight`, `{prefix}.bias` with PyTorch's default U(±1/√C_in).
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        [out, cin]: [usize; 2],
        weight: Vec<f32>,
        init: &mut Init,
    ) -> Self {
        let weight = g.parameter(&format!("{prefix}.weight"), &[out, cin], weight);
        let bound = 1.0 / (cin as f32).sqrt();
        let bias = g.parameter(
            &format!("{prefix}.bias"),
            &[out],
            init.uniform(out, -bound, bound),
        );
        Self { weight, bias }
    }

    /// PyTorch's default Linear: both U(±1/√C_in).
    pub fn default_init(
        g: &mut Graph,
        prefix: &str,
        [out, cin]: [usize; 2],
        init: &mut Init,
    ) -> Self {
        let bound = 1.0 / (cin as f32).sqrt();
        let weight = init.uniform(out * cin, -bound, bound);
        Self::new(g, prefix, [out, cin], weight, init)
    }

    /// Xavier-uniform weight with ReLU's gain √2, as the head's three hidden layers start.
    pub fn xavier_relu(
        g: &mut Graph,
        prefix: &str,
        [out, cin]: [usize; 2],
        init: &mut Init,
    ) -> Self {
        let bound = 2f32.sqrt() * (6.0 / (out + cin) as f32).sqrt();
        let weight = init.uniform(out * cin, -bound, bound);
        Self::new(g, prefix, [out, cin], weight, init)
    }

    pub fn apply(&self, g: &mut Graph, x: TensorId) -> TensorId {
        linear(g, x, self.weight, Some(self.bias))
    }
}

/// `count` V×V identity matrices one after the other: the start of a learnable adjacency.
pub fn identity_stack(count: usize, v: usize) -> Vec<f32> {
    let mut values = vec![0.0; count * v * v];
    for block in values.chunks_exact_mut(v * v) {
        (0..v).for_each(|j| block[j * v + j] = 1.0);
    }
    values
}

/// InfoGCN's and BlockGCN's input: each joint's coordinates through a Linear layer
/// (`to_joint_embedding`) plus a learnable per-joint term (`pos_embedding`, broadcast over samples
/// and frames), then `data_bn` over the (M·V·width) channels. Declared in their state dicts'
/// order: `pos_embedding`, `data_bn`, `to_joint_embedding`.
pub struct JointEmbedding {
    pos_embedding: TensorId,
    data_bn: BatchNorm,
    linear: Dense,
    width: usize,
}

impl JointEmbedding {
    /// For `joints` V, `persons` M and `width` features: `pos_embedding` N(0, 1) (`torch.randn`),
    /// `data_bn` γ = 1, the Linear layer PyTorch's default.
    pub fn new(
        g: &mut Graph,
        (joints, persons, width): (usize, usize, usize),
        init: &mut Init,
    ) -> Self {
        let pos_embedding = g.parameter(
            "pos_embedding",
            &[1, joints, width],
            init.normal(joints * width, 0.0, 1.0),
        );
        let data_bn = BatchNorm::new(g, "data_bn", persons * joints * width);
        let linear = Dense::default_init(g, "to_joint_embedding", [width, 3], init);
        Self {
            pos_embedding,
            data_bn,
            linear,
            width,
        }
    }

    /// `joints` (N·M·T·V, 3), rows in (n, m, t, v) order, → (N·M, width, T, V).
    pub fn forward(
        &self,
        g: &mut Graph,
        joints: TensorId,
        [n, m, t, v]: [usize; 4],
        mode: Mode,
    ) -> TensorId {
        let e = self.width;
        let h = self.linear.apply(g, joints);
        let h = reshape(g, h, &[n * m * t, v, e]);
        let pos = reshape(g, self.pos_embedding, &[v, e]);
        let pos = expand(g, pos, &[n * m * t, v, e], &[0], 1.0);
        let h = add(g, h, pos);
        // data_bn normalises each (person, joint, feature) channel over (N, T).
        let h = permute(g, h, &[n, m, t, v, e], &[0, 1, 3, 4, 2], &[n, m * v * e, t]);
        let h = self.data_bn.apply(g, h, mode);
        permute(g, h, &[n, m, v, e, t], &[0, 1, 3, 4, 2], &[n * m, e, t, v])
    }
}
