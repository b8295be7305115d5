//! ProtoGCN's class memory, the centroids its class-specific contrastive loss scores features
//! against (`Class_Specific_Contrastive_Loss.get_mask` and `local_average`).
//!
//! [`true_positive_mask`] marks, per sample, its label where the prediction (the first maximum
//! of the logits, as torch's `max(1)`) is right and the label's softmax probability exceeds the
//! official `pred_threshold` 0. It has no backward: it is piecewise constant in the logits.
//!
//! [`class_memory`] blends a (D, K) memory with this batch's mean feature of each class's true
//! positives. With s_k = Σ_b mask[b, k], f_mask[d, k] = Σ_b f[b, d]·mask[b, k]/(s_k + 1e-12) and
//! h_k = momentum where s_k > 1e-8, 1 elsewhere, the output is
//! f_mem = memory·h + (1 − h)·f_mask. In training the memory, a `g.state` tensor, then becomes
//! f_mem (the official `self.avg_f = f_mem` under `no_grad`), so a class without true positives
//! keeps its memory; in evaluation the memory is only read. Backward to f only,
//! g_f[b, d] = Σ_k g[d, k]·(1 − h_k)·mask[b, k]/(s_k + 1e-12); the memory is detached, as the
//! official `avg_f.detach()`, and asking for its gradient is an error. A mask made by
//! [`true_positive_mask`] takes no gradient either (it has none); any other mask that needs one
//! is an error.
//!
//! The class counts are a small first dispatch into scratch; every sum is a serial loop in a
//! fixed order (no float atomics). The training update is a dispatch of its own after the output
//! is complete, so no invocation reads a memory value another has already overwritten; anything
//! that reads the memory later in the same step sees the new values.

use bytemuck::{Pod, Zeroable};

use super::batch_norm::Mode;
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, DType, GradContext, Graph, Op, Recorder, Role, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Added to the class counts before dividing, as the official `mask_sum + 1e-12`.
pub const COUNT_EPS: f32 = 1e-12;
/// Classes whose count exceeds this take the batch mean into the blend (`mask_sum > 1e-8`).
pub const PRESENT: f32 = 1e-8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    features: u32,
    classes: u32,
    momentum: f32,
}

impl Params {
    fn counts(&self) -> Arg {
        Arg::Scratch {
            slot: 0,
            bytes: 4 * u64::from(self.classes),
        }
    }

    /// Records the class counts of `mask` into scratch.
    fn record_counts(&self, rec: &mut Recorder<'_>, mask: TensorId) {
        rec.dispatch(
            kernel("cm_counts"),
            self,
            vec![arg(mask), self.counts()],
            elementwise_grid(self.classes as usize),
        );
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("class_memory"), entry)
}

fn check_u32(what: &str, elements: usize) {
    assert!(
        u32::try_from(elements).is_ok(),
        "{what}: {elements} elements are too many for u32 indices"
    );
}

#[derive(Debug)]
struct TruePositiveMask;

#[derive(Debug)]
struct ClassMemory {
    momentum: f32,
    mode: Mode,
}

#[derive(Debug)]
struct ClassMemoryGrad {
    momentum: f32,
}

/// The (B, K) 0/1 mask of true positives of `logits` (B, K) for the u32 `labels` (B): 1 at
/// [b, label_b] where the first maximum of logits[b] is at label_b and softmax(logits[b])
/// [label_b] > 0 (always, unless a logit is not finite), 0 elsewhere and for labels ≥ K.
pub fn true_positive_mask(g: &mut Graph, logits: TensorId, labels: TensorId) -> TensorId {
    let shape = g.shape(logits).to_vec();
    assert_eq!(
        shape.len(),
        2,
        "true_positive_mask takes (B, K) logits, got {shape:?}"
    );
    assert_eq!(
        g.shape(labels),
        [shape[0]],
        "true_positive_mask: one label per row of the {shape:?} logits"
    );
    assert_eq!(
        g.tensor(labels).dtype,
        DType::U32,
        "true_positive_mask: labels are u32"
    );
    check_u32("true_positive_mask", shape[0] * shape[1]);
    let mask = g.activation("true_positive_mask", &shape);
    g.push(TruePositiveMask, &[logits, labels], &[mask]);
    mask
}

