//! Dropout in training, `nn.Dropout(p)` as ProtoGCN's prototype reconstruction applies it, from
//! the engine's noise inputs: the training step fills them with N(0, 1) draws
//! (`ModelOutput::noise`), and an element is kept where its draw is at least Φ⁻¹(p), which
//! happens with probability 1 − p. Kept elements are scaled by 1/(1 − p): y = x·keep/(1 − p),
//! and the backward is the same map of the incoming gradient, g·keep/(1 − p). The noise takes no
//! gradient.
//!
//! The scale is PyTorch's CPU one, `1.0f32 / f32(1 − p)` with 1 − p formed in f64 from the
//! decimal `p` prints as (p = 0.45 gives 1.8181818, where f32(1/(1 − p)) would be 1.8181819), so
//! that a recorded mask reproduces PyTorch's outputs bit for bit.
//!
//! **Feeding a recorded PyTorch mask.** Noise [`KEPT`] (+8) where PyTorch kept an element and
//! [`DROPPED`] (−8) where it dropped one ([`recorded_noise`]): every p in (Φ(−8), Φ(8)), that is
//! 6.2e-16 < p < 1 − 6.2e-16, puts Φ⁻¹(p) in (−8, 8), so the kernel keeps exactly the recorded
//! elements. `TrainStep::fix_noise` feeds such values at every step.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Noise that keeps an element at any p below 1 − 6.2e-16.
pub const KEPT: f32 = 8.0;
/// Noise that drops an element at any p above 6.2e-16.
pub const DROPPED: f32 = -8.0;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    threshold: f32,
    scale: f32,
}

#[derive(Debug, Clone, Copy)]
struct Dropout {
    threshold: f32,
    scale: f32,
}

/// `x·keep/(1 − p)` with keep = (noise ≥ Φ⁻¹(p)), for `noise` of `x`'s shape (an N(0, 1) noise
/// input in training) and 0 ≤ p < 1. Asking for the noise's gradient is an error.
pub fn dropout(g: &mut Graph, x: TensorId, noise: TensorId, p: f32) -> TensorId {
    let shape = g.shape(x).to_vec();
    assert_eq!(
        g.shape(noise),
        shape,
        "dropout needs noise of the input's shape {shape:?}, got {:?}",
        g.shape(noise)
    );
    assert!(
        u32::try_from(g.numel(x)).is_ok(),
        "dropout: shape {shape:?} has too many elements for u32 indices"
    );
    assert!(
        (0.0..1.0).contains(&p),
        "dropout needs a probability 0 ≤ p < 1, got {p}"
    );
    let y = g.activation("dropout", &shape);
    let op = Dropout {
        threshold: keep_threshold(p),
        scale: scale(p),
    };
    g.push(op, &[x, noise], &[y]);
    y
}

/// `p` as the decimal it prints as: 0.45f32 is 0.449999988… in binary, and PyTorch's 1 − p
/// starts from the Python float 0.45.
fn decimal(p: f32) -> f64 {
    p.to_string()
        .parse()
        .expect("a float's display parses as f64")
}

/// The scale of kept elements, PyTorch's CPU `noise.div_(1 - p)`: f32 division of 1 by 1 − p.
pub fn scale(p: f32) -> f32 {
    1.0 / (1.0 - decimal(p)) as f32
}

/// The smallest N(0, 1) draw that keeps an element, Φ⁻¹(p) rounded to f32 (at ProtoGCN's
/// p = 0.1 that moves the drop probability by at most 1.3e-7 relative); every finite draw keeps
/// at p = 0.
pub fn keep_threshold(p: f32) -> f32 {
    if p == 0.0 {
        -f32::MAX
    } else {
        normal_quantile(decimal(p)) as f32
    }
}

/// Noise that makes the kernel keep exactly the elements `kept` marks (see the module docs).
pub fn recorded_noise(kept: &[bool]) -> Vec<f32> {
    kept.iter()
        .map(|&k| if k { KEPT } else { DROPPED })
        .collect()
}

