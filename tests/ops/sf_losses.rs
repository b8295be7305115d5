//! The SF-Head losses: `pair_stats`, `frl` and `fcl_term` alone against their f64 references,
//! and composed from raw (N, D) features against the definitions of F-RL and F-CL written here
//! from the raw vectors, differentiated by central differences in f64.

use sfhead::engine::{Graph, TensorId};
use sfhead::ops::pair_stats::{self, pair_stats};
use sfhead::ops::sf_loss::{self, FclConfig, PhiSign, fcl_term, frl};
use sfhead::ops::{add, matmul, mul, reduce};
use sfhead::testing::*;

use crate::fixed;

/// The incoming gradient every loss here is scaled by, so that backward rules must use it.
const COEF: f32 = 0.37;

/// max |got − want| / max(max |want|, floor): norm-wise, with a floor for results that are zero
/// (F-RL at N = 1).
fn error_vs(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "result lengths differ");
    let scale = want.iter().fold(1e-6f64, |m, w| m.max(w.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs())
        .fold(0.0, f64::max)
        / scale
}

/// Runs a step and reads `keep`, refusing NaN and infinities (the norm-wise errors, built on
/// `f64::max`, would pass over a NaN).
fn run_finite(h: &Harness, inputs: &[(TensorId, &[f32])], keep: &[TensorId]) -> Vec<Vec<f32>> {
    let out = h.run(inputs, keep);
    for (k, v) in out.iter().enumerate() {
        assert!(
            v.iter().all(|x| x.is_finite()),
            "result {k} is not finite: {v:?}"
        );
    }
    out
}

fn scaled(g: &mut Graph, loss: TensorId) -> TensorId {
    let coef = g.constant("coef", &[1], vec![COEF]);
    mul::mul(g, loss, coef)
}

/// `Σ w ⊙ y` with a constant `w`, so that d/dy = w.
fn weighted(g: &mut Graph, y: TensorId, w: &[f32]) -> TensorId {
    let shape = g.shape(y).to_vec();
    let w = g.constant("w", &shape, w.to_vec());
    let wy = mul::mul(g, y, w);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, wy, &axes)
}

/// Features of `n` items of length `dim`: signed, or post-ReLU (non-negative, about a third
/// exact zeros, so every cosine lies in [0, 1]).
fn features(seed: u64, n: usize, dim: usize, non_negative: bool) -> Vec<f32> {
    if non_negative {
        let v = uniform(seed, n * dim, -0.5, 1.0);
        v.into_iter().map(|x| x.max(0.0)).collect()
    } else {
        uniform(seed, n * dim, -1.0, 1.0)
    }
}

