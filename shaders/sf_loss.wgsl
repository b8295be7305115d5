// The SF-Head losses over per-item dot products (pair_stats.wgsl) and, for F-RL, the Gram matrix
// gram_ij = s_i·t_j (a matmul). Both use one definition of the paper's modified cosine (eq. 10):
//   cos = u·v / (n_u·n_v), n = max(‖u‖, 1e-8),  d = 1 − exp(−α(cos + 1)),  ∂d/∂cos = α(1 − d),
// with d and 1 − d each computed without cancellation.
//
// F-RL (symmetric InfoNCE over the batch, eq. 11): L_ij = κ·d(cos_ij), cos_ij = gram_ij/(n_s,i·n_t,j),
//   loss = (1/2N)·Σ_k (lse_k − L_kk) over the N row and N column log-sum-exps lse_k.
//   frl_lse (workgroup 64, grid folded over x and y; invocation k < N for row k, k ≥ N for
//       column k − N): lse[k] with max subtraction and terms[k] = lse[k] − L_kk.
//       Bindings: 1 gram (N×N), 2 ss (N), 3 tt (N), 4 lse (2N), 5 terms (2N).
//       The mean of the terms is a reduction (reduce.wgsl).
//   With P the row and Qc the column softmax of L and g the incoming gradient:
//   H_ij = g·κ/(2N)·(P_ij + Qc_ij − 2[i = j])·α(1 − d_ij).
//   frl_grad_gram (workgroup 256, one invocation per (i, j), grid folded over x and y):
//       g_gram_ij = H_ij/(n_s,i·n_t,j). Bindings: 1 gram, 2 ss, 3 tt, 4 lse, 5 g (1), 6 g_gram.
//   frl_grad_norms (workgroup 64, invocations as frl_lse): since ∂cos_ij/∂ss_i = −cos_ij/(2·ss_i),
//       g_ss_i = −Σ_j H_ij·cos_ij/(2·ss_i) and g_tt_j = −Σ_i H_ij·cos_ij/(2·tt_j), 0 where the norm
//       is clamped. Bindings: 1 gram, 2 ss, 3 tt, 4 lse, 5 g (1), 6 g_ss, 7 g_tt.
//
// F-CL term (eq. 12–14), per item i: δ = d(cos_i), cos_i = ab_i/(n_a,i·n_b,i),
//   ℓ(δ) = log(e^m + (1 − e^m)·δ) + φ(δ), φ = sign·(1 − δ)^γ·log δ where min(δ, 1 − δ) > ε, else 0
//   (sign −1: the focal form, +1: as printed).
//   fcl_forward (workgroup 256, one item per invocation, grid folded over x and y):
//       Bindings: 1 ab, 2 aa, 3 bb, 4 loss (N).
//   fcl_backward (same grid): g_cos = g_i·ℓ'(δ)·α(1 − δ), then g_ab = g_cos/(n_a·n_b),
//       g_aa = −g_cos·cos/(2·aa), g_bb = −g_cos·cos/(2·bb) (0 where clamped).
//       Bindings: 1 ab, 2 aa, 3 bb, 4 g (N), 5 g_ab, 6 g_aa, 7 g_bb.
// Binding 0 is the params block of the loss in all entries.

const NORM_FLOOR: f32 = 1e-8;

// max(‖u‖, 1e-8) from ‖u‖².
fn clamped_norm(sq: f32) -> f32 {
    return max(sqrt(sq), NORM_FLOOR);
}

// d/d(‖u‖²) of the clamped norm is zero where the clamp holds; `scale` is the unclamped value.
fn unless_clamped(sq: f32, scale: f32) -> f32 {
    return select(0.0, scale, sqrt(sq) > NORM_FLOOR);
}

// 1 − exp(−x), without the cancellation of 1 − exp(−x) at small |x|: there the Taylor series
// x − x²/2! + x³/3! − … in Horner form, to x⁹ (truncation below 6e-10 relative for |x| < 1/2).
fn one_minus_exp_neg(x: f32) -> f32 {
    if abs(x) < 0.5 {
        var s = 1.0;
        for (var k = 9; k >= 2; k--) {
            s = 1.0 - x * s / f32(k);
        }
        return x * s;
    }
    return 1.0 - exp(-x);
}

