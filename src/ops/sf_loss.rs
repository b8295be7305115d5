//! The SF-Head losses (reference spec §3), on per-item dot products from `pair_stats` and, for
//! F-RL, the Gram matrix gram_ij = s_i·t_j from `matmul(s, t, false, true)`; the caller composes
//! them, so the backward of those ops turns the gradients below into g_s, g_t, g_a and g_F.
//!
//! Both use the paper's modified cosine (eq. 10): cos = u·v/(max(‖u‖, 1e-8)·max(‖v‖, 1e-8)) and
//! d = 1 − exp(−α(cos + 1)), a similarity with ∂d/∂cos = α(1 − d).
//!
//! - [`frl`]: F-RL, the symmetric InfoNCE over the batch with logits L_ij = κ·d(s_i, t_j).
//! - [`fcl_term`]: the per-item F-CL term ℓ(d(a_i, F_i)); the caller means over items and sums
//!   over the four F.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
use crate::shader;

/// α of the modified cosine (spec §3.5).
pub const ALPHA: f32 = 1.0;
/// τ, the F-RL temperature.
pub const TAU: f32 = 0.1;
/// m, the margin: F-CL's e^m and the F-RL logit scale κ = m/τ.
pub const MARGIN: f32 = 0.4;
/// γ, the focusing exponent of φ.
pub const GAMMA: f32 = 2.0;
/// ε, the gate of φ: it applies where min(δ, 1 − δ) > ε.
pub const EPS: f32 = 1e-4;
/// κ = m/τ, the F-RL logit scale.
pub const KAPPA: f32 = MARGIN / TAU;

/// Invocations per workgroup of the per-row/column F-RL kernels.
const LINE_WG: u32 = 64;

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("sf_loss"), entry)
}

// ---- F-RL ----

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct FrlParams {
    n: u32,
    alpha: f32,
    kappa: f32,
    _pad: u32,
}

impl FrlParams {
    /// One invocation per row and per column.
    fn line_grid(&self) -> [u32; 3] {
        grid_1d((2 * self.n).div_ceil(LINE_WG))
    }
}

#[derive(Debug)]
struct Frl {
    alpha: f32,
    kappa: f32,
}

#[derive(Debug)]
struct FrlGradGram(FrlParams);

#[derive(Debug)]
struct FrlGradNorms(FrlParams);

/// F-RL, shape `[1]`: with L_ij = κ·d_ij and cos_ij = gram_ij/(n_s,i·n_t,j), n = max(√ss, 1e-8),
/// L_red = (1/2N)·Σ_i [logΣ_j e^{L_ij} − L_ii] + (1/2N)·Σ_j [logΣ_i e^{L_ij} − L_jj].
/// `gram` is (N, N) with gram_ij = s_i·t_j, `ss` and `tt` are the (N) squared norms s_i·s_i and
/// t_j·t_j. The 2N log-sum-exps are a second output, kept for the backward.
pub fn frl(
    g: &mut Graph,
    gram: TensorId,
    ss: TensorId,
    tt: TensorId,
    alpha: f32,
    kappa: f32,
) -> TensorId {
    let n = g.shape(ss).first().copied().unwrap_or(0);
    assert_eq!(g.shape(ss), [n], "frl takes squared norms of shape (N)");
    assert_eq!(g.shape(tt), [n], "frl needs tt of the shape of ss, (N)");
    assert_eq!(
        g.shape(gram),
        [n, n],
        "frl needs an (N, N) Gram matrix for N = {n}"
    );
    let loss = g.activation("frl", &[1]);
    let lse = g.activation("frl.lse", &[2 * n]);
    g.push(Frl { alpha, kappa }, &[gram, ss, tt], &[loss, lse]);
    loss
}

impl Frl {
    fn params(&self, n: usize) -> FrlParams {
        FrlParams {
            n: n as u32,
            alpha: self.alpha,
            kappa: self.kappa,
            _pad: 0,
        }
    }
}