/// Central differences of `f` at `x` in f64.
fn central_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut shifted = x.to_vec();
    (0..x.len())
        .map(|k| {
            let h = 1e-5 * x[k].abs().max(1.0);
            shifted[k] = x[k] + h;
            let up = f(&shifted);
            shifted[k] = x[k] - h;
            let down = f(&shifted);
            shifted[k] = x[k];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// The definitions, written from the raw vectors (spec §3.2–3.4), independent of the ops.
mod raw {
    use sfhead::ops::sf_loss::{FclConfig, PhiSign};

    fn dot(u: &[f64], v: &[f64]) -> f64 {
        u.iter().zip(v).map(|(a, b)| a * b).sum()
    }

    /// d(u, v) = 1 − exp(−α(cos + 1)), with the norms clamped at 1e-8.
    pub fn d(u: &[f64], v: &[f64], alpha: f64) -> f64 {
        let norm = |w: &[f64]| dot(w, w).sqrt().max(1e-8);
        let cos = dot(u, v) / (norm(u) * norm(v));
        1.0 - (-alpha * (cos + 1.0)).exp()
    }

    /// L_red = (1/2N)Σ_i −log(e^{L_ii}/Σ_j e^{L_ij}) + (1/2N)Σ_j −log(e^{L_jj}/Σ_i e^{L_ij}).
    pub fn frl(s: &[f64], t: &[f64], dim: usize, alpha: f64, kappa: f64) -> f64 {
        let n = s.len() / dim;
        let row = |i: usize| &s[i * dim..(i + 1) * dim];
        let col = |j: usize| &t[j * dim..(j + 1) * dim];
        let logit = |i: usize, j: usize| kappa * d(row(i), col(j), alpha);
        let mut total = 0.0;
        for k in 0..n {
            let over_j: f64 = (0..n).map(|j| logit(k, j).exp()).sum();
            let over_i: f64 = (0..n).map(|i| logit(i, k).exp()).sum();
            total -= (logit(k, k).exp() / over_j).ln() + (logit(k, k).exp() / over_i).ln();
        }
        total / (2 * n) as f64
    }

    /// ℓ(δ) = log(e^m + (1 − e^m)δ) + φ(δ), φ = ∓(1 − δ)^γ log δ if min(δ, 1 − δ) > ε, else 0.
    pub fn fcl_item(delta: f64, c: &FclConfig) -> f64 {
        let em = f64::from(c.margin).exp();
        let open = delta.min(1.0 - delta) > f64::from(c.eps);
        let focal = -(1.0 - delta).powf(f64::from(c.gamma)) * delta.ln();
        let phi = match (open, c.phi) {
            (false, _) => 0.0,
            (true, PhiSign::Focal) => focal,
            (true, PhiSign::Printed) => -focal,
        };
        (em + (1.0 - em) * delta).ln() + phi
    }

    /// The mean over items of ℓ(d(a_i, F_i)).
    pub fn fcl(a: &[f64], f: &[f64], dim: usize, c: &FclConfig) -> f64 {
        let n = a.len() / dim;
        (0..n)
            .map(|i| {
                let span = i * dim..(i + 1) * dim;
                fcl_item(d(&a[span.clone()], &f[span], f64::from(c.alpha)), c)
            })
            .sum::<f64>()
            / n as f64
    }
}

/// (ab, aa, bb) in f64 from f32 features.
fn stats_f64(a: &[f32], b: &[f32], dim: usize) -> [Vec<f64>; 3] {
    pair_stats::cpu::pair_stats(&to_f64(a), &to_f64(b), dim)
}

fn as_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

// ---- pair_stats ----

/// Forward, and the backward for the gradients `used` of (ab, aa, bb) (the others unused).
fn pair_stats_case(n: usize, dim: usize, used: [bool; 3], seed: u64) {
    let mut g = Graph::new();
    let (a, b) = (g.input("a", &[n, dim]), g.input("b", &[n, dim]));
    let stats = pair_stats(&mut g, a, b);
    let weights: Vec<Vec<f32>> = (0..3).map(|k| uniform(seed + k, n, -1.0, 1.0)).collect();
    let terms: Vec<TensorId> = (0..3)
        .filter(|&k| used[k])
        .map(|k| weighted(&mut g, stats[k], &weights[k]))
        .collect();
    let loss = terms[1..]
        .iter()
        .fold(terms[0], |acc, &t| add::add(&mut g, acc, t));
    let grads = g.backward_partial(loss, &[a, b]).unwrap();
    let reaches_a = used[0] || used[1];
    let reaches_b = used[0] || used[2];
    assert_eq!(
        grads[0].is_some(),
        reaches_a,
        "g_a exists iff ab or aa is used"
    );
    assert_eq!(
        grads[1].is_some(),
        reaches_b,
        "g_b exists iff ab or bb is used"
    );
    let keep: Vec<TensorId> = stats
        .iter()
        .copied()
        .chain(grads.iter().flatten().copied())
        .collect();
    let h = Harness::new(g, &keep);
    let (da, db) = (
        uniform(seed + 3, n * dim, -1.0, 1.0),
        uniform(seed + 4, n * dim, -1.0, 1.0),
    );
    let out = run_finite(&h, &[(a, &da), (b, &db)], &keep);
    let (af, bf) = (to_f64(&da), to_f64(&db));
    let want = pair_stats::cpu::pair_stats(&af, &bf, dim);
    let what = format!("pair_stats {n}×{dim}");
    for (k, name) in ["ab", "aa", "bb"].iter().enumerate() {
        check(
            &format!("{what} {name}"),
            normwise_error(&out[k], &want[k]),
            REDUCTION_TOL,
        );
    }
    let zero = vec![0.0; n];
    let incoming: Vec<Vec<f64>> = (0..3)
        .map(|k| {
            if used[k] {
                to_f64(&weights[k])
            } else {
                zero.clone()
            }
        })
        .collect();
    let (g_a, g_b) =
        pair_stats::cpu::pair_stats_grad(&af, &bf, dim, &incoming[0], &incoming[1], &incoming[2]);
    let mut next = 3;
    for (reaches, want, name) in [(reaches_a, g_a, "g_a"), (reaches_b, g_b, "g_b")] {
        if reaches {
            let e = normwise_error(&out[next], &want);
            check(&format!("{what} {name} for {used:?}"), e, ELEMENTWISE_TOL);
            next += 1;
        }
    }
}

/// The GPU tuning (parallel trees, an element per invocation in the backward) and the CPU one
/// (serial trees, eight elements) give the same bits: the three sums, both sides' gradients and
/// one side's alone.
#[test]
fn pair_stats_agrees_across_tunings() {
    use sfhead::gpu::Tuning;
    let (n, dim) = (3, 9001);
    let run = |tuning: Tuning| {
        let mut g = Graph::new();
        let (a, b) = (g.input("a", &[n, dim]), g.input("b", &[n, dim]));
        let [ab, aa, bb] = pair_stats(&mut g, a, b);
        let both = weighted(&mut g, ab, &uniform(5, n, -1.0, 1.0));
        let one = weighted(&mut g, aa, &uniform(6, n, -1.0, 1.0));
        let loss = add::add(&mut g, both, one);
        let grads = g.backward(loss, &[a, b]).unwrap();
        let [ga, gb] = grads[..] else { unreachable!() };
        let side = g.backward(one, &[a]).unwrap()[0];
        let (da, db) = (
            uniform(7, n * dim, -1.0, 1.0),
            uniform(8, n * dim, -1.0, 1.0),
        );
        let keep = [ab, aa, bb, ga, gb, side];
        crate::bits_under(tuning, &g, &[(a, &da), (b, &db)], &keep)
    };
    assert_eq!(run(Tuning::GPU), run(Tuning::CPU));
}

#[test]
fn pair_stats_matches_reference() {
    pair_stats_case(1, 1, [true; 3], 10);
    pair_stats_case(7, 333, [true; 3], 20);
    // Three chunks per row, and a row length as in the taps (D = 51,200).
    pair_stats_case(3, 9001, [true; 3], 30);
    pair_stats_case(2, 51_200, [true; 3], 40);
}

#[test]
fn pair_stats_unused_outputs_count_as_zero() {
    let cases = [
        [false, true, false],
        [false, false, true],
        [true, false, false],
        [true, false, true],
        [false, true, true],
        [true, true, false],
    ];
    for (k, used) in cases.into_iter().enumerate() {
        pair_stats_case(5, 77, used, 100 + 10 * k as u64);
    }
}

#[test]
fn pair_stats_gradients_pass_finite_differences() {
    let (n, dim) = (5, 9);
    let inputs = vec![
        (vec![n, dim], uniform(200, n * dim, -1.0, 1.0)),
        (vec![n, dim], uniform(201, n * dim, -1.0, 1.0)),
    ];
    // A weighted sum of the `used` outputs of pair_stats(a, b), with weights of their own.
    let mix = |g: &mut Graph, a: TensorId, b: TensorId, used: [bool; 3]| {
        let stats = pair_stats(g, a, b);
        let parts: Vec<TensorId> = (0..3)
            .filter(|&k| used[k])
            .map(|k| {
                let w = g.constant("w", &[n], uniform(210 + k as u64, n, 0.5, 1.5));
                mul::mul(g, stats[k], w)
            })
            .collect();
        parts[1..]
            .iter()
            .fold(parts[0], |acc, &p| add::add(g, acc, p))
    };
    let r = gradcheck(&inputs, |g, x| mix(g, x[0], x[1], [true; 3]), 1e-2, 220);
    check("pair_stats gradcheck", r.worst, 1e-2);
    let r = gradcheck(
        &inputs,
        |g, x| mix(g, x[0], x[1], [true, false, true]),
        1e-2,
        221,
    );
    check("pair_stats gradcheck (ab, bb)", r.worst, 1e-2);
    // Only aa: b is a constant and gets no gradient.
    let b = inputs[1].1.clone();
    let r = gradcheck(
        &inputs[..1],
        |g, x| {
            let b = g.constant("b", &[n, dim], b);
            mix(g, x[0], b, [false, true, false])
        },
        1e-2,
        222,
    );
    check("pair_stats gradcheck (aa)", r.worst, 1e-2);
    // Both sides the same tensor: its gradient is the sum of the two.
    let r = gradcheck(
        &inputs[..1],
        |g, x| mix(g, x[0], x[0], [true; 3]),
        1e-2,
        223,
    );
    check("pair_stats gradcheck (a, a)", r.worst, 1e-2);
}

// ---- F-RL ----

/// (loss, g_gram, g_ss, g_tt) of COEF·frl on the GPU.
fn run_frl(gram: &[f32], ss: &[f32], tt: &[f32], alpha: f32, kappa: f32) -> Vec<Vec<f32>> {
    let n = ss.len();
    let mut g = Graph::new();
    let (x_gram, x_ss, x_tt) = (
        g.input("gram", &[n, n]),
        g.input("ss", &[n]),
        g.input("tt", &[n]),
    );
    let raw_loss = frl(&mut g, x_gram, x_ss, x_tt, alpha, kappa);
    let loss = scaled(&mut g, raw_loss);
    let grads = g.backward(loss, &[x_gram, x_ss, x_tt]).unwrap();
    let keep = [raw_loss, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    run_finite(&h, &[(x_gram, gram), (x_ss, ss), (x_tt, tt)], &keep)
}

/// Gram matrix and squared norms of f32 features, rounded to f32 as the GPU op sees them.
fn frl_inputs(s: &[f32], t: &[f32], dim: usize) -> [Vec<f32>; 3] {
    let (sf, tf) = (to_f64(s), to_f64(t));
    let dims = (s.len() / dim, t.len() / dim, dim);
    let gram = matmul::cpu::matmul(&sf, &tf, dims, false, true);
    [
        as_f32(&gram),
        as_f32(&stats_f64(s, s, dim)[0]),
        as_f32(&stats_f64(t, t, dim)[0]),
    ]
}

#[test]
fn frl_matches_reference() {
    let dim = 29;
    for (k, &(n, non_negative)) in [(1, false), (5, false), (7, true), (6, true)]
        .iter()
        .enumerate()
    {
        let seed = 300 + 10 * k as u64;
        let s = features(seed, n, dim, non_negative);
        let t = features(seed + 1, n, dim, non_negative);
        let [gram, ss, tt] = frl_inputs(&s, &t, dim);
        let (alpha, kappa) = (sf_loss::ALPHA, sf_loss::KAPPA);
        let out = run_frl(&gram, &ss, &tt, alpha, kappa);
        let (gf, sf, tf) = (to_f64(&gram), to_f64(&ss), to_f64(&tt));
        let (a64, k64) = (f64::from(alpha), f64::from(kappa));
        let what = format!("frl N = {n} non-negative {non_negative}");
        let want = sf_loss::cpu::frl(&gf, &sf, &tf, a64, k64);
        check(&what, error_vs(&out[0], &[want]), REDUCTION_TOL);
        // The reference itself against the raw definition on the same vectors.
        let raw = raw::frl(&to_f64(&s), &to_f64(&t), dim, a64, k64);
        assert!(
            (want - raw).abs() <= 1e-6 * raw.abs().max(1e-6),
            "{what}: cpu {want} vs raw {raw}"
        );
        let (g_gram, g_ss, g_tt) = sf_loss::cpu::frl_grad(&gf, &sf, &tf, a64, k64, f64::from(COEF));
        check(
            &format!("{what} g_gram"),
            error_vs(&out[1], &g_gram),
            REDUCTION_TOL,
        );
        check(
            &format!("{what} g_ss"),
            error_vs(&out[2], &g_ss),
            REDUCTION_TOL,
        );
        check(
            &format!("{what} g_tt"),
            error_vs(&out[3], &g_tt),
            REDUCTION_TOL,
        );
        // The reference gradient against central differences of the reference loss.
        let packed: Vec<f64> = [gf.clone(), sf.clone(), tf.clone()].concat();
        let loss_of = |x: &[f64]| {
            f64::from(COEF)
                * sf_loss::cpu::frl(&x[..n * n], &x[n * n..n * n + n], &x[n * n + n..], a64, k64)
        };
        let fd = central_gradient(loss_of, &packed);
        let analytic = [g_gram, g_ss, g_tt].concat();
        let err = fd
            .iter()
            .zip(&analytic)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            err < 1e-8,
            "{what}: cpu frl_grad differs from central differences by {err:.2e}"
        );
    }
}

/// (loss, g_s, g_t) of COEF·F-RL composed from raw features: matmul + pair_stats + frl.
fn run_frl_composed(s: &[f32], t: &[f32], n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut g = Graph::new();
    let (xs, xt) = (g.input("s", &[n, dim]), g.input("t", &[n, dim]));
    let gram = matmul::matmul(&mut g, xs, xt, false, true);
    let [_, ss, tt] = pair_stats(&mut g, xs, xt);
    let raw_loss = frl(&mut g, gram, ss, tt, sf_loss::ALPHA, sf_loss::KAPPA);
    let loss = scaled(&mut g, raw_loss);
    let grads = g.backward(loss, &[xs, xt]).unwrap();
    let keep = [raw_loss, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    run_finite(&h, &[(xs, s), (xt, t)], &keep)
}

#[test]
fn frl_composed_matches_raw_definition() {
    let dim = 37;
    let cases = [
        (1, false),
        (1, true),
        (5, false),
        (5, true),
        (7, false),
        (7, true),
    ];
    for (k, &(n, non_negative)) in cases.iter().enumerate() {
        let seed = 400 + 10 * k as u64;
        let s = features(seed, n, dim, non_negative);
        let t = features(seed + 1, n, dim, non_negative);
        let out = run_frl_composed(&s, &t, n, dim);
        let (sf, tf) = (to_f64(&s), to_f64(&t));
        let (alpha, kappa) = (f64::from(sf_loss::ALPHA), f64::from(sf_loss::KAPPA));
        let what = format!("composed frl N = {n} non-negative {non_negative}");
        let want = raw::frl(&sf, &tf, dim, alpha, kappa);
        check(&what, error_vs(&out[0], &[want]), REDUCTION_TOL);
        let coef = f64::from(COEF);
        let g_s = central_gradient(|x| coef * raw::frl(x, &tf, dim, alpha, kappa), &sf);
        let g_t = central_gradient(|x| coef * raw::frl(&sf, x, dim, alpha, kappa), &tf);
        check(
            &format!("{what} g_s"),
            error_vs(&out[1], &g_s),
            REDUCTION_TOL,
        );
        check(
            &format!("{what} g_t"),
            error_vs(&out[2], &g_t),
            REDUCTION_TOL,
        );
    }
}

/// (g_s, g_t) of COEF·F-RL in the spec's normalised-vector form (§3.3): H_ij = ∂L/∂d_ij·α(1 − d_ij),
/// g_ŝ = H·T̂, g_t̂ = Hᵀ·Ŝ, g_s_i = (g_ŝ_i − (g_ŝ_i·ŝ_i)ŝ_i)/‖s_i‖ and likewise for t.
fn frl_normalised_form_grad(s: &[f64], t: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = s.len() / dim;
    let (alpha, kappa) = (f64::from(sf_loss::ALPHA), f64::from(sf_loss::KAPPA));
    let unit = |x: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let norms: Vec<f64> = x
            .chunks(dim)
            .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect();
        let hat = x
            .iter()
            .enumerate()
            .map(|(e, v)| v / norms[e / dim])
            .collect();
        (hat, norms)
    };
    let ((s_hat, s_norm), (t_hat, t_norm)) = (unit(s), unit(t));
    let dot = |x: &[f64], i: usize, y: &[f64], j: usize| -> f64 {
        (0..dim).map(|k| x[i * dim + k] * y[j * dim + k]).sum()
    };
    let d: Vec<f64> = (0..n * n)
        .map(|e| 1.0 - (-alpha * (dot(&s_hat, e / n, &t_hat, e % n) + 1.0)).exp())
        .collect();
    let logits: Vec<f64> = d.iter().map(|v| kappa * v).collect();
    let row_sum: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| logits[i * n + j].exp()).sum())
        .collect();
    let col_sum: Vec<f64> = (0..n)
        .map(|j| (0..n).map(|i| logits[i * n + j].exp()).sum())
        .collect();
    let h: Vec<f64> = (0..n * n)
        .map(|e| {
            let (i, j) = (e / n, e % n);
            let p = logits[e].exp() / row_sum[i] + logits[e].exp() / col_sum[j];
            let delta = if i == j { 2.0 } else { 0.0 };
            f64::from(COEF) * kappa / (2 * n) as f64 * (p - delta) * alpha * (1.0 - d[e])
        })
        .collect();
    let project = |own_hat: &[f64],
                   own_norm: &[f64],
                   other_hat: &[f64],
                   h_at: &dyn Fn(usize, usize) -> f64| {
        let mut g = vec![0.0; n * dim];
        for i in 0..n {
            let g_hat: Vec<f64> = (0..dim)
                .map(|k| (0..n).map(|j| h_at(i, j) * other_hat[j * dim + k]).sum())
                .collect();
            let radial: f64 = (0..dim).map(|k| g_hat[k] * own_hat[i * dim + k]).sum();
            for k in 0..dim {
                g[i * dim + k] = (g_hat[k] - radial * own_hat[i * dim + k]) / own_norm[i];
            }
        }
        g
    };
    let g_s = project(&s_hat, &s_norm, &t_hat, &|i, j| h[i * n + j]);
    let g_t = project(&t_hat, &t_norm, &s_hat, &|j, i| h[i * n + j]);
    (g_s, g_t)
}

