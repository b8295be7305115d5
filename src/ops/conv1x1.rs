//! 1×1 convolution over (B, C_in, ...) → (B, C_out, ...): per position a C_out×C_in matrix
//! product plus bias. Forward is a batched NN GEMM (W·X_b), the data gradient a batched TN GEMM
//! (Wᵀ·gY_b), the weight gradient an NT GEMM summed over the batch (Σ_b gY_b·X_bᵀ, split along k
//! for parallelism) and the bias gradient a sum over batch and positions.

use super::arg;
use super::gemm::{Bias, Gemm, Operand};
use super::reduce;
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

#[derive(Debug)]
struct Conv1x1 {
    gemm: Gemm,
    batch: usize,
    cin: usize,
    cout: usize,
    points: usize,
}

/// `y[b, o, ...] = Σ_i w[o, i]·x[b, i, ...] + bias[o]`. `w` is (C_out, C_in) or PyTorch's
/// (C_out, C_in, 1, 1); `bias` is (C_out).
pub fn conv1x1(g: &mut Graph, x: TensorId, w: TensorId, bias: Option<TensorId>) -> TensorId {
    let xs = g.shape(x).to_vec();
    let ws = g.shape(w).to_vec();
    assert!(xs.len() >= 2, "conv1x1 input needs (B, C, ...)");
    assert!(
        ws.len() >= 2 && ws[2..].iter().all(|&d| d == 1),
        "conv1x1 weight must be (C_out, C_in[, 1, 1]), got {ws:?}"
    );
    let (batch, cin, cout) = (xs[0], xs[1], ws[0]);
    assert_eq!(
        ws[1], cin,
        "conv1x1 weight {ws:?} does not take {cin} channels"
    );
    if let Some(b) = bias {
        assert_eq!(g.shape(b), [cout], "conv1x1 bias must be (C_out)");
    }
    let points: usize = xs[2..].iter().product();
    let gemm = forward_gemm(batch, cin, cout, points, bias.is_some());
    let mut ys = xs.clone();
    ys[1] = cout;
    let y = g.activation("conv1x1", &ys);
    let inputs: Vec<TensorId> = [x, w].into_iter().chain(bias).collect();
    g.push(
        Conv1x1 {
            gemm,
            batch,
            cin,
            cout,
            points,
        },
        &inputs,
        &[y],
    );
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
        let (batch, cin, cout, points) = (self.batch, self.cin, self.cout, self.points);
        let gx = ctx.needs[0].then(|| {
            let shape = g.shape(x).to_vec();
            grad_input_gemm(batch, cin, cout, points).push(
                g,
                "conv1x1_grad_input",
                w,
                gy,
                None,
                &shape,
            )
        });
        let gw = ctx.needs[1].then(|| {
            let shape = g.shape(w).to_vec();
            grad_weight_gemm(batch, cin, cout, points).push(
                g,
                "conv1x1_grad_weight",
                gy,
                x,
                None,
                &shape,
            )
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

/// Forward product W·X_b for each sample b: A = W (C_out×C_in), B = X_b (C_in×P).
pub fn forward_gemm(batch: usize, cin: usize, cout: usize, points: usize, bias: bool) -> Gemm {
    Gemm {
        m: cout,
        n: points,
        k: cin,
        kb: 1,
        products: batch,
        a: Operand::rows(false, cin),
        b: Operand {
            trans: false,
            ld: points,
            batch_stride: cin * points,
            kb_stride: 0,
        },
        ldc: points,
        c_batch: cout * points,
        bias: if bias { Bias::PerRow } else { Bias::None },
    }
}

/// Data gradient Wᵀ·gY_b for each sample (TN): A = W read transposed, B = gY_b.
pub fn grad_input_gemm(batch: usize, cin: usize, cout: usize, points: usize) -> Gemm {
    Gemm {
        m: cin,
        n: points,
        k: cout,
        kb: 1,
        products: batch,
        a: Operand::rows(true, cin),
        b: Operand {
            trans: false,
            ld: points,
            batch_stride: cout * points,
            kb_stride: 0,
        },
        ldc: points,
        c_batch: cin * points,
        bias: Bias::None,
    }
}

/// Weight gradient Σ_b gY_b·X_bᵀ (NT, summed over the batch): A = gY_b, B = X_b transposed.
pub fn grad_weight_gemm(batch: usize, cin: usize, cout: usize, points: usize) -> Gemm {
    Gemm {
        m: cout,
        n: cin,
        k: points,
        kb: batch,
        products: 1,
        a: Operand {
            trans: false,
            ld: points,
            batch_stride: 0,
            kb_stride: cout * points,
        },
        b: Operand {
            trans: true,
            ld: points,
            batch_stride: 0,
            kb_stride: cin * points,
        },
        ldc: cin,
        c_batch: 0,
        bias: Bias::None,
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
