//! InfoGCN's MMD term (`get_mmd_loss`): the mean squared error between the mean feature of each
//! class present in the batch and that class's prior row,
//! `Σ_{k present} Σ_d (mean_k,d − prior_k,d)² / (P·D)` over the P present classes and D features.
//! Backward: g_z[i, d] = g·2·(mean_{y_i},d − prior_{y_i},d)/(P·D·count_{y_i}); the prior is a
//! fixed buffer and gets no gradient.
//!
//! Class sums are serial loops over the rows, one invocation per (class, feature), and the loss is
//! the fixed-order tree of `reduce.wgsl`: deterministic. The backward recomputes the class means
//! instead of saving them.
//!
//! A label ≥ K belongs to no class, as in the reference (which only looks at `range(num_cls)`):
//! its row adds nothing and gets a zero gradient, and a batch with no label below K has P = 0 and
//! a NaN loss. The training step refuses such labels before a step is submitted.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, DType, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    features: u32,
}

impl Params {
    /// From the shapes of z (N, D) and the prior (K, D).
    fn of(z: &[usize], prior: &[usize]) -> Self {
        Self {
            rows: z[0] as u32,
            classes: prior[0] as u32,
            features: z[1] as u32,
        }
    }

    fn diff(&self) -> Arg {
        Arg::Scratch {
            slot: 1,
            bytes: 4 * u64::from(self.classes * self.features),
        }
    }

    fn counts(&self) -> Arg {
        Arg::Scratch {
            slot: 2,
            bytes: 4 * u64::from(self.classes),
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("class_mean_mse"), entry)
}

/// Records the class pass: per (class, feature) the difference of the class mean and the prior
/// into scratch slot 1 (squared when `square`), the class counts into slot 2.
fn record_classes(rec: &mut Recorder<'_>, params: &Params, inputs: &[TensorId], square: bool) {
    let args = vec![
        arg(inputs[0]),
        arg(inputs[1]),
        arg(inputs[2]),
        params.diff(),
        params.counts(),
    ];
    rec.dispatch(
        kernel("cmm_classes").with("SQUARE", square),
        params,
        args,
        elementwise_grid((params.classes * params.features) as usize),
    );
}

#[derive(Debug)]
struct ClassMeanMse;

#[derive(Debug)]
struct ClassMeanMseGrad;

/// The class-mean/prior MSE, shape `[1]`: `z` is (N, D), `labels` a u32 tensor of length N,
/// `prior` (K, D) with one row per class. The prior takes no gradient (asking for one is an
/// error of `Graph::backward`).
pub fn class_mean_mse(g: &mut Graph, z: TensorId, labels: TensorId, prior: TensorId) -> TensorId {
    let (zs, ps) = (g.shape(z).to_vec(), g.shape(prior).to_vec());
    assert_eq!(
        zs.len(),
        2,
        "class_mean_mse takes (N, D) features, got {zs:?}"
    );
    assert!(
        ps.len() == 2 && ps[1] == zs[1],
        "class_mean_mse needs a (K, {}) prior, got {ps:?}",
        zs[1]
    );
    assert_eq!(
        g.shape(labels),
        [zs[0]],
        "class_mean_mse: one label per row"
    );
    assert_eq!(
        g.tensor(labels).dtype,
        DType::U32,
        "class_mean_mse: labels are u32"
    );
    assert!(
        u32::try_from(zs[0].max(ps[0]) * zs[1]).is_ok(),
        "class_mean_mse: shapes {zs:?} and {ps:?} have too many elements for u32 indices"
    );
    let loss = g.activation("class_mean_mse", &[1]);
    g.push(ClassMeanMse, &[z, labels, prior], &[loss]);
    loss
}

impl Op for ClassMeanMse {
    fn name(&self) -> &'static str {
        "class_mean_mse"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]), rec.shape(inputs[2]));
        record_classes(rec, &params, inputs, true);
        let total = Arg::Scratch { slot: 3, bytes: 4 };
        let split = AxisSplit {
            kept: vec![],
            reduced: vec![((params.classes * params.features) as usize, 1)],
        };
        record_sum(
            rec,
            &split,
            Summand::Value,
            params.diff(),
            None,
            None,
            1.0,
            total.clone(),
            0,
        );
        rec.dispatch(
            kernel("cmm_finish"),
            &params,
            vec![params.counts(), total, arg(outputs[0])],
            [1, 1, 1],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        if ctx.needs[2] {
            return Err(AutodiffError::NotDifferentiable("class_mean_mse prior"));
        }
        let gloss = ctx.grads[0].expect("class_mean_mse has one output");
        let [z, labels, prior] = [ctx.inputs[0], ctx.inputs[1], ctx.inputs[2]];
        let gz = g.activation_like("class_mean_mse_grad", z);
        g.push(ClassMeanMseGrad, &[z, labels, prior, gloss], &[gz]);
        Ok(vec![Some(gz), None, None])
    }
}

