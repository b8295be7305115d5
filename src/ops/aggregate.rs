//! Graph aggregation of CTR-GC: Z[b, c, t, u] = Σ_s Σ_v Q[b, s, c, u, v]·x3[b, s, c, t, v] for
//! the S branches' Q (B, S·C, V, V) and x3 (B, S·C, T, V); one branch (S = 1) is the plain
//! Z[b, c, t, u] = Σ_v Q[b, c, u, v]·x3[b, c, t, v]. For each of the B·C pairs (b, c) this is
//! Σ_s X3_s·Q_sᵀ, T×V by V×V matrices, so forward and backward are batched GEMMs, the forward
//! summing the branches in its k loop:
//! - forward Z = Σ_s X3_s·Q_sᵀ (NT), one product per (b, c),
//! - g_x3_s = Γ·Q_s (NN) and g_Q_s = Γᵀ·X3_s (TN), one product per (b, s, c),
//!
//! with Γ the gradient of Z.

use super::arg;
use super::gemm::{Bias, Gemm, Operand, nested_by};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

/// Extents of an aggregation: B samples, C channels per branch, S branches, T frames, V joints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub channels: usize,
    pub branches: usize,
    pub frames: usize,
    pub joints: usize,
}

impl Dims {
    /// One branch over `maps` = B·C (b, c) pairs.
    pub fn maps(maps: usize, frames: usize, joints: usize) -> Self {
        Self {
            batch: 1,
            channels: maps,
            branches: 1,
            frames,
            joints,
        }
    }

    fn tv(&self) -> usize {
        self.frames * self.joints
    }

    fn vv(&self) -> usize {
        self.joints * self.joints
    }
}

#[derive(Debug)]
struct Aggregate {
    dims: Dims,
}

/// `Σ_v q[b, c, u, v]·x3[b, c, t, v]` for q (B, C, V, V) and x3 (B, C, T, V); the result is
/// (B, C, T, V).
pub fn aggregate(g: &mut Graph, q: TensorId, x3: TensorId) -> TensorId {
    aggregate_branches(g, q, x3, 1)
}

/// `Σ_s Σ_v q[b, s, c, u, v]·x3[b, s, c, t, v]` for q (B, S·C, V, V) and x3 (B, S·C, T, V) of
/// `branches` = S; the result is (B, C, T, V).
pub fn aggregate_branches(g: &mut Graph, q: TensorId, x3: TensorId, branches: usize) -> TensorId {
    let (qs, xs) = (g.shape(q).to_vec(), g.shape(x3).to_vec());
    assert!(
        qs.len() == 4 && xs.len() == 4 && qs[..2] == xs[..2] && qs[2] == xs[3] && qs[3] == xs[3],
        "aggregate takes Q (B, S·C, V, V) and x3 (B, S·C, T, V), got {qs:?} and {xs:?}"
    );
    assert_eq!(
        xs[1] % branches,
        0,
        "{branches} branches do not divide {} channels",
        xs[1]
    );
    let dims = Dims {
        batch: xs[0],
        channels: xs[1] / branches,
        branches,
        frames: xs[2],
        joints: xs[3],
    };
    let z = g.activation(
        "aggregate",
        &[dims.batch, dims.channels, dims.frames, dims.joints],
    );
    g.push(Aggregate { dims }, &[q, x3], &[z]);
    z
}

impl Op for Aggregate {
    fn name(&self) -> &'static str {
        "aggregate"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let (q, x3) = (arg(inputs[0]), arg(inputs[1]));
        forward_gemm(self.dims).record(rec, x3, q, None, arg(outputs[0]));
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gz = ctx.grads[0].expect("aggregate has one output");
        let (q, x3) = (ctx.inputs[0], ctx.inputs[1]);
        let dims = self.dims;
        let gq = ctx.needs[0].then(|| {
            let shape = g.shape(q).to_vec();
            grad_q_gemm(dims).push(g, "aggregate_grad_q", gz, x3, None, &shape)
        });
        let gx3 = ctx.needs[1].then(|| {
            let shape = g.shape(x3).to_vec();
            grad_x3_gemm(dims).push(g, "aggregate_grad_x3", gz, q, None, &shape)
        });
        Ok(vec![gq, gx3])
    }
}

/// An operand of `size` elements per (b, s, c) of the branches' stack, `ld` per row, for
/// products nested as z = (b·S + s)·C + c.
fn per_branch_map(trans: bool, ld: usize, size: usize, d: Dims) -> Operand {
    Operand {
        batch: [size, d.channels * size, d.branches * d.channels * size],
        ..Operand::rows(trans, ld)
    }
}