#[test]
fn frl_gradient_equals_the_normalised_form() {
    let dim = 41;
    for (k, &(n, non_negative)) in [(5, false), (7, true)].iter().enumerate() {
        let seed = 450 + 10 * k as u64;
        let s = features(seed, n, dim, non_negative);
        let t = features(seed + 1, n, dim, non_negative);
        let out = run_frl_composed(&s, &t, n, dim);
        let (g_s, g_t) = frl_normalised_form_grad(&to_f64(&s), &to_f64(&t), dim);
        let what = format!("frl normalised form N = {n} non-negative {non_negative}");
        check(
            &format!("{what} g_s"),
            error_vs(&out[1], &g_s),
            REDUCTION_TOL,
        );
        check(
            &format!("{what} g_t"),
            error_vs(&out[2], &g_t),
            REDUCTION_TOL,
        );
    }
}

#[test]
fn frl_is_symmetric_in_s_and_t() {
    let (n, dim) = (6, 23);
    let s = features(500, n, dim, false);
    let t = features(501, n, dim, false);
    let [gram, ss, tt] = frl_inputs(&s, &t, dim);
    let transposed: Vec<f32> = (0..n * n).map(|e| gram[(e % n) * n + e / n]).collect();
    let (alpha, kappa) = (sf_loss::ALPHA, sf_loss::KAPPA);
    let out = run_frl(&gram, &ss, &tt, alpha, kappa);
    let swapped = run_frl(&transposed, &tt, &ss, alpha, kappa);
    let close = |x: &[f32], y: &[f32]| error_vs(x, &to_f64(y));
    check("frl swapped loss", close(&swapped[0], &out[0]), 1e-6);
    let g_gram_back: Vec<f32> = (0..n * n)
        .map(|e| swapped[1][(e % n) * n + e / n])
        .collect();
    check("frl swapped g_gram", close(&g_gram_back, &out[1]), 1e-6);
    check("frl swapped g_ss ↔ g_tt", close(&swapped[2], &out[3]), 1e-6);
    check("frl swapped g_tt ↔ g_ss", close(&swapped[3], &out[2]), 1e-6);
    // And composed: swapping the features swaps their gradients.
    let out = run_frl_composed(&s, &t, n, dim);
    let swapped = run_frl_composed(&t, &s, n, dim);
    check(
        "composed frl swapped loss",
        close(&swapped[0], &out[0]),
        1e-6,
    );
    check(
        "composed frl swapped g_s",
        close(&swapped[1], &out[2]),
        1e-5,
    );
    check(
        "composed frl swapped g_t",
        close(&swapped[2], &out[1]),
        1e-5,
    );
}