/// Coefficients of AS241's rational approximations, constant term first: the numerator and
/// denominator for |p − 0.5| ≤ 0.425 in r = 0.180625 − (p − 0.5)², then for the tails in
/// r = √(−ln(min(p, 1 − p))) − 1.6 where that root is at most 5, and in the root − 5 beyond.
const CENTRAL: [[f64; 8]; 2] = [
    [
        3.3871328727963665,
        133.14166789178438,
        1971.5909503065513,
        13731.69376550946,
        45921.95393154987,
        67265.7709270087,
        33430.57558358813,
        2509.0809287301227,
    ],
    [
        1.0,
        42.31333070160091,
        687.1870074920579,
        5394.196021424751,
        21213.794301586597,
        39307.89580009271,
        28729.085735721943,
        5226.495278852854,
    ],
];
const NEAR_TAIL: [[f64; 8]; 2] = [
    [
        1.4234371107496835,
        4.630337846156546,
        5.769497221460691,
        3.6478483247632045,
        1.2704582524523684,
        0.2417807251774506,
        0.022723844989269184,
        0.0007745450142783414,
    ],
    [
        1.0,
        2.053191626637759,
        1.6763848301838038,
        0.6897673349851,
        0.14810397642748008,
        0.015198666563616457,
        0.0005475938084995345,
        1.0507500716444169e-9,
    ],
];
const FAR_TAIL: [[f64; 8]; 2] = [
    [
        6.657904643501103,
        5.463784911164114,
        1.7848265399172913,
        0.29656057182850487,
        0.026532189526576124,
        0.0012426609473880784,
        2.7115555687434876e-5,
        2.0103343992922881e-7,
    ],
    [
        1.0,
        0.599832206555888,
        0.1369298809227358,
        0.014875361290850615,
        0.0007868691311456133,
        1.8463183175100548e-5,
        1.421511758316446e-7,
        2.0442631033899397e-15,
    ],
];

/// Φ⁻¹(p), the standard normal quantile: Wichura's algorithm AS241 (PPND16, Applied Statistics
/// 37, 1988), rational approximations accurate to about 1e-16 relative, so no refinement step
/// is needed. ±∞ at p = 0 and 1, NaN outside [0, 1].
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        return q * rational(&CENTRAL, 0.180625 - q * q);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let x = if r <= 5.0 {
        rational(&NEAR_TAIL, r - 1.6)
    } else if r.is_finite() {
        rational(&FAR_TAIL, r - 5.0)
    } else {
        f64::INFINITY
    };
    if q < 0.0 { -x } else { x }
}

/// num(r)/den(r), each by Horner's rule.
fn rational([num, den]: &[[f64; 8]; 2], r: f64) -> f64 {
    let horner = |c: &[f64; 8]| c.iter().rev().fold(0.0, |acc, &ci| acc * r + ci);
    horner(num) / horner(den)
}

impl Op for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        let params = Params {
            n: n as u32,
            threshold: self.threshold,
            scale: self.scale,
        };
        rec.dispatch(
            Kernel::new(shader!("dropout"), "dropout_apply"),
            &params,
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(n),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        if ctx.needs[1] {
            return Err(AutodiffError::NotDifferentiable(
                "dropout (with respect to its noise)",
            ));
        }
        let gy = ctx.grads[0].expect("dropout has one output");
        // The map is linear in x: its gradient is the same dropout of g.
        let gx = g.activation_like("dropout_grad", gy);
        g.push(*self, &[gy, ctx.inputs[1]], &[gx]);
        Ok(vec![Some(gx), None])
    }
}

pub mod cpu {
    //! f64 reference, elementwise, from the definition of `nn.Dropout(p)` in training.

    use super::normal_quantile;

    /// x·keep/(1 − p) with keep = (noise ≥ Φ⁻¹(p)). Also the gradient, with g for x.
    pub fn forward(x: &[f64], noise: &[f64], p: f64) -> Vec<f64> {
        let threshold = normal_quantile(p);
        x.iter()
            .zip(noise)
            .map(|(&x, &z)| if z >= threshold { x / (1.0 - p) } else { 0.0 })
            .collect()
    }
}