impl Op for Frl {
    fn name(&self) -> &'static str {
        "frl"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.shape(inputs[1])[0];
        let params = self.params(n);
        let terms = Arg::Scratch {
            slot: 1,
            bytes: 8 * n as u64,
        };
        let mut args: Vec<Arg> = inputs.iter().copied().map(arg).collect();
        args.extend([arg(outputs[1]), terms.clone()]);
        rec.dispatch(kernel("frl_lse"), &params, args, params.line_grid());
        let split = AxisSplit {
            kept: vec![],
            reduced: vec![(2 * n, 1)],
        };
        let scale = 1.0 / (2 * n) as f32;
        let loss = arg(outputs[0]);
        record_sum(
            rec,
            &split,
            Summand::Value,
            terms,
            None,
            None,
            scale,
            loss,
            0,
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        if ctx.grads[1].is_some() {
            return Err(AutodiffError::NotDifferentiable("frl log-sum-exps"));
        }
        let g_loss = ctx.grads[0].expect("frl's loss reaches the gradient");
        let [gram, ss, tt] = [ctx.inputs[0], ctx.inputs[1], ctx.inputs[2]];
        let params = self.params(g.shape(ss)[0]);
        let saved = [gram, ss, tt, ctx.outputs[1], g_loss];
        let g_gram = ctx.needs[0].then(|| {
            let g_gram = g.activation_like("frl_grad.gram", gram);
            g.push(FrlGradGram(params), &saved, &[g_gram]);
            g_gram
        });
        let (g_ss, g_tt) = if ctx.needs[1] || ctx.needs[2] {
            let g_ss = g.activation_like("frl_grad.ss", ss);
            let g_tt = g.activation_like("frl_grad.tt", tt);
            g.push(FrlGradNorms(params), &saved, &[g_ss, g_tt]);
            (ctx.needs[1].then_some(g_ss), ctx.needs[2].then_some(g_tt))
        } else {
            (None, None)
        };
        Ok(vec![g_gram, g_ss, g_tt])
    }
}

impl Op for FrlGradGram {
    fn name(&self) -> &'static str {
        "frl_grad_gram"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = self.0.n as usize;
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        rec.dispatch(
            kernel("frl_grad_gram"),
            &self.0,
            args,
            elementwise_grid(n * n),
        );
    }
}

impl Op for FrlGradNorms {
    fn name(&self) -> &'static str {
        "frl_grad_norms"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        rec.dispatch(kernel("frl_grad_norms"), &self.0, args, self.0.line_grid());
    }
}

// ---- F-CL ----

/// Which sign φ takes in the F-CL term (spec §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhiSign {
    /// φ(δ) = −(1 − δ)^γ·log δ ≥ 0, like a focal loss with p = δ (the default).
    Focal,
    /// φ(δ) = +(1 − δ)^γ·log δ as printed in the paper (eq. 13), which rewards δ → ε.
    Printed,
}

impl PhiSign {
    fn sign(self) -> f32 {
        match self {
            PhiSign::Focal => -1.0,
            PhiSign::Printed => 1.0,
        }
    }
}

/// Constants of the F-CL term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FclConfig {
    /// m in log(e^m + (1 − e^m)·δ).
    pub margin: f32,
    /// γ in φ.
    pub gamma: f32,
    /// α of the modified cosine.
    pub alpha: f32,
    /// φ applies only where min(δ, 1 − δ) > ε.
    pub eps: f32,
    pub phi: PhiSign,
}