#[test]
fn frl_gradients_pass_finite_differences() {
    // Long enough rows that no squared norm is within the step 1e-2 of zero.
    let dim = 12;
    for (k, &(n, non_negative)) in [(1, false), (5, false), (7, true)].iter().enumerate() {
        let seed = 600 + 10 * k as u64;
        let s = features(seed, n, dim, non_negative);
        let t = features(seed + 1, n, dim, non_negative);
        let [gram, ss, tt] = frl_inputs(&s, &t, dim);
        let inputs = vec![(vec![n, n], gram), (vec![n], ss), (vec![n], tt)];
        let r = gradcheck(
            &inputs,
            |g, x| frl(g, x[0], x[1], x[2], sf_loss::ALPHA, sf_loss::KAPPA),
            1e-2,
            seed + 2,
        );
        check(&format!("frl gradcheck N = {n}"), r.worst, 1e-2);
        let inputs = vec![(vec![n, dim], s), (vec![n, dim], t)];
        let r = gradcheck(
            &inputs,
            |g, x| {
                let gram = matmul::matmul(g, x[0], x[1], false, true);
                let [_, ss, tt] = pair_stats(g, x[0], x[1]);
                frl(g, gram, ss, tt, sf_loss::ALPHA, sf_loss::KAPPA)
            },
            1e-2,
            seed + 3,
        );
        check(
            &format!("composed frl gradcheck N = {n} non-negative {non_negative}"),
            r.worst,
            1e-2,
        );
    }
}

