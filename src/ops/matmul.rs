//! 2-D matrix product with optional transposes: `op(A)·op(B)` where `op` transposes a
//! matrix stored the other way round.

use super::gemm::Gemm;
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

#[derive(Debug)]
struct Matmul {
    gemm: Gemm,
    trans_a: bool,
    trans_b: bool,
}

/// (m, n, k) of `op(A)·op(B)` from the last two axes of the operands' shapes.
pub(crate) fn product_dims(
    what: &str,
    sa: &[usize],
    sb: &[usize],
    trans_a: bool,
    trans_b: bool,
) -> (usize, usize, usize) {
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
    let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
    assert_eq!(k, kb, "{what} inner dimensions differ: {sa:?} · {sb:?}");
    (m, n, k)
}

/// The input gradients of `op(a)·op(b)` built with `product` (`matmul` or `bmm`):
/// dA = gC·op(B)ᵀ, stored transposed when A is; likewise dB = op(A)ᵀ·gC.
pub(crate) fn product_grads(
    g: &mut Graph,
    ctx: &GradContext<'_>,
    (ta, tb): (bool, bool),
    product: fn(&mut Graph, TensorId, TensorId, bool, bool) -> TensorId,
) -> Vec<Option<TensorId>> {
    let gc = ctx.grads[0].expect("a product has one output");
    let (a, b) = (ctx.inputs[0], ctx.inputs[1]);
    let ga = ctx.needs[0].then(|| {
        if ta {
            product(g, b, gc, tb, true)
        } else {
            product(g, gc, b, false, !tb)
        }
    });
    let gb = ctx.needs[1].then(|| {
        if tb {
            product(g, gc, a, true, ta)
        } else {
            product(g, a, gc, !ta, false)
        }
    });
    vec![ga, gb]
}

/// `op(a)·op(b)`: `a` is m×k (k×m if `trans_a`), `b` is k×n (n×k if `trans_b`).
pub fn matmul(g: &mut Graph, a: TensorId, b: TensorId, trans_a: bool, trans_b: bool) -> TensorId {
    let (sa, sb) = (g.shape(a).to_vec(), g.shape(b).to_vec());
    assert!(sa.len() == 2 && sb.len() == 2, "matmul takes matrices");
    let (m, n, k) = product_dims("matmul", &sa, &sb, trans_a, trans_b);
    let gemm = Gemm::matrices(m, n, k, trans_a, trans_b);
    let c = g.activation("matmul", &[m, n]);
    g.push(
        Matmul {
            gemm,
            trans_a,
            trans_b,
        },
        &[a, b],
        &[c],
    );
    c
}

impl Op for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        Op::record(&self.gemm, rec, inputs, outputs);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        Ok(product_grads(g, ctx, (self.trans_a, self.trans_b), matmul))
    }
}

pub mod cpu {
    /// `op(a)·op(b)` with `a` m×k (or k×m) and `b` k×n (or n×k), row-major.
    pub fn matmul(
        a: &[f64],
        b: &[f64],
        (m, n, k): (usize, usize, usize),
        trans_a: bool,
        trans_b: bool,
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|l| {
                        let av = if trans_a { a[l * m + i] } else { a[i * k + l] };
                        let bv = if trans_b { b[j * k + l] } else { b[l * n + j] };
                        av * bv
                    })
                    .sum();
            }
        }
        c
    }
}