impl Default for FclConfig {
    fn default() -> Self {
        Self {
            margin: MARGIN,
            gamma: GAMMA,
            alpha: ALPHA,
            eps: EPS,
            phi: PhiSign::Focal,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FclParams {
    n: u32,
    alpha: f32,
    /// e^m − 1, computed in f64
    em1: f32,
    gamma: f32,
    eps: f32,
    phi_sign: f32,
    _pad: [u32; 2],
}

impl FclParams {
    fn new(n: usize, c: &FclConfig) -> Self {
        Self {
            n: n as u32,
            alpha: c.alpha,
            em1: f64::from(c.margin).exp_m1() as f32,
            gamma: c.gamma,
            eps: c.eps,
            phi_sign: c.phi.sign(),
            _pad: [0; 2],
        }
    }
}

#[derive(Debug)]
struct FclTerm(FclConfig);

#[derive(Debug)]
struct FclTermGrad(FclConfig);

/// The F-CL term per item, shape (N): ℓ(δ_i) = log(e^m + (1 − e^m)·δ_i) + φ(δ_i) with
/// δ_i = d(a_i, F_i) from cos_i = ab_i/(max(√aa_i, 1e-8)·max(√bb_i, 1e-8)), and φ = ∓(1 − δ)^γ·log δ
/// (focal/printed) where min(δ, 1 − δ) > ε, else 0. `ab`, `aa`, `bb` are `pair_stats(a, F)`.
pub fn fcl_term(
    g: &mut Graph,
    ab: TensorId,
    aa: TensorId,
    bb: TensorId,
    config: FclConfig,
) -> TensorId {
    let shape = g.shape(ab).to_vec();
    assert_eq!(
        shape.len(),
        1,
        "fcl_term takes (N) dot products, got {shape:?}"
    );
    assert_eq!(g.shape(aa), shape, "fcl_term needs aa of the shape of ab");
    assert_eq!(g.shape(bb), shape, "fcl_term needs bb of the shape of ab");
    let loss = g.activation("fcl_term", &shape);
    g.push(FclTerm(config), &[ab, aa, bb], &[loss]);
    loss
}

impl Op for FclTerm {
    fn name(&self) -> &'static str {
        "fcl_term"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        rec.dispatch(
            kernel("fcl_forward"),
            &FclParams::new(n, &self.0),
            args,
            elementwise_grid(n),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let g_loss = ctx.grads[0].expect("fcl_term has one output");
        let grads = ["fcl_term_grad.ab", "fcl_term_grad.aa", "fcl_term_grad.bb"]
            .map(|name| g.activation_like(name, g_loss));
        let inputs = [ctx.inputs[0], ctx.inputs[1], ctx.inputs[2], g_loss];
        g.push(FclTermGrad(self.0), &inputs, &grads);
        Ok(grads
            .into_iter()
            .zip(ctx.needs)
            .map(|(t, &need)| need.then_some(t))
            .collect())
    }
}

impl Op for FclTermGrad {
    fn name(&self) -> &'static str {
        "fcl_term_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        rec.dispatch(
            kernel("fcl_backward"),
            &FclParams::new(n, &self.0),
            args,
            elementwise_grid(n),
        );
    }
}

/// f64 references written from the definitions: d from the cosine, the losses from their sums,
/// and the gradients by the chain rule through softmaxes, d and the clamped norms.
pub mod cpu {
    use super::{FclConfig, PhiSign};

    const NORM_FLOOR: f64 = 1e-8;

    /// max(√sq, 1e-8) and its derivative with respect to sq.
    fn clamped_norm(sq: f64) -> (f64, f64) {
        let n = sq.sqrt();
        if n > NORM_FLOOR {
            (n, 0.5 / n)
        } else {
            (NORM_FLOOR, 0.0)
        }
    }

    /// The modified cosine d = 1 − exp(−α(cos + 1)).
    pub fn similarity(cos: f64, alpha: f64) -> f64 {
        -(-alpha * (cos + 1.0)).exp_m1()
    }

    /// cos = uv/(n_u·n_v) and its partial derivatives with respect to uv, uu and vv.
    fn cosine(uv: f64, uu: f64, vv: f64) -> (f64, [f64; 3]) {
        let ((nu, dnu), (nv, dnv)) = (clamped_norm(uu), clamped_norm(vv));
        let cos = uv / (nu * nv);
        (cos, [1.0 / (nu * nv), -cos / nu * dnu, -cos / nv * dnv])
    }

    /// The N×N logits L_ij = κ·d(cos_ij) and ∂L_ij/∂cos_ij, row-major.
    fn logits(gram: &[f64], ss: &[f64], tt: &[f64], alpha: f64, kappa: f64) -> Vec<(f64, f64)> {
        let n = ss.len();
        (0..n * n)
            .map(|e| {
                let (cos, _) = cosine(gram[e], ss[e / n], tt[e % n]);
                let d = similarity(cos, alpha);
                (kappa * d, kappa * alpha * (1.0 - d))
            })
            .collect()
    }

    fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
        let top = values.clone().fold(f64::NEG_INFINITY, f64::max);
        top + values.map(|v| (v - top).exp()).sum::<f64>().ln()
    }

    /// Row and column log-sum-exps of the logits.
    fn line_lses(l: &[(f64, f64)], n: usize) -> (Vec<f64>, Vec<f64>) {
        let rows = (0..n)
            .map(|i| log_sum_exp((0..n).map(|j| l[i * n + j].0)))
            .collect();
        let cols = (0..n)
            .map(|j| log_sum_exp((0..n).map(|i| l[i * n + j].0)))
            .collect();
        (rows, cols)
    }