// ---- F-CL ----

fn config(phi: PhiSign) -> FclConfig {
    FclConfig {
        phi,
        ..FclConfig::default()
    }
}

/// (ℓ, g_ab, g_aa, g_bb) of Σ w ⊙ fcl_term on the GPU.
fn run_fcl_term(ab: &[f32], aa: &[f32], bb: &[f32], w: &[f32], c: FclConfig) -> Vec<Vec<f32>> {
    let n = ab.len();
    let mut g = Graph::new();
    let xs = [
        g.input("ab", &[n]),
        g.input("aa", &[n]),
        g.input("bb", &[n]),
    ];
    let terms = fcl_term(&mut g, xs[0], xs[1], xs[2], c);
    let loss = weighted(&mut g, terms, w);
    let grads = g.backward(loss, &xs).unwrap();
    let keep = [terms, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    run_finite(&h, &[(xs[0], ab), (xs[1], aa), (xs[2], bb)], &keep)
}

#[test]
fn fcl_term_matches_reference() {
    let dim = 29;
    let mut k = 0;
    for phi in [PhiSign::Focal, PhiSign::Printed] {
        for &(n, non_negative) in &[(1, false), (5, true), (7, false), (301, true), (301, false)] {
            k += 1;
            let seed = 700 + 10 * k;
            let a = features(seed, n, dim, non_negative);
            let f = features(seed + 1, n, dim, non_negative);
            let [ab, aa, bb] = stats_f64(&a, &f, dim).map(|v| as_f32(&v));
            let w = uniform(seed + 2, n, -1.0, 1.0);
            let c = config(phi);
            let out = run_fcl_term(&ab, &aa, &bb, &w, c);
            let (abf, aaf, bbf) = (to_f64(&ab), to_f64(&aa), to_f64(&bb));
            let what = format!("fcl_term {phi:?} N = {n} non-negative {non_negative}");
            let want = sf_loss::cpu::fcl_term(&abf, &aaf, &bbf, &c);
            check(&what, normwise_error(&out[0], &want), ELEMENTWISE_TOL);
            let (g_ab, g_aa, g_bb) = sf_loss::cpu::fcl_term_grad(&abf, &aaf, &bbf, &c, &to_f64(&w));
            check(
                &format!("{what} g_ab"),
                normwise_error(&out[1], &g_ab),
                ELEMENTWISE_TOL,
            );
            check(
                &format!("{what} g_aa"),
                normwise_error(&out[2], &g_aa),
                ELEMENTWISE_TOL,
            );
            check(
                &format!("{what} g_bb"),
                normwise_error(&out[3], &g_bb),
                ELEMENTWISE_TOL,
            );
            // The reference against the raw definition, and its gradient against central
            // differences of it.
            let (af, ff) = (to_f64(&a), to_f64(&f));
            let items = af.chunks(dim).zip(ff.chunks(dim)).zip(&want);
            for (i, ((u, v), &cpu)) in items.enumerate() {
                let raw = raw::fcl_item(raw::d(u, v, f64::from(c.alpha)), &c);
                assert!(
                    (cpu - raw).abs() <= 1e-6,
                    "{what} item {i}: cpu {cpu} vs raw {raw}"
                );
            }
            let at = |x: &[f64], i: usize| {
                sf_loss::cpu::fcl_term(
                    &x[i..i + 1],
                    &x[i + n..i + n + 1],
                    &x[i + 2 * n..i + 2 * n + 1],
                    &c,
                )[0]
            };
            let packed = [abf.clone(), aaf.clone(), bbf.clone()].concat();
            let wf = to_f64(&w);
            let fd = central_gradient(|x| (0..n).map(|i| wf[i] * at(x, i)).sum(), &packed);
            let analytic = [g_ab, g_aa, g_bb].concat();
            let err = fd
                .iter()
                .zip(&analytic)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                err < 1e-7,
                "{what}: cpu fcl_term_grad differs from central differences by {err:.2e}"
            );
        }
    }
}