/// f_mem (D, K) of the features `f` (B, D), the (B, K) `mask` of the samples to average per
/// class, and `memory` (D, K) with the given momentum (ProtoGCN: 0.9). In `Mode::Train` the
/// memory must be a `g.state` tensor and is overwritten with f_mem; in `Mode::Eval` it is only
/// read.
pub fn class_memory(
    g: &mut Graph,
    f: TensorId,
    mask: TensorId,
    memory: TensorId,
    momentum: f32,
    mode: Mode,
) -> TensorId {
    let (fs, ms) = (g.shape(f).to_vec(), g.shape(mask).to_vec());
    assert_eq!(
        fs.len(),
        2,
        "class_memory takes (B, D) features, got {fs:?}"
    );
    assert!(
        ms.len() == 2 && ms[0] == fs[0],
        "class_memory needs a ({}, K) mask, got {ms:?}",
        fs[0]
    );
    let (d, k) = (fs[1], ms[1]);
    assert_eq!(
        g.shape(memory),
        [d, k],
        "class_memory needs a ({d}, {k}) memory"
    );
    assert!(
        momentum.is_finite(),
        "class_memory needs a finite momentum, got {momentum}"
    );
    if mode == Mode::Train {
        assert_eq!(
            g.tensor(memory).role,
            Role::State,
            "training class_memory overwrites `{}`, which must be a state tensor",
            g.tensor(memory).name
        );
    }
    check_u32("class_memory", (fs[0] * d).max(fs[0] * k).max(d * k));
    let out = g.activation("class_memory", &[d, k]);
    g.push(ClassMemory { momentum, mode }, &[f, mask, memory], &[out]);
    out
}

/// Whether `t` is the output of a [`true_positive_mask`] node.
fn is_true_positive_mask(g: &Graph, t: TensorId) -> bool {
    g.nodes()
        .iter()
        .any(|n| n.outputs.contains(&t) && n.op.name() == "true_positive_mask")
}

impl Op for TruePositiveMask {
    fn name(&self) -> &'static str {
        "true_positive_mask"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let shape = rec.shape(inputs[0]);
        let params = Params {
            batch: shape[0] as u32,
            features: 0,
            classes: shape[1] as u32,
            momentum: 0.0,
        };
        rec.dispatch(
            kernel("tpm_mask"),
            &params,
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(params.batch as usize),
        );
    }
}

fn class_params(rec: &Recorder<'_>, f: TensorId, mask: TensorId, momentum: f32) -> Params {
    let (fs, ms) = (rec.shape(f), rec.shape(mask));
    Params {
        batch: fs[0] as u32,
        features: fs[1] as u32,
        classes: ms[1] as u32,
        momentum,
    }
}

impl Op for ClassMemory {
    fn name(&self) -> &'static str {
        "class_memory"
    }

    fn has_side_effects(&self) -> bool {
        self.mode == Mode::Train
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let [f, mask, memory] = inputs.try_into().expect("3 inputs");
        let params = class_params(rec, f, mask, self.momentum);
        params.record_counts(rec, mask);
        let cells = (params.features * params.classes) as usize;
        rec.dispatch(
            kernel("cm_forward"),
            &params,
            vec![
                arg(f),
                arg(mask),
                params.counts(),
                arg(memory),
                arg(outputs[0]),
            ],
            elementwise_grid(cells),
        );
        if self.mode == Mode::Train {
            rec.dispatch(
                kernel("cm_store"),
                &params,
                vec![arg(outputs[0]), arg(memory)],
                elementwise_grid(cells),
            );
        }
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let [f, mask, _] = ctx.inputs.try_into().expect("3 inputs");
        if ctx.needs[2] {
            return Err(AutodiffError::NotDifferentiable(
                "class_memory (with respect to its memory)",
            ));
        }
        if ctx.needs[1] && !is_true_positive_mask(g, mask) {
            return Err(AutodiffError::NotDifferentiable(
                "class_memory (with respect to a mask not made by true_positive_mask)",
            ));
        }
        let gy = ctx.grads[0].expect("class_memory has one output");
        let gf = ctx.needs[0].then(|| {
            let gf = g.activation_like("class_memory_grad", f);
            let op = ClassMemoryGrad {
                momentum: self.momentum,
            };
            g.push(op, &[f, mask, gy], &[gf]);
            gf
        });
        Ok(vec![gf, None, None])
    }
}