    /// F-RL from the Gram matrix and the squared norms.
    pub fn frl(gram: &[f64], ss: &[f64], tt: &[f64], alpha: f64, kappa: f64) -> f64 {
        let n = ss.len();
        let l = logits(gram, ss, tt, alpha, kappa);
        let (rows, cols) = line_lses(&l, n);
        let diag = |k: usize| l[k * n + k].0;
        let row_terms: f64 = (0..n).map(|i| rows[i] - diag(i)).sum();
        let col_terms: f64 = (0..n).map(|j| cols[j] - diag(j)).sum();
        (row_terms + col_terms) / (2 * n) as f64
    }

    /// `(g_gram, g_ss, g_tt)` of F-RL times the incoming gradient `g`:
    /// ∂L_red/∂L_ij = (P_ij + Qc_ij − 2δ_ij)/(2N) with P, Qc the row and column softmaxes.
    pub fn frl_grad(
        gram: &[f64],
        ss: &[f64],
        tt: &[f64],
        alpha: f64,
        kappa: f64,
        g: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = ss.len();
        let l = logits(gram, ss, tt, alpha, kappa);
        let (rows, cols) = line_lses(&l, n);
        let (mut g_gram, mut g_ss, mut g_tt) = (vec![0.0; n * n], vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            for j in 0..n {
                let (logit, slope) = l[i * n + j];
                let p = (logit - rows[i]).exp();
                let q = (logit - cols[j]).exp();
                let diag = if i == j { 2.0 } else { 0.0 };
                let g_cos = g * (p + q - diag) / (2 * n) as f64 * slope;
                let (_, [d_gram, d_ss, d_tt]) = cosine(gram[i * n + j], ss[i], tt[j]);
                g_gram[i * n + j] = g_cos * d_gram;
                g_ss[i] += g_cos * d_ss;
                g_tt[j] += g_cos * d_tt;
            }
        }
        (g_gram, g_ss, g_tt)
    }

    /// φ(δ) and φ'(δ), zero outside the gate min(δ, 1 − δ) > ε.
    fn phi(delta: f64, c: &FclConfig) -> (f64, f64) {
        if delta.min(1.0 - delta) <= f64::from(c.eps) {
            return (0.0, 0.0);
        }
        let gamma = f64::from(c.gamma);
        let sign = match c.phi {
            PhiSign::Focal => -1.0,
            PhiSign::Printed => 1.0,
        };
        let rest = 1.0 - delta;
        let value = rest.powf(gamma) * delta.ln();
        let slope = -gamma * rest.powf(gamma - 1.0) * delta.ln() + rest.powf(gamma) / delta;
        (sign * value, sign * slope)
    }

    /// ℓ(δ) and ℓ'(δ).
    fn term(delta: f64, c: &FclConfig) -> (f64, f64) {
        let em = f64::from(c.margin).exp();
        let (phi, phi_slope) = phi(delta, c);
        let inner = em + (1.0 - em) * delta;
        (inner.ln() + phi, (1.0 - em) / inner + phi_slope)
    }

    /// The F-CL term per item from (ab, aa, bb).
    pub fn fcl_term(ab: &[f64], aa: &[f64], bb: &[f64], c: &FclConfig) -> Vec<f64> {
        (0..ab.len())
            .map(|i| {
                let (cos, _) = cosine(ab[i], aa[i], bb[i]);
                term(similarity(cos, f64::from(c.alpha)), c).0
            })
            .collect()
    }

    /// `(g_ab, g_aa, g_bb)` of the F-CL terms for the incoming gradients `g` (one per item).
    pub fn fcl_term_grad(
        ab: &[f64],
        aa: &[f64],
        bb: &[f64],
        c: &FclConfig,
        g: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let alpha = f64::from(c.alpha);
        let (mut g_ab, mut g_aa, mut g_bb) = (vec![], vec![], vec![]);
        for i in 0..ab.len() {
            let (cos, [d_ab, d_aa, d_bb]) = cosine(ab[i], aa[i], bb[i]);
            let delta = similarity(cos, alpha);
            let g_cos = g[i] * term(delta, c).1 * alpha * (1.0 - delta);
            g_ab.push(g_cos * d_ab);
            g_aa.push(g_cos * d_aa);
            g_bb.push(g_cos * d_bb);
        }
        (g_ab, g_aa, g_bb)
    }
}