impl Op for ClassMeanMseGrad {
    fn name(&self) -> &'static str {
        "class_mean_mse_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]), rec.shape(inputs[2]));
        record_classes(rec, &params, inputs, false);
        let weights = Arg::Scratch {
            slot: 3,
            bytes: 4 * u64::from(params.classes),
        };
        rec.dispatch(
            kernel("cmm_weights"),
            &params,
            vec![params.counts(), weights.clone()],
            [1, 1, 1],
        );
        rec.dispatch(
            kernel("cmm_backward"),
            &params,
            vec![
                arg(inputs[1]),
                params.diff(),
                weights,
                arg(inputs[3]),
                arg(outputs[0]),
            ],
            elementwise_grid((params.rows * params.features) as usize),
        );
    }
}

pub mod cpu {
    //! f64 references on a contiguous (N, D) `z` and (K, D) `prior`, as `get_mmd_loss` in
    //! InfoGCN's `loss.py` computes them.

    /// Per class: the row count and the mean row (`None` for a class with no row).
    fn class_means(z: &[f64], labels: &[u32], classes: usize) -> Vec<Option<(usize, Vec<f64>)>> {
        let features = z.len() / labels.len();
        (0..classes)
            .map(|k| {
                let rows: Vec<&[f64]> = labels
                    .iter()
                    .zip(z.chunks(features))
                    .filter(|(y, _)| **y as usize == k)
                    .map(|(_, row)| row)
                    .collect();
                (!rows.is_empty()).then(|| {
                    let mean = (0..features)
                        .map(|d| rows.iter().map(|r| r[d]).sum::<f64>() / rows.len() as f64)
                        .collect();
                    (rows.len(), mean)
                })
            })
            .collect()
    }

    /// `F.mse_loss(z_mean[y_valid], z_prior[y_valid])`.
    pub fn class_mean_mse(z: &[f64], labels: &[u32], prior: &[f64]) -> f64 {
        let features = z.len() / labels.len();
        let classes = prior.len() / features;
        let means = class_means(z, labels, classes);
        let present = means.iter().flatten().count();
        let squares: f64 = means
            .iter()
            .zip(prior.chunks(features))
            .filter_map(|(m, p)| m.as_ref().map(|(_, m)| (m, p)))
            .flat_map(|(m, p)| m.iter().zip(p).map(|(a, b)| (a - b) * (a - b)))
            .sum();
        squares / (present * features) as f64
    }

    /// Gradient of [`class_mean_mse`] with respect to `z`, for an incoming gradient `gloss`.
    pub fn class_mean_mse_grad(z: &[f64], labels: &[u32], prior: &[f64], gloss: f64) -> Vec<f64> {
        let features = z.len() / labels.len();
        let classes = prior.len() / features;
        let means = class_means(z, labels, classes);
        let present = means.iter().flatten().count() as f64;
        let mut g = vec![0.0; z.len()];
        for (i, &y) in labels.iter().enumerate() {
            let Some(Some((count, mean))) = means.get(y as usize) else {
                continue;
            };
            for d in 0..features {
                let diff = mean[d] - prior[y as usize * features + d];
                g[i * features + d] =
                    gloss * 2.0 * diff / (present * features as f64 * *count as f64);
            }
        }
        g
    }
}
