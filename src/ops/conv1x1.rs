//! 1×1 convolution over (B, C_in, ...) → (B, C_out, ...): per position a C_out×C_in matrix
//! product plus bias, optionally in G groups as PyTorch's `groups` (group s maps input channels
//! [s·C_in/G, (s + 1)·C_in/G) to output channels [s·C_out/G, (s + 1)·C_out/G) with its own
//! weights). Forward is a batched NN GEMM (W_s·X_bs), the data gradient a batched TN GEMM
//! (W_sᵀ·gY_bs), the weight gradient an NT GEMM summed over the batch (Σ_b gY_bs·X_bsᵀ, split
//! along k for parallelism when there is one group) and the bias gradient a sum over batch and
//! positions.

use super::arg;
use super::gemm::{Bias, FLAT, Gemm, Operand, nested_by};
use super::reduce;
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

/// A convolution's extents per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub groups: usize,
    /// Input channels per group.
    pub cin: usize,
    /// Output channels per group.
    pub cout: usize,
    /// Positions per channel.
    pub points: usize,
}

#[derive(Debug)]
struct Conv1x1 {
    gemm: Gemm,
    batch: usize,
    dims: Dims,
}

/// `y[b, o, ...] = Σ_i w[o, i]·x[b, i, ...] + bias[o]`. `w` is (C_out, C_in) or PyTorch's
/// (C_out, C_in, 1, 1); `bias` is (C_out).
pub fn conv1x1(g: &mut Graph, x: TensorId, w: TensorId, bias: Option<TensorId>) -> TensorId {
    conv1x1_grouped(g, x, w, bias, 1)
}

/// [`conv1x1`] in `groups` groups: `w` is (C_out, C_in/G[, 1, 1]), PyTorch's grouped weight.
pub fn conv1x1_grouped(
    g: &mut Graph,
    x: TensorId,
    w: TensorId,
    bias: Option<TensorId>,
    groups: usize,
) -> TensorId {
    let xs = g.shape(x).to_vec();
    let ws = g.shape(w).to_vec();
    assert!(xs.len() >= 2, "conv1x1 input needs (B, C, ...)");
    assert!(
        ws.len() >= 2 && ws[2..].iter().all(|&d| d == 1),
        "conv1x1 weight must be (C_out, C_in[, 1, 1]), got {ws:?}"
    );
    let (batch, cin, cout) = (xs[0], xs[1], ws[0]);
    assert!(
        groups > 0 && cin.is_multiple_of(groups) && cout.is_multiple_of(groups),
        "{groups} groups do not divide {cin} input and {cout} output channels"
    );
    assert_eq!(
        ws[1],
        cin / groups,
        "conv1x1 weight {ws:?} does not take {cin} channels in {groups} groups"
    );
    if let Some(b) = bias {
        assert_eq!(g.shape(b), [cout], "conv1x1 bias must be (C_out)");
    }
    let dims = Dims {
        groups,
        cin: cin / groups,
        cout: cout / groups,
        points: xs[2..].iter().product(),
    };
    let gemm = forward_gemm(batch, dims, bias.is_some());
    let mut ys = xs.clone();
    ys[1] = cout;
    let y = g.activation("conv1x1", &ys);
    let inputs: Vec<TensorId> = [x, w].into_iter().chain(bias).collect();
    g.push(Conv1x1 { gemm, batch, dims }, &inputs, &[y]);
    y
}

impl Op for Conv1x1 {
    fn name(&self) -> &'static str {
        "conv1x1"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        // The product is W·X_b: the weight is operand A.
        let bias = inputs.get(2).copied().map(arg);
        let (x, w) = (arg(inputs[0]), arg(inputs[1]));
        self.gemm.record(rec, w, x, bias, arg(outputs[0]));
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("conv1x1 has one output");
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let (batch, dims) = (self.batch, self.dims);
        let gx = ctx.needs[0].then(|| {
            let shape = g.shape(x).to_vec();
            grad_input_gemm(batch, dims).push(g, "conv1x1_grad_input", w, gy, None, &shape)
        });
        let gw = ctx.needs[1].then(|| {
            let shape = g.shape(w).to_vec();
            grad_weight_gemm(batch, dims).push(g, "conv1x1_grad_weight", gy, x, None, &shape)
        });
        let mut grads = vec![gx, gw];
        if ctx.inputs.len() == 3 {
            grads.push(ctx.needs[2].then(|| {
                let rank = g.shape(gy).len();
                let axes: Vec<usize> = [0].into_iter().chain(2..rank).collect();
                reduce::sum(g, gy, &axes)
            }));
        }
        Ok(grads)
    }
}