// log(1 + y), keeping y's digits at small |y|: there 2·atanh(z) with z = y/(2 + y), |z| < 1/3, as
// 2(z + z³/3 + … + z¹⁷/17) (truncation below 2e-10 relative).
fn log1p(y: f32) -> f32 {
    if abs(y) < 0.5 {
        let z = y / (2.0 + y);
        let z2 = z * z;
        var s = 1.0 / 17.0;
        for (var k = 15; k >= 1; k -= 2) {
            s = 1.0 / f32(k) + z2 * s;
        }
        return 2.0 * z * s;
    }
    return log(1.0 + y);
}

// The modified cosine d and its complement 1 − d of a cosine, with x = α(cos + 1).
struct Similarity {
    x: f32,
    d: f32,
    rest: f32,
}

fn similarity(cos: f32, alpha: f32) -> Similarity {
    let x = alpha * (cos + 1.0);
    return Similarity(x, one_minus_exp_neg(x), exp(-x));
}

// ---- F-RL ----

struct FrlParams {
    n: u32,
    alpha: f32,
    kappa: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> frl: FrlParams;

fn frl_cos(gram: f32, ss: f32, tt: f32) -> f32 {
    return gram / (clamped_norm(ss) * clamped_norm(tt));
}

fn frl_logit(cos: f32) -> f32 {
    return frl.kappa * similarity(cos, frl.alpha).d;
}

// H_ij of the header from the cosine, whether it is diagonal, the row and column log-sum-exps and
// the incoming gradient.
fn frl_h(cos: f32, diagonal: bool, lse_row: f32, lse_col: f32, g: f32) -> f32 {
    let s = similarity(cos, frl.alpha);
    let logit = frl.kappa * s.d;
    let softmaxes = exp(logit - lse_row) + exp(logit - lse_col) - select(0.0, 2.0, diagonal);
    return g * frl.kappa / (2.0 * f32(frl.n)) * softmaxes * frl.alpha * s.rest;
}

@group(0) @binding(1) var<storage, read> lse_gram: array<f32>;
@group(0) @binding(2) var<storage, read> lse_ss: array<f32>;
@group(0) @binding(3) var<storage, read> lse_tt: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse_terms: array<f32>;

// Logit at position `j` along row `k` (k < N) or column k − N.
fn lse_logit(k: u32, j: u32) -> f32 {
    let n = frl.n;
    let i = select(j, k, k < n);
    let c = select(k - n, j, k < n);
    return frl_logit(frl_cos(lse_gram[i * n + c], lse_ss[i], lse_tt[c]));
}

@compute @workgroup_size(64)
fn frl_lse(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = (wid.x + wid.y * nwg.x) * 64u + lid;
    let n = frl.n;
    if k >= 2u * n {
        return;
    }
    // One pass with a running maximum: rescale the sum whenever the maximum grows.
    var top = lse_logit(k, 0u);
    var sum = 1.0;
    for (var j = 1u; j < n; j++) {
        let l = lse_logit(k, j);
        if l > top {
            sum = sum * exp(top - l) + 1.0;
            top = l;
        } else {
            sum += exp(l - top);
        }
    }
    let lse = top + log(sum);
    lse_out[k] = lse;
    lse_terms[k] = lse - lse_logit(k, k % n);
}

@group(0) @binding(1) var<storage, read> gg_gram: array<f32>;
@group(0) @binding(2) var<storage, read> gg_ss: array<f32>;
@group(0) @binding(3) var<storage, read> gg_tt: array<f32>;
@group(0) @binding(4) var<storage, read> gg_lse: array<f32>;
@group(0) @binding(5) var<storage, read> gg_g: array<f32>;
@group(0) @binding(6) var<storage, read_write> gg_g_gram: array<f32>;

@compute @workgroup_size(256)
fn frl_grad_gram(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.x + wid.y * nwg.x) * 256u + lid;
    let n = frl.n;
    if e >= n * n {
        return;
    }
    let i = e / n;
    let j = e % n;
    let norms = clamped_norm(gg_ss[i]) * clamped_norm(gg_tt[j]);
    let cos = gg_gram[e] / norms;
    let h = frl_h(cos, i == j, gg_lse[i], gg_lse[n + j], gg_g[0]);
    gg_g_gram[e] = h / norms;
}

@group(0) @binding(1) var<storage, read> gn_gram: array<f32>;
@group(0) @binding(2) var<storage, read> gn_ss: array<f32>;
@group(0) @binding(3) var<storage, read> gn_tt: array<f32>;
@group(0) @binding(4) var<storage, read> gn_lse: array<f32>;
@group(0) @binding(5) var<storage, read> gn_g: array<f32>;
@group(0) @binding(6) var<storage, read_write> gn_g_ss: array<f32>;
@group(0) @binding(7) var<storage, read_write> gn_g_tt: array<f32>;