/// (mean ℓ, g_a, g_F) of COEF·mean(fcl_term(pair_stats(a, F))) on the GPU.
fn run_fcl_composed(a: &[f32], f: &[f32], n: usize, dim: usize, c: FclConfig) -> Vec<Vec<f32>> {
    let mut g = Graph::new();
    let (xa, xf) = (g.input("a", &[n, dim]), g.input("F", &[n, dim]));
    let [ab, aa, bb] = pair_stats(&mut g, xa, xf);
    let terms = fcl_term(&mut g, ab, aa, bb, c);
    let raw_loss = reduce::mean(&mut g, terms, &[0]);
    let loss = scaled(&mut g, raw_loss);
    let grads = g.backward(loss, &[xa, xf]).unwrap();
    let keep = [raw_loss, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    run_finite(&h, &[(xa, a), (xf, f)], &keep)
}

#[test]
fn fcl_composed_matches_raw_definition() {
    let dim = 37;
    let mut k = 0;
    for phi in [PhiSign::Focal, PhiSign::Printed] {
        for &(n, non_negative) in &[
            (1, false),
            (1, true),
            (5, false),
            (5, true),
            (7, false),
            (7, true),
        ] {
            k += 1;
            let seed = 800 + 10 * k;
            let a = features(seed, n, dim, non_negative);
            let f = features(seed + 1, n, dim, non_negative);
            let c = config(phi);
            let out = run_fcl_composed(&a, &f, n, dim, c);
            let (af, ff) = (to_f64(&a), to_f64(&f));
            let what = format!("composed fcl {phi:?} N = {n} non-negative {non_negative}");
            check(
                &what,
                error_vs(&out[0], &[raw::fcl(&af, &ff, dim, &c)]),
                REDUCTION_TOL,
            );
            let coef = f64::from(COEF);
            let g_a = central_gradient(|x| coef * raw::fcl(x, &ff, dim, &c), &af);
            let g_f = central_gradient(|x| coef * raw::fcl(&af, x, dim, &c), &ff);
            check(
                &format!("{what} g_a"),
                error_vs(&out[1], &g_a),
                REDUCTION_TOL,
            );
            check(
                &format!("{what} g_F"),
                error_vs(&out[2], &g_f),
                REDUCTION_TOL,
            );
        }
    }
}

#[test]
fn fcl_term_is_accurate_across_the_cosine_range() {
    // Unit norms, so ab is the cosine: both sides of every series/closed-form switch of the
    // kernel (α(cos + 1) below and above 1/2, 1 − δ below and above 1/2) for three α.
    let cosines: Vec<f32> = (0..=400)
        .map(|k| -0.999 + 1.999 * k as f32 / 400.0)
        .collect();
    let ones = vec![1.0; cosines.len()];
    let cos64 = to_f64(&cosines);
    let ones64 = to_f64(&ones);
    for alpha in [0.3, 1.0, 3.0] {
        for phi in [PhiSign::Focal, PhiSign::Printed] {
            let c = FclConfig {
                alpha,
                ..config(phi)
            };
            let out = run_fcl_term(&cosines, &ones, &ones, &ones, c);
            let what = format!("fcl_term over cos ∈ [−0.999, 1] α = {alpha} {phi:?}");
            let want = sf_loss::cpu::fcl_term(&cos64, &ones64, &ones64, &c);
            let (g_ab, _, _) = sf_loss::cpu::fcl_term_grad(&cos64, &ones64, &ones64, &c, &ones64);
            // The printed ℓ changes sign, so it is compared norm-wise.
            let (value_error, slope_error) = match phi {
                PhiSign::Focal => (
                    elementwise_error(&out[0], &want),
                    elementwise_error(&out[1], &g_ab),
                ),
                PhiSign::Printed => (
                    normwise_error(&out[0], &want),
                    normwise_error(&out[1], &g_ab),
                ),
            };
            check(&what, value_error, ELEMENTWISE_TOL);
            check(&format!("{what} g_ab"), slope_error, ELEMENTWISE_TOL);
        }
    }
}

/// ℓ and dℓ/dcos without φ, in f64, for a cosine with unit norms.
fn log_term_only(cos: f64, c: &FclConfig) -> (f64, f64) {
    let alpha = f64::from(c.alpha);
    let em = f64::from(c.margin).exp();
    let delta = -(-alpha * (cos + 1.0)).exp_m1();
    let inner = em + (1.0 - em) * delta;
    (inner.ln(), (1.0 - em) / inner * alpha * (1.0 - delta))
}

#[test]
fn fcl_gate_closes_phi_near_zero_and_one() {
    // α = 1: δ ≈ 2e-5 (closed) and δ ≈ 5e-4 (open). α = 6: 1 − δ = e^{−12} = 6e-6 (closed) and
    // e^{−8.4} = 2.2e-4 (open), with γ = 0 so that φ = ∓log δ is not hidden by (1 − δ)^γ.
    let cases = [
        (1.0, sf_loss::GAMMA, [-0.99998f32, -0.9995]),
        (6.0, 0.0, [1.0, 0.4]),
    ];
    for (alpha, gamma, cosines) in cases {
        for phi in [PhiSign::Focal, PhiSign::Printed] {
            let c = FclConfig {
                alpha,
                gamma,
                ..config(phi)
            };
            let ones = vec![1.0; 2];
            let out = run_fcl_term(&cosines, &ones, &ones, &ones, c);
            for (i, open) in [false, true].into_iter().enumerate() {
                let cos = f64::from(cosines[i]);
                let (value, slope) = log_term_only(cos, &c);
                let what = format!("gate α = {alpha} cos = {cos} {phi:?}");
                let want = sf_loss::cpu::fcl_term(&[cos], &[1.0], &[1.0], &c)[0];
                let (want_slope, _, _) =
                    sf_loss::cpu::fcl_term_grad(&[cos], &[1.0], &[1.0], &c, &[1.0]);
                if open {
                    assert!(
                        (want - value).abs() > 0.5 * value.abs(),
                        "{what}: φ applies"
                    );
                    assert!(
                        (want_slope[0] - slope).abs() > 0.5 * slope.abs(),
                        "{what}: φ' applies"
                    );
                } else {
                    assert_eq!((want, want_slope[0]), (value, slope), "{what}: φ = φ' = 0");
                }
                let got = &out[0][i..i + 1];
                check(&what, elementwise_error(got, &[want]), 1e-4);
                let got = &out[1][i..i + 1];
                check(
                    &format!("{what} g_ab"),
                    elementwise_error(got, &want_slope),
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn fcl_gradients_pass_finite_differences() {
    let dim = 13;
    for phi in [PhiSign::Focal, PhiSign::Printed] {
        let c = config(phi);
        let a = features(900, 7, dim, false);
        let f = features(901, 7, dim, false);
        let [ab, aa, bb] = stats_f64(&a, &f, dim).map(|v| as_f32(&v));
        let inputs = vec![(vec![7], ab), (vec![7], aa), (vec![7], bb)];
        let r = gradcheck(&inputs, |g, x| fcl_term(g, x[0], x[1], x[2], c), 1e-2, 902);
        check(&format!("fcl_term gradcheck {phi:?}"), r.worst, 1e-2);
        for (k, &(n, non_negative)) in [(1, false), (5, true), (7, false), (7, true)]
            .iter()
            .enumerate()
        {
            let seed = 910 + 10 * k as u64;
            let inputs = vec![
                (vec![n, dim], features(seed, n, dim, non_negative)),
                (vec![n, dim], features(seed + 1, n, dim, non_negative)),
            ];
            let r = gradcheck(
                &inputs,
                |g, x| {
                    let [ab, aa, bb] = pair_stats(g, x[0], x[1]);
                    let terms = fcl_term(g, ab, aa, bb, c);
                    reduce::mean(g, terms, &[0])
                },
                1e-2,
                seed + 2,
            );
            let what =
                format!("composed fcl gradcheck {phi:?} N = {n} non-negative {non_negative}");
            check(&what, r.worst, 1e-2);
        }
    }
}

#[test]
fn zero_rows_use_the_clamped_norm() {
    // A zero feature row (a dead post-ReLU chunk): its norm is clamped at 1e-8, so its cosines
    // are 0 and its squared norm gets no gradient.
    let (n, dim) = (4, 11);
    let mut s = features(1000, n, dim, true);
    let t = features(1001, n, dim, true);
    s[2 * dim..3 * dim].fill(0.0);
    let [gram, ss, tt] = frl_inputs(&s, &t, dim);
    let out = run_frl(&gram, &ss, &tt, sf_loss::ALPHA, sf_loss::KAPPA);
    let (gf, sf, tf) = (to_f64(&gram), to_f64(&ss), to_f64(&tt));
    let (alpha, kappa) = (f64::from(sf_loss::ALPHA), f64::from(sf_loss::KAPPA));
    let want = sf_loss::cpu::frl(&gf, &sf, &tf, alpha, kappa);
    check("frl zero row", error_vs(&out[0], &[want]), REDUCTION_TOL);
    let (g_gram, g_ss, g_tt) = sf_loss::cpu::frl_grad(&gf, &sf, &tf, alpha, kappa, f64::from(COEF));
    assert_eq!(g_ss[2], 0.0);
    check(
        "frl zero row g_gram",
        error_vs(&out[1], &g_gram),
        REDUCTION_TOL,
    );
    check("frl zero row g_ss", error_vs(&out[2], &g_ss), REDUCTION_TOL);
    check("frl zero row g_tt", error_vs(&out[3], &g_tt), REDUCTION_TOL);

    for phi in [PhiSign::Focal, PhiSign::Printed] {
        let c = config(phi);
        let [ab, aa, bb] = stats_f64(&t, &s, dim).map(|v| as_f32(&v));
        let w = uniform(1002, n, 0.5, 1.5);
        let out = run_fcl_term(&ab, &aa, &bb, &w, c);
        let (abf, aaf, bbf) = (to_f64(&ab), to_f64(&aa), to_f64(&bb));
        let what = format!("fcl_term zero row {phi:?}");
        let want = sf_loss::cpu::fcl_term(&abf, &aaf, &bbf, &c);
        check(&what, normwise_error(&out[0], &want), ELEMENTWISE_TOL);
        let (g_ab, g_aa, g_bb) = sf_loss::cpu::fcl_term_grad(&abf, &aaf, &bbf, &c, &to_f64(&w));
        assert_eq!(g_bb[2], 0.0);
        let wants = [g_ab, g_aa, g_bb];
        for (k, name) in ["g_ab", "g_aa", "g_bb"].iter().enumerate() {
            let e = elementwise_error(&out[k + 1], &wants[k]);
            check(&format!("{what} {name}"), e, ELEMENTWISE_TOL);
        }
    }
}

// ---- snapshots ----

#[test]
fn sf_loss_snapshots() {
    let (n, dim) = (4, 6);
    let (a, b) = (fixed(n * dim, 0.0), fixed(n * dim, 1.3));
    let mut g = Graph::new();
    let (xa, xb) = (g.input("a", &[n, dim]), g.input("b", &[n, dim]));
    let stats = pair_stats(&mut g, xa, xb);
    let h = Harness::new(g, &stats);
    let out = run_finite(&h, &[(xa, &a), (xb, &b)], &stats);
    insta::assert_snapshot!("pair_stats", rounded(&out.concat(), 4, n));

    let [gram, ss, tt] = frl_inputs(&a, &b, dim);
    let out = run_frl(&gram, &ss, &tt, sf_loss::ALPHA, sf_loss::KAPPA);
    let labelled: Vec<String> = ["loss", "g_gram", "g_ss", "g_tt"]
        .iter()
        .zip(&out)
        .map(|(name, v)| format!("{name}:\n{}", rounded(v, 4, n)))
        .collect();
    insta::assert_snapshot!("frl", labelled.join("\n"));

    let [ab, aa, bb] = stats_f64(&a, &b, dim).map(|v| as_f32(&v));
    for (name, phi) in [
        ("fcl_term_focal", PhiSign::Focal),
        ("fcl_term_printed", PhiSign::Printed),
    ] {
        let out = run_fcl_term(&ab, &aa, &bb, &[1.0; 4], config(phi));
        insta::assert_snapshot!(name, rounded(&out.concat(), 4, n));
    }
}