/// Strides over products z = b·G + s of a tensor with `size` elements per group and sample.
fn group_strides(size: usize, groups: usize) -> [usize; 3] {
    [size, groups * size, 0]
}

/// An operand of `size` elements per group and sample, `ld` per row.
fn grouped(trans: bool, ld: usize, size: usize, groups: usize) -> Operand {
    Operand {
        batch: group_strides(size, groups),
        ..Operand::rows(trans, ld)
    }
}

/// Forward product W_s·X_bs for each sample b and group s: A = W_s (C_out×C_in per group),
/// B = X_bs (C_in×P).
pub fn forward_gemm(batch: usize, dims: Dims, bias: bool) -> Gemm {
    let Dims {
        groups,
        cin,
        cout,
        points,
    } = dims;
    Gemm {
        m: cout,
        n: points,
        k: cin,
        kb: 1,
        products: batch * groups,
        nest: nested_by(groups),
        a: Operand::batched(false, cin, cout * cin),
        b: grouped(false, points, cin * points, groups),
        ldc: points,
        c_batch: group_strides(cout * points, groups),
        bias: if bias { Bias::PerRow } else { Bias::None },
        bias_batch: cout,
    }
}

/// Data gradient W_sᵀ·gY_bs for each sample and group (TN): A = W_s read transposed, B = gY_bs.
pub fn grad_input_gemm(batch: usize, dims: Dims) -> Gemm {
    let Dims {
        groups,
        cin,
        cout,
        points,
    } = dims;
    Gemm {
        m: cin,
        n: points,
        k: cout,
        kb: 1,
        products: batch * groups,
        nest: nested_by(groups),
        a: Operand::batched(true, cin, cout * cin),
        b: grouped(false, points, cout * points, groups),
        ldc: points,
        c_batch: group_strides(cin * points, groups),
        bias: Bias::None,
        bias_batch: 0,
    }
}

/// Weight gradient Σ_b gY_bs·X_bsᵀ for each group s (NT, summed over the batch): A = gY_bs,
/// B = X_bs transposed.
pub fn grad_weight_gemm(batch: usize, dims: Dims) -> Gemm {
    let Dims {
        groups,
        cin,
        cout,
        points,
    } = dims;
    Gemm {
        m: cout,
        n: cin,
        k: points,
        kb: batch,
        products: groups,
        nest: FLAT,
        a: Operand {
            kb_stride: groups * cout * points,
            ..Operand::batched(false, points, cout * points)
        },
        b: Operand {
            kb_stride: groups * cin * points,
            ..Operand::batched(true, points, cin * points)
        },
        ldc: cin,
        c_batch: [cout * cin, 0, 0],
        bias: Bias::None,
        bias_batch: 0,
    }
}

pub mod cpu {
    /// `x`: (B, C_in, P) flattened, `w`: (C_out, C_in), `bias`: (C_out).
    pub fn conv1x1(
        x: &[f64],
        w: &[f64],
        bias: Option<&[f64]>,
        (batch, cin, cout, points): (usize, usize, usize, usize),
    ) -> Vec<f64> {
        let mut y = vec![0.0; batch * cout * points];
        for b in 0..batch {
            for o in 0..cout {
                for p in 0..points {
                    let acc: f64 = (0..cin)
                        .map(|i| w[o * cin + i] * x[(b * cin + i) * points + p])
                        .sum();
                    y[(b * cout + o) * points + p] = acc + bias.map_or(0.0, |v| v[o]);
                }
            }
        }
        y
    }
}
