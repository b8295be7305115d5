//! Linear layer on (N, C_in) rows: y = x·Wᵀ + b with PyTorch's (C_out, C_in) weight. Forward is
//! an NT GEMM, the data gradient NN (gY·W), the weight gradient TN (gYᵀ·x), the bias gradient a
//! column sum.

use super::gemm::{Bias, Gemm};
use super::reduce;
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

#[derive(Debug)]
struct Linear {
    gemm: Gemm,
    rows: usize,
    cin: usize,
    cout: usize,
}

/// `x·wᵀ + bias` for `x` (N, C_in), `w` (C_out, C_in), `bias` (C_out).
pub fn linear(g: &mut Graph, x: TensorId, w: TensorId, bias: Option<TensorId>) -> TensorId {
    let (xs, ws) = (g.shape(x).to_vec(), g.shape(w).to_vec());
    assert!(
        xs.len() == 2 && ws.len() == 2,
        "linear takes (N, C_in) and (C_out, C_in)"
    );
    let (rows, cin, cout) = (xs[0], xs[1], ws[0]);
    assert_eq!(
        ws[1], cin,
        "linear weight {ws:?} does not take {cin} features"
    );
    if let Some(b) = bias {
        assert_eq!(g.shape(b), [cout], "linear bias must be (C_out)");
    }
    let gemm = Gemm {
        bias: if bias.is_some() {
            Bias::PerColumn
        } else {
            Bias::None
        },
        ..Gemm::matrices(rows, cout, cin, false, true)
    };
    let y = g.activation("linear", &[rows, cout]);
    let inputs: Vec<TensorId> = [x, w].into_iter().chain(bias).collect();
    g.push(
        Linear {
            gemm,
            rows,
            cin,
            cout,
        },
        &inputs,
        &[y],
    );
    y
}

impl Op for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        Op::record(&self.gemm, rec, inputs, outputs);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("linear has one output");
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let (rows, cin, cout) = (self.rows, self.cin, self.cout);
        let gx = ctx.needs[0].then(|| {
            Gemm::matrices(rows, cin, cout, false, false).push(
                g,
                "linear_grad_input",
                gy,
                w,
                None,
                &[rows, cin],
            )
        });
        let gw = ctx.needs[1].then(|| {
            Gemm::matrices(cout, cin, rows, true, false).push(
                g,
                "linear_grad_weight",
                gy,
                x,
                None,
                &[cout, cin],
            )
        });
        let mut grads = vec![gx, gw];
        if ctx.inputs.len() == 3 {
            grads.push(ctx.needs[2].then(|| reduce::sum(g, gy, &[0])));
        }
        Ok(grads)
    }
}

pub mod cpu {
    /// `x·wᵀ + bias` for `x` (N, C_in), `w` (C_out, C_in).
    pub fn linear(
        x: &[f64],
        w: &[f64],
        bias: Option<&[f64]>,
        (rows, cin, cout): (usize, usize, usize),
    ) -> Vec<f64> {
        let mut y = vec![0.0; rows * cout];
        for r in 0..rows {
            for o in 0..cout {
                let acc: f64 = (0..cin).map(|i| x[r * cin + i] * w[o * cin + i]).sum();
                y[r * cout + o] = acc + bias.map_or(0.0, |b| b[o]);
            }
        }
        y
    }
}
