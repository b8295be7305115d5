//! pytorch-topological's `StructureElementLayer` (as BlockGCN's `Topo` uses it) on diagrams of
//! bars born at 0: for sample n with deaths d[n, i] and element k with centre c[k] and
//! sharpness s[k], `out[n, k] = Σ_i exp(−(s_k0²·c_k0² + s_k1²·(c_k1 − d[n, i])²))`. The
//! reference's dimension column is 0 for these diagrams and adds nothing; every sample has the
//! same bar count, so nothing is padded.
//!
//! One invocation per (n, k) sums its bars serially. The gradients of the centres and the
//! sharpness are per-(n, k) partials summed over n by the fixed-order tree of `reduce.wgsl`:
//! deterministic. The deaths are data and take no gradient.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    samples: u32,
    bars: u32,
    elements: u32,
}

impl Params {
    /// From the shapes of the deaths (N, B) and the centres (K, 2).
    fn of(deaths: &[usize], centres: &[usize]) -> Self {
        Self {
            samples: deaths[0] as u32,
            bars: deaths[1] as u32,
            elements: centres[0] as u32,
        }
    }

    fn pairs(&self) -> usize {
        (self.samples * self.elements) as usize
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("structure_elements"), entry)
}

#[derive(Debug)]
struct StructureElements;

/// The gradient of the centres (`sharpness` false) or of the sharpness (`true`).
#[derive(Debug)]
struct ElementGrad {
    sharpness: bool,
}

/// The (N, K) structure-element features of `deaths` (N, B), bars born at 0, for K elements
/// with `centres` and `sharpness` (K, 2 each). Differentiable in the centres and the sharpness;
/// asking for the gradient of the deaths is an error.
pub fn structure_elements(
    g: &mut Graph,
    deaths: TensorId,
    centres: TensorId,
    sharpness: TensorId,
) -> TensorId {
    let (ds, cs) = (g.shape(deaths).to_vec(), g.shape(centres).to_vec());
    assert!(
        ds.len() == 2 && ds.iter().all(|&d| d > 0),
        "structure_elements needs non-empty (N, B) deaths, got shape {ds:?}"
    );
    assert!(
        cs.len() == 2 && cs[0] > 0 && cs[1] == 2,
        "structure_elements needs (K, 2) centres, got shape {cs:?}"
    );
    assert_eq!(
        g.shape(sharpness),
        cs,
        "structure_elements needs sharpness of the centres' shape {cs:?}"
    );
    assert!(
        u32::try_from(ds[0] * ds[1].max(2 * cs[0])).is_ok(),
        "structure_elements: deaths {ds:?} and centres {cs:?} have too many elements for u32 indices"
    );
    let out = g.activation("structure_elements", &[ds[0], cs[0]]);
    g.push(StructureElements, &[deaths, centres, sharpness], &[out]);
    out
}

impl Op for StructureElements {
    fn name(&self) -> &'static str {
        "structure_elements"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]), rec.shape(inputs[1]));
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        rec.dispatch(
            kernel("se_forward"),
            &params,
            args,
            elementwise_grid(params.pairs()),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        if ctx.needs[0] {
            return Err(AutodiffError::NotDifferentiable(
                "structure_elements (with respect to its deaths, which are data)",
            ));
        }
        let gy = ctx.grads[0].expect("structure_elements has one output");
        let mut grad = |sharpness: bool| {
            let like = ctx.inputs[if sharpness { 2 } else { 1 }];
            let out = g.activation_like("structure_elements_grad", like);
            let inputs = [ctx.inputs[0], ctx.inputs[1], ctx.inputs[2], gy];
            g.push(ElementGrad { sharpness }, &inputs, &[out]);
            out
        };
        let gc = ctx.needs[1].then(|| grad(false));
        let gs = ctx.needs[2].then(|| grad(true));
        Ok(vec![None, gc, gs])
    }
}

impl Op for ElementGrad {
    fn name(&self) -> &'static str {
        "structure_elements_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]), rec.shape(inputs[1]));
        let partial = Arg::Scratch {
            slot: 1,
            bytes: 4 * 2 * params.pairs() as u64,
        };
        let args = inputs
            .iter()
            .copied()
            .map(arg)
            .chain([partial.clone()])
            .collect();
        rec.dispatch(
            kernel("se_partials").with("SHARPNESS", self.sharpness),
            &params,
            args,
            elementwise_grid(params.pairs()),
        );
        let (n, k2) = (params.samples as usize, 2 * params.elements as usize);
        record_sum(
            rec,
            &AxisSplit::new(&[n, k2], &[0]),
            Summand::Value,
            partial,
            None,
            None,
            1.0,
            arg(outputs[0]),
            0,
        );
    }
}

pub mod cpu {
    //! f64 references as the reference layer's arithmetic: deaths (N, B), centres and
    //! sharpness (K, 2), features (N, K).

    /// Every bar of a 0-dimensional Vietoris–Rips diagram is born at 0.
    const BIRTH: f64 = 0.0;

    /// Per (n, k) and bar i: the factor e = exp(−q) and u = (c0 − birth, c1 − d[n, i]).
    fn terms<'a>(
        deaths: &'a [f64],
        bars: usize,
        centres: &'a [f64],
        sharpness: &'a [f64],
        n: usize,
        k: usize,
    ) -> impl Iterator<Item = (f64, [f64; 2])> + 'a {
        let (c, s) = (&centres[2 * k..2 * k + 2], &sharpness[2 * k..2 * k + 2]);
        deaths[n * bars..(n + 1) * bars].iter().map(move |&d| {
            let u = [c[0] - BIRTH, c[1] - d];
            let q = s[0].powi(2) * u[0].powi(2) + s[1].powi(2) * u[1].powi(2);
            ((-q).exp(), u)
        })
    }

    /// out[n, k] = Σ_i exp(−(s_k0²·c_k0² + s_k1²·(c_k1 − d[n, i])²)).
    pub fn forward(deaths: &[f64], bars: usize, centres: &[f64], sharpness: &[f64]) -> Vec<f64> {
        let (samples, elements) = (deaths.len() / bars, centres.len() / 2);
        (0..samples * elements)
            .map(|at| {
                terms(
                    deaths,
                    bars,
                    centres,
                    sharpness,
                    at / elements,
                    at % elements,
                )
                .map(|(e, _)| e)
                .sum()
            })
            .collect()
    }

    /// Gradients of Σ gy ⊙ `forward` with respect to the centres and the sharpness (K, 2 each):
    /// ∂e/∂c_j = −2·e·s_j²·u_j, ∂e/∂s_j = −2·e·s_j·u_j².
    pub fn backward(
        deaths: &[f64],
        bars: usize,
        centres: &[f64],
        sharpness: &[f64],
        gy: &[f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let (samples, elements) = (deaths.len() / bars, centres.len() / 2);
        let mut gc = vec![0.0; centres.len()];
        let mut gs = vec![0.0; sharpness.len()];
        for n in 0..samples {
            for k in 0..elements {
                let g = gy[n * elements + k];
                for (e, u) in terms(deaths, bars, centres, sharpness, n, k) {
                    for j in 0..2 {
                        let s = sharpness[2 * k + j];
                        gc[2 * k + j] -= g * 2.0 * e * s * s * u[j];
                        gs[2 * k + j] -= g * 2.0 * e * s * u[j] * u[j];
                    }
                }
            }
        }
        (gc, gs)
    }
}