impl Op for ClassMemoryGrad {
    fn name(&self) -> &'static str {
        "class_memory_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let [f, mask, gy] = inputs.try_into().expect("3 inputs");
        let params = class_params(rec, f, mask, self.momentum);
        params.record_counts(rec, mask);
        rec.dispatch(
            kernel("cm_backward"),
            &params,
            vec![arg(mask), params.counts(), arg(gy), arg(outputs[0])],
            elementwise_grid((params.batch * params.features) as usize),
        );
    }
}

pub mod cpu {
    //! f64 references from the official code: f (B, D), mask and logits (B, K), memory (D, K),
    //! all contiguous.

    use super::{COUNT_EPS, PRESENT};

    /// `lbl_one * pred_one * (softmax(logits) > 0)`, with torch's `max(1)`: the first maximum,
    /// a NaN counting as larger than every number.
    pub fn true_positive_mask(logits: &[f64], labels: &[u32]) -> Vec<f64> {
        let classes = logits.len() / labels.len();
        let mut mask = vec![0.0; logits.len()];
        for ((row, &label), out) in logits
            .chunks(classes)
            .zip(labels)
            .zip(mask.chunks_mut(classes))
        {
            let pred = (0..classes).fold(0, |best, k| {
                let (v, top) = (row[k], row[best]);
                if v > top || (v.is_nan() && !top.is_nan()) {
                    k
                } else {
                    best
                }
            });
            let top = row[pred];
            let total: f64 = row.iter().map(|v| (v - top).exp()).sum();
            let label = label as usize;
            if label == pred && (row[label] - top).exp() / total > 0.0 {
                out[label] = 1.0;
            }
        }
        mask
    }

    /// Per class: the count s_k and the memory's weight h_k.
    fn classes(mask: &[f64], classes: usize, momentum: f64) -> Vec<(f64, f64)> {
        (0..classes)
            .map(|k| {
                let s: f64 = mask.iter().skip(k).step_by(classes).sum();
                let h = if s > f64::from(PRESENT) {
                    momentum
                } else {
                    1.0
                };
                (s, h)
            })
            .collect()
    }

    /// f_mem = memory·h + (1 − h)·f_mask, (D, K), for `batch` rows of f and mask.
    pub fn class_memory(
        f: &[f64],
        mask: &[f64],
        memory: &[f64],
        batch: usize,
        momentum: f64,
    ) -> Vec<f64> {
        let (d_len, k_len) = (f.len() / batch, mask.len() / batch);
        let weights = classes(mask, k_len, momentum);
        let mut out = vec![0.0; d_len * k_len];
        for d in 0..d_len {
            for (k, &(s, h)) in weights.iter().enumerate() {
                let sum: f64 = (0..batch)
                    .map(|b| f[b * d_len + d] * mask[b * k_len + k])
                    .sum();
                let f_mask = sum / (s + f64::from(COUNT_EPS));
                out[d * k_len + k] = memory[d * k_len + k] * h + (1.0 - h) * f_mask;
            }
        }
        out
    }

    /// Gradient of [`class_memory`] with respect to f for the incoming gradient `g` (D, K):
    /// g_f[b, d] = Σ_k g[d, k]·(1 − h_k)·mask[b, k]/(s_k + 1e-12).
    pub fn class_memory_grad(mask: &[f64], g: &[f64], batch: usize, momentum: f64) -> Vec<f64> {
        let k_len = mask.len() / batch;
        let d_len = g.len() / k_len;
        let weights = classes(mask, k_len, momentum);
        let mut gf = vec![0.0; batch * d_len];
        for b in 0..batch {
            for d in 0..d_len {
                gf[b * d_len + d] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, &(s, h))| {
                        g[d * k_len + k] * (1.0 - h) * mask[b * k_len + k]
                            / (s + f64::from(COUNT_EPS))
                    })
                    .sum();
            }
        }
        gf
    }
}