/// Γ (B, C, T, V) for products z = (b·S + s)·C + c: the same map for every branch.
fn gamma(trans: bool, d: Dims) -> Operand {
    Operand {
        batch: [d.tv(), 0, d.channels * d.tv()],
        ..Operand::rows(trans, d.joints)
    }
}

/// Z_bc = Σ_s X3_bsc·Q_bscᵀ: A = x3 (T×V), B = Q read transposed (Q[u, v] is B[v, u]), the
/// branches summed as the product's kb axis; one product per (b, c), z = b·C + c.
pub fn forward_gemm(d: Dims) -> Gemm {
    let per_sample = |size: usize| Operand {
        batch: [size, d.branches * d.channels * size, 0],
        kb_stride: d.channels * size,
        ..Operand::rows(false, d.joints)
    };
    Gemm {
        m: d.frames,
        n: d.joints,
        k: d.joints,
        kb: d.branches,
        products: d.batch * d.channels,
        nest: nested_by(d.channels),
        a: per_sample(d.tv()),
        b: Operand {
            trans: true,
            ..per_sample(d.vv())
        },
        ldc: d.joints,
        c_batch: [d.tv(), d.channels * d.tv(), 0],
        bias: Bias::None,
        bias_batch: 0,
    }
}

/// g_x3_bsc = Γ_bc·Q_bsc: A = Γ (T×V over (t, u)), B = Q (V×V over (u, v)).
pub fn grad_x3_gemm(d: Dims) -> Gemm {
    per_branch_grad(d, (d.frames, d.joints), false, d.vv(), d.tv())
}

/// g_Q_bsc = Γ_bcᵀ·X3_bsc: A = Γ read transposed (stored T×V), B = x3 (T×V), summed over t.
pub fn grad_q_gemm(d: Dims) -> Gemm {
    per_branch_grad(d, (d.joints, d.frames), true, d.tv(), d.vv())
}

/// One product per (b, s, c) of Γ_bc (transposed if `trans_gamma`), m × k, and a branch's map
/// of `b_size` elements, V wide; C has `c_size` elements per product, V per row.
fn per_branch_grad(
    d: Dims,
    (m, k): (usize, usize),
    trans_gamma: bool,
    b_size: usize,
    c_size: usize,
) -> Gemm {
    Gemm {
        m,
        n: d.joints,
        k,
        kb: 1,
        products: d.batch * d.branches * d.channels,
        nest: [d.channels, d.branches],
        a: gamma(trans_gamma, d),
        b: per_branch_map(false, d.joints, b_size, d),
        ldc: d.joints,
        c_batch: per_branch_map(false, 0, c_size, d).batch,
        bias: Bias::None,
        bias_batch: 0,
    }
}

pub mod cpu {
    //! Straight from the definitions.

    use super::Dims;

    /// Calls `term(z, q, x3)` with the indices of every product Q·x3 that Z sums.
    fn terms(d: Dims, mut term: impl FnMut(usize, usize, usize)) {
        let (v, vv, tv) = (d.joints, d.vv(), d.tv());
        for b in 0..d.batch {
            for c in 0..d.channels {
                let out = (b * d.channels + c) * tv;
                for s in 0..d.branches {
                    let map = (b * d.branches + s) * d.channels + c;
                    for t in 0..d.frames {
                        for u in 0..v {
                            for w in 0..v {
                                term(out + t * v + u, map * vv + u * v + w, map * tv + t * v + w);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Z of the branches' Q and x3.
    pub fn aggregate(q: &[f64], x3: &[f64], d: Dims) -> Vec<f64> {
        let mut z = vec![0.0; d.batch * d.channels * d.tv()];
        terms(d, |zi, qi, xi| z[zi] += q[qi] * x3[xi]);
        z
    }

    /// (g_Q, g_x3) given the gradient `gz` of Z.
    pub fn aggregate_grad(q: &[f64], x3: &[f64], gz: &[f64], d: Dims) -> (Vec<f64>, Vec<f64>) {
        let mut gq = vec![0.0; q.len()];
        let mut gx3 = vec![0.0; x3.len()];
        terms(d, |zi, qi, xi| {
            gq[qi] += gz[zi] * x3[xi];
            gx3[xi] += q[qi] * gz[zi];
        });
        (gq, gx3)
    }
}
