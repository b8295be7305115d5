//! ST-GCN as the SF-Head paper counts it (2,108,322 parameters at NTU120): the variant in the
//! CTR-GCN repository's `model/baseline.py` (backbones spec §3). It shares CTR-GCN's skeleton —
//! `data_bn`, ten blocks of the same widths and strides, the residuals, the head — and differs in
//! the two units of a block:
//!
//! - `gcn1`: three learnable V×V matrices `PA`, initialised to the identity (no skeleton prior)
//!   and L2-normalised per column at every forward; the input is aggregated over joints first,
//!   then projected by a 1×1 conv per subset (`conv_d.{i}`); the subsets are summed, normalised by
//!   a BN with γ = 1e-6, added to `down` (the input, or a 1×1 conv + BN when the width changes)
//!   and passed through ReLU;
//! - `tcn1`: one 5×1 temporal convolution (stride s) and a BN, without ReLU: a
//!   [`UnitTcn`](super::ms_tcn::UnitTcn) with k = [`TEMPORAL_KERNEL`].

use super::init::Init;
use super::layers::{Conv, identity_stack};
use super::unit_gcn::{Down, normalise_add_down};
use crate::engine::{Graph, TensorId};
use crate::ops::add::add;
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::col_norm::col_l2_normalize;
use crate::ops::concat::split;
use crate::ops::matmul::matmul;
use crate::ops::reshape::reshape;

/// Adjacency subsets of a unit.
pub const SUBSETS: usize = 3;
/// The temporal kernel of `tcn1`.
pub const TEMPORAL_KERNEL: usize = 5;

/// `unit_gcn` of `baseline.py`.
#[derive(Debug, Clone)]
pub struct StGcnUnit {
    /// (3, V, V), initialised to three identities.
    pub pa: TensorId,
    pub conv_d: Vec<Conv>,
    pub down: Option<Down>,
    pub bn: BatchNorm,
}

impl StGcnUnit {
    /// Declares `{prefix}.PA`, `conv_d.{i}`, `down.{0,1}` and `bn` in state-dict order. Convs are
    /// kaiming_normal (fan out) with zero bias, except `conv_d`, drawn from N(0, 2/(C_out·C_in·3))
    /// as the official `conv_branch_init` does; BNs start at γ = 1 except the output's 1e-6.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        joints: usize,
        init: &mut Init,
    ) -> Self {
        let pa = g.parameter(
            &format!("{prefix}.PA"),
            &[SUBSETS, joints, joints],
            identity_stack(SUBSETS, joints),
        );
        let conv_d = (0..SUBSETS)
            .map(|i| {
                let key = format!("{prefix}.conv_d.{i}");
                Conv::branch(g, &key, [cout, cin], SUBSETS, init)
            })
            .collect();
        let down = Down::new(g, prefix, (cin, cout), init);
        let bn = BatchNorm::with_weight(g, &format!("{prefix}.bn"), vec![1e-6; cout]);
        Self {
            pa,
            conv_d,
            down,
            bn,
        }
    }

    /// y (B, C_out, T, V) of x (B, C_in, T, V).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [b, c, t, v] = shape[..] else {
            panic!("ST-GCN's unit takes (B, C, T, V), got {shape:?}");
        };
        let a = col_l2_normalize(g, self.pa);
        let a = reshape(g, a, &[1, SUBSETS, v * v]);
        let subsets = split(g, a, &[1; SUBSETS]);
        let rows = reshape(g, x, &[b * c * t, v]);
        let mut sum = None;
        for (conv, a_i) in self.conv_d.iter().zip(subsets) {
            let a_i = reshape(g, a_i, &[v, v]);
            // Aggregate over joints at C_in, then project: the reverse of CTR-GCN's order.
            let z = matmul(g, rows, a_i, false, false);
            let z = reshape(g, z, &[b, c, t, v]);
            let z = conv.apply_1x1(g, z);
            sum = Some(match sum {
                Some(s) => add(g, s, z),
                None => z,
            });
        }
        let sum = sum.expect("three subsets");
        normalise_add_down(g, x, sum, &self.bn, self.down.as_ref(), mode)
    }
}
