//! Graph aggregation of CTR-GC: Z[b, c, t, u] = Σ_v Q[b, c, u, v]·x3[b, c, t, v] for Q
//! (B, C, V, V) and x3 (B, C, T, V). For each of the B·C pairs (b, c) this is the product
//! X3·Qᵀ of a T×V and a V×V matrix, so forward and backward are batched GEMMs with one product
//! per (b, c), on grid z:
//! - forward Z = X3·Qᵀ (NT),
//! - g_x3 = Γ·Q (NN),
//! - g_Q = Γᵀ·X3 (TN),
//!
//! with Γ the gradient of Z.

use super::arg;
use super::gemm::{Bias, Gemm, Operand};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

/// WebGPU's limit on workgroups along one grid dimension, here the products on grid z.
const MAX_PRODUCTS: usize = 65_535;

#[derive(Debug)]
struct Aggregate {
    maps: usize,
    frames: usize,
    joints: usize,
}

/// `Σ_v q[b, c, u, v]·x3[b, c, t, v]` for q (B, C, V, V) and x3 (B, C, T, V); the result is
/// (B, C, T, V).
pub fn aggregate(g: &mut Graph, q: TensorId, x3: TensorId) -> TensorId {
    let (qs, xs) = (g.shape(q).to_vec(), g.shape(x3).to_vec());
    assert!(
        qs.len() == 4 && xs.len() == 4 && qs[..2] == xs[..2] && qs[2] == xs[3] && qs[3] == xs[3],
        "aggregate takes Q (B, C, V, V) and x3 (B, C, T, V), got {qs:?} and {xs:?}"
    );
    let maps = xs[0] * xs[1];
    assert!(
        maps <= MAX_PRODUCTS,
        "aggregate runs one product per (b, c) on grid z: B·C = {maps} exceeds {MAX_PRODUCTS}"
    );
    let z = g.activation("aggregate", &xs);
    let op = Aggregate {
        maps,
        frames: xs[2],
        joints: xs[3],
    };
    g.push(op, &[q, x3], &[z]);
    z
}

impl Op for Aggregate {
    fn name(&self) -> &'static str {
        "aggregate"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let (q, x3) = (arg(inputs[0]), arg(inputs[1]));
        let gemm = forward_gemm(self.maps, self.frames, self.joints);
        gemm.record(rec, x3, q, None, arg(outputs[0]));
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gz = ctx.grads[0].expect("aggregate has one output");
        let (q, x3) = (ctx.inputs[0], ctx.inputs[1]);
        let (maps, frames, joints) = (self.maps, self.frames, self.joints);
        let gq = ctx.needs[0].then(|| {
            let shape = g.shape(q).to_vec();
            grad_q_gemm(maps, frames, joints).push(g, "aggregate_grad_q", gz, x3, None, &shape)
        });
        let gx3 = ctx.needs[1].then(|| {
            let shape = g.shape(x3).to_vec();
            grad_x3_gemm(maps, frames, joints).push(g, "aggregate_grad_x3", gz, q, None, &shape)
        });
        Ok(vec![gq, gx3])
    }
}

/// One row-major operand per (b, c): `ld` elements per row, `size` elements per product.
fn per_map(trans: bool, ld: usize, size: usize) -> Operand {
    Operand {
        trans,
        ld,
        batch_stride: size,
        kb_stride: 0,
    }
}

/// Per (b, c), a T×V map times Q or Qᵀ: both the forward and the x3 gradient are this product.
fn map_times_q(maps: usize, frames: usize, joints: usize, transpose_q: bool) -> Gemm {
    Gemm {
        m: frames,
        n: joints,
        k: joints,
        kb: 1,
        products: maps,
        a: per_map(false, joints, frames * joints),
        b: per_map(transpose_q, joints, joints * joints),
        ldc: joints,
        c_batch: frames * joints,
        bias: Bias::None,
    }
}

/// Z_bc = X3_bc·Q_bcᵀ: A = x3 (T×V), B = Q read transposed (Q[u, v] is B[v, u]).
pub fn forward_gemm(maps: usize, frames: usize, joints: usize) -> Gemm {
    map_times_q(maps, frames, joints, true)
}

/// g_x3_bc = Γ_bc·Q_bc: A = Γ (T×V over (t, u)), B = Q (V×V over (u, v)).
pub fn grad_x3_gemm(maps: usize, frames: usize, joints: usize) -> Gemm {
    map_times_q(maps, frames, joints, false)
}

/// g_Q_bc = Γ_bcᵀ·X3_bc: A = Γ read transposed (stored T×V), B = x3 (T×V), summed over t.
pub fn grad_q_gemm(maps: usize, frames: usize, joints: usize) -> Gemm {
    Gemm {
        m: joints,
        n: joints,
        k: frames,
        kb: 1,
        products: maps,
        a: per_map(true, joints, frames * joints),
        b: per_map(false, joints, frames * joints),
        ldc: joints,
        c_batch: joints * joints,
        bias: Bias::None,
    }
}

pub mod cpu {
    //! Straight from the definitions, on `maps` = B·C pairs of a V×V map and a T×V signal.

    pub fn aggregate(q: &[f64], x3: &[f64], maps: usize, frames: usize, joints: usize) -> Vec<f64> {
        let (vv, tv) = (joints * joints, frames * joints);
        let mut z = vec![0.0; maps * tv];
        for m in 0..maps {
            for t in 0..frames {
                for u in 0..joints {
                    z[m * tv + t * joints + u] = (0..joints)
                        .map(|v| q[m * vv + u * joints + v] * x3[m * tv + t * joints + v])
                        .sum();
                }
            }
        }
        z
    }

    /// (g_Q, g_x3) given the gradient `gz` of Z.
    pub fn aggregate_grad(
        q: &[f64],
        x3: &[f64],
        gz: &[f64],
        maps: usize,
        frames: usize,
        joints: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let (vv, tv) = (joints * joints, frames * joints);
        let mut gq = vec![0.0; maps * vv];
        let mut gx3 = vec![0.0; maps * tv];
        for m in 0..maps {
            for t in 0..frames {
                for u in 0..joints {
                    let gamma = gz[m * tv + t * joints + u];
                    for v in 0..joints {
                        gq[m * vv + u * joints + v] += gamma * x3[m * tv + t * joints + v];
                        gx3[m * tv + t * joints + v] += q[m * vv + u * joints + v] * gamma;
                    }
                }
            }
        }
        (gq, gx3)
    }
}
