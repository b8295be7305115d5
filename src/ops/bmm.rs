//! Batched matrix product with optional transposes: `op(A[z])·op(B[z])` for each of the B
//! leading indices z, one GEMM product per z. MS-AAGCN builds its Gram matrix
//! θᵀ·φ (B, V, K)·(B, K, V) and its per-sample aggregation x·A (B, C·T, V)·(B, V, V) with it.
//! The backward is two more batched products, as for `matmul`.

use super::gemm::{Bias, FLAT, Gemm, Operand};
use super::matmul::{product_dims, product_grads};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

#[derive(Debug)]
struct Bmm {
    gemm: Gemm,
    trans_a: bool,
    trans_b: bool,
}

/// `op(a[z])·op(b[z])`: `a` is (B, m, k) ((B, k, m) if `trans_a`), `b` is (B, k, n) ((B, n, k)
/// if `trans_b`); the result is (B, m, n).
pub fn bmm(g: &mut Graph, a: TensorId, b: TensorId, trans_a: bool, trans_b: bool) -> TensorId {
    let (sa, sb) = (g.shape(a).to_vec(), g.shape(b).to_vec());
    assert!(
        sa.len() == 3 && sb.len() == 3 && sa[0] == sb[0],
        "bmm takes (B, ·, ·) stacks with the same B, got {sa:?} and {sb:?}"
    );
    let (m, n, k) = product_dims("bmm", &sa, &sb, trans_a, trans_b);
    let batch = sa[0];
    assert!(batch > 0, "bmm needs at least one product");
    let gemm = Gemm {
        m,
        n,
        k,
        kb: 1,
        products: batch,
        nest: FLAT,
        a: Operand::batched(trans_a, if trans_a { m } else { k }, m * k),
        b: Operand::batched(trans_b, if trans_b { k } else { n }, k * n),
        ldc: n,
        c_batch: [m * n, 0, 0],
        bias: Bias::None,
        bias_batch: 0,
    };
    let c = g.activation("bmm", &[batch, m, n]);
    g.push(
        Bmm {
            gemm,
            trans_a,
            trans_b,
        },
        &[a, b],
        &[c],
    );
    c
}

impl Op for Bmm {
    fn name(&self) -> &'static str {
        "bmm"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        Op::record(&self.gemm, rec, inputs, outputs);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        // Per z, as for matmul.
        Ok(product_grads(g, ctx, (self.trans_a, self.trans_b), bmm))
    }
}

pub mod cpu {
    use crate::ops::matmul::cpu::matmul;

    /// `op(a[z])·op(b[z])` for `batch` stacked row-major matrices, m×k (or k×m) by k×n (or n×k).
    pub fn bmm(
        a: &[f64],
        b: &[f64],
        batch: usize,
        (m, n, k): (usize, usize, usize),
        trans_a: bool,
        trans_b: bool,
    ) -> Vec<f64> {
        (0..batch)
            .flat_map(|z| {
                let az = &a[z * m * k..(z + 1) * m * k];
                let bz = &b[z * k * n..(z + 1) * k * n];
                matmul(az, bz, (m, n, k), trans_a, trans_b)
            })
            .collect()
    }
}