@compute @workgroup_size(64)
fn frl_grad_norms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = (wid.x + wid.y * nwg.x) * 64u + lid;
    let n = frl.n;
    if k >= 2u * n {
        return;
    }
    let is_row = k < n;
    let fixed = select(k - n, k, is_row);
    var acc = 0.0;
    for (var j = 0u; j < n; j++) {
        let i = select(j, fixed, is_row);
        let c = select(fixed, j, is_row);
        let cos = frl_cos(gn_gram[i * n + c], gn_ss[i], gn_tt[c]);
        acc += frl_h(cos, i == c, gn_lse[i], gn_lse[n + c], gn_g[0]) * cos;
    }
    if is_row {
        let ss = gn_ss[fixed];
        gn_g_ss[fixed] = unless_clamped(ss, -acc / (2.0 * ss));
    } else {
        let tt = gn_tt[fixed];
        gn_g_tt[fixed] = unless_clamped(tt, -acc / (2.0 * tt));
    }
}

// ---- F-CL ----

struct FclParams {
    n: u32,
    alpha: f32,
    // e^m − 1, from the host in f64
    em1: f32,
    gamma: f32,
    eps: f32,
    phi_sign: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> fcl: FclParams;

fn fcl_cos(ab: f32, aa: f32, bb: f32) -> f32 {
    return ab / (clamped_norm(aa) * clamped_norm(bb));
}

fn fcl_gate_open(s: Similarity) -> bool {
    return min(s.d, s.rest) > fcl.eps;
}

// log δ, through log1p(−(1 − δ)) when δ is near 1.
fn fcl_log_d(s: Similarity) -> f32 {
    return select(log(s.d), log1p(-s.rest), s.rest < 0.5);
}

// ℓ(δ); the first term log(e^m + (1 − e^m)δ) is log1p((e^m − 1)(1 − δ)).
fn fcl_term(s: Similarity) -> f32 {
    var l = log1p(fcl.em1 * s.rest);
    if fcl_gate_open(s) {
        // (1 − δ)^γ = exp(−γx)
        l += fcl.phi_sign * exp(-fcl.gamma * s.x) * fcl_log_d(s);
    }
    return l;
}

// ℓ'(δ) = (1 − e^m)/(e^m + (1 − e^m)δ) + φ'(δ),
// φ'(δ) = sign·(−γ(1 − δ)^(γ−1)·log δ + (1 − δ)^γ/δ) inside the gate.
fn fcl_term_slope(s: Similarity) -> f32 {
    var slope = -fcl.em1 / (1.0 + fcl.em1 * s.rest);
    if fcl_gate_open(s) {
        let pow_lower = exp(-(fcl.gamma - 1.0) * s.x);
        let pow_gamma = exp(-fcl.gamma * s.x);
        slope += fcl.phi_sign * (pow_gamma / s.d - fcl.gamma * pow_lower * fcl_log_d(s));
    }
    return slope;
}

@group(0) @binding(1) var<storage, read> fwd_ab: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_aa: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_bb: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_loss: array<f32>;

@compute @workgroup_size(256)
fn fcl_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= fcl.n {
        return;
    }
    let cos = fcl_cos(fwd_ab[i], fwd_aa[i], fwd_bb[i]);
    fwd_loss[i] = fcl_term(similarity(cos, fcl.alpha));
}

@group(0) @binding(1) var<storage, read> bwd_ab: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_aa: array<f32>;
@group(0) @binding(3) var<storage, read> bwd_bb: array<f32>;
@group(0) @binding(4) var<storage, read> bwd_g: array<f32>;
@group(0) @binding(5) var<storage, read_write> bwd_g_ab: array<f32>;
@group(0) @binding(6) var<storage, read_write> bwd_g_aa: array<f32>;
@group(0) @binding(7) var<storage, read_write> bwd_g_bb: array<f32>;

@compute @workgroup_size(256)
fn fcl_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= fcl.n {
        return;
    }
    let aa = bwd_aa[i];
    let bb = bwd_bb[i];
    let norms = clamped_norm(aa) * clamped_norm(bb);
    let cos = bwd_ab[i] / norms;
    let s = similarity(cos, fcl.alpha);
    let g_cos = bwd_g[i] * fcl_term_slope(s) * fcl.alpha * s.rest;
    bwd_g_ab[i] = g_cos / norms;
    bwd_g_aa[i] = unless_clamped(aa, -g_cos * cos / (2.0 * aa));
    bwd_g_bb[i] = unless_clamped(bb, -g_cos * cos / (2.0 * bb));
}
