//! ProtoGCN's ops against their f64 references, with a snapshot of each:
//! - row L2 normalisation: forward and gradient on odd shapes with a zero row and an
//!   eps-dominated row, the reference's Jacobian against f64 finite differences, the GPU gradient
//!   by finite differences mid-graph;
//! - dropout: Φ⁻¹ against high-precision quantiles and a quadrature of the density, forward and
//!   gradient, the kept fraction of 10⁵ draws, a mask recorded from PyTorch reproduced exactly;
//! - the true-positive mask: first maxima, ties, non-finite logits and out-of-range labels;
//! - the class memory: forward and gradient, the memory update over two training steps (classes
//!   without true positives keep theirs), evaluation leaving it alone, the gradient by finite
//!   differences, which inputs take a gradient.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sfhead::engine::{AutodiffError, Graph, TensorId};
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::class_memory::{self, class_memory, true_positive_mask};
use sfhead::ops::{dropout, l2_normalize};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

/// ProtoGCN's eps for features and class centroids.
const PROTO_EPS: f32 = 1e-12;

/// `Σ gy ⊙ y` with the constant `gy`: its gradient with respect to y is `gy`.
fn weighted_loss(g: &mut Graph, y: TensorId, gy: Vec<f32>) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy);
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, weighted, &axes)
}

/// The worst norm-wise error of any row of `d` elements, each against its own largest value: a
/// zero row's gradient is g/eps, far above the others, and would hide their errors in one
/// tensor-wide norm.
fn rowwise_error(got: &[f32], want: &[f64], d: usize) -> f64 {
    let mut worst = 0.0f64;
    for (g, w) in got.chunks(d).zip(want.chunks(d)) {
        let e = normwise_error(g, w);
        if e.is_nan() {
            return e;
        }
        worst = worst.max(e);
    }
    worst
}

fn l2_normalize_case(shape: &[usize], eps: f32, zero_row: usize, tiny_row: usize, seed: u64) {
    let n: usize = shape.iter().product();
    let d = *shape.last().unwrap();
    let mut g = Graph::new();
    let x = g.input("x", shape);
    let y = l2_normalize::l2_normalize(&mut g, x, eps);
    let gy = uniform(seed + 1, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, gy.clone());
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let mut dx = uniform(seed, n, -1.0, 1.0);
    // A zero row, and a row of about eps in norm, where eps is half of the denominator.
    dx[zero_row * d..(zero_row + 1) * d].fill(0.0);
    let tiny_scale = eps.max(1e-12) / (d as f32).sqrt();
    for v in &mut dx[tiny_row * d..(tiny_row + 1) * d] {
        *v *= tiny_scale;
    }
    let out = h.run(&[(x, &dx)], &[y, gx]);
    let xf = to_f64(&dx);
    let what = format!("l2_normalize {shape:?} eps {eps:e}");
    // Each output is one element over a sum of squares: no cancellation.
    let want = l2_normalize::cpu::forward(&xf, d, f64::from(eps));
    check(&what, elementwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let want = l2_normalize::cpu::backward(&xf, &to_f64(&gy), d, f64::from(eps));
    check(
        &format!("{what} grad"),
        rowwise_error(&out[1], &want, d),
        REDUCTION_TOL,
    );
    // A zero row maps to zero and passes g/eps back, as PyTorch's norm subgradient gives.
    for j in 0..d {
        let i = zero_row * d + j;
        assert_eq!(out[0][i], 0.0, "{what}: zero row, element {j}");
        let want = f64::from(gy[i]) / f64::from(eps);
        assert!(
            (f64::from(out[1][i]) - want).abs() <= 1e-5 * want.abs(),
            "{what}: zero row grad, element {j}: {} vs {want}",
            out[1][i]
        );
    }
}

#[test]
fn l2_normalize_matches_reference() {
    l2_normalize_case(&[3, 7, 13], PROTO_EPS, 5, 17, 1300);
    // Rows longer than a workgroup, and more rows than one.
    l2_normalize_case(&[300, 257], PROTO_EPS, 299, 0, 1310);
    // A larger eps, which takes a visible share of every row's denominator.
    l2_normalize_case(&[9, 5], 0.1, 2, 7, 1320);
}

#[test]
fn l2_normalize_reference_gradient_matches_finite_differences() {
    let (rows, d, eps) = (3, 7, 1e-3);
    let x = to_f64(&uniform(1330, rows * d, -1.0, 1.0));
    let gy = to_f64(&uniform(1331, rows * d, -1.0, 1.0));
    let loss = |x: &[f64]| -> f64 {
        let y = l2_normalize::cpu::forward(x, d, eps);
        y.iter().zip(&gy).map(|(y, g)| y * g).sum()
    };
    let analytic = l2_normalize::cpu::backward(&x, &gy, d, eps);
    let h = 1e-6;
    for (i, want) in analytic.iter().enumerate() {
        let mut plus = x.clone();
        let mut minus = x.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
        assert!(
            (fd - want).abs() <= 1e-7 * want.abs().max(1.0),
            "element {i}: finite difference {fd} vs reference {want}"
        );
    }
}

#[test]
fn l2_normalize_gradient_passes_finite_differences() {
    for (shape, seed) in [(vec![3, 5, 4], 1340), (vec![2, 19], 1350)] {
        let n = shape.iter().product();
        // Entries of ±2 keep each row's norm well above the step.
        let r = gradcheck(
            &[(shape.clone(), uniform(seed, n, -2.0, 2.0))],
            |g, x| l2_normalize::l2_normalize(g, x[0], PROTO_EPS),
            1e-2,
            seed + 1,
        );
        check(&format!("l2_normalize {shape:?} gradcheck"), r.worst, 1e-2);
    }
}

#[test]
#[should_panic(expected = "finite eps ≥ 0")]
fn l2_normalize_rejects_a_negative_eps() {
    let mut g = Graph::new();
    let x = g.input("x", &[4, 3]);
    l2_normalize::l2_normalize(&mut g, x, -1e-12);
}

#[test]
fn l2_normalize_snapshots() {
    let shape = [4, 15];
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let y = l2_normalize::l2_normalize(&mut g, x, PROTO_EPS);
    let loss = weighted_loss(&mut g, y, fixed(60, 1.0));
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &fixed(60, 0.0))], &[y, gx]);
    insta::assert_snapshot!("l2_normalize", rounded(&out[0], 4, 5));
    insta::assert_snapshot!("l2_normalize_grad", rounded(&out[1], 4, 5));
}

/// `n` seeded N(0, 1) draws, as the training step fills noise inputs.
fn normal(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

#[test]
fn normal_quantile_matches_known_quantiles() {
    // √2·erfinv(2p − 1) with mpmath at 40 digits.
    let known = [
        (0.5, 0.0),
        (0.9, 1.281_551_565_544_600_5),
        (0.95, 1.644_853_626_951_472_7),
        (0.975, 1.959_963_984_540_054_2),
        (0.99, 2.326_347_874_040_841),
        (0.999, 3.090_232_306_167_813_5),
        (0.15, -1.036_433_389_493_789_6),
        (0.45, -0.125_661_346_855_074_03),
        (0.025, -1.959_963_984_540_054_2),
        (1e-6, -4.753_424_308_822_899),
        (0.999_999, 4.753_424_308_822_899),
        (1e-9, -5.997_807_015_007_687),
        (1e-15, -7.941_345_326_170_997),
    ];
    for (p, want) in known {
        let got = dropout::normal_quantile(p);
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "Φ⁻¹({p}) = {got}, want {want}"
        );
    }
    assert_eq!(dropout::normal_quantile(0.0), f64::NEG_INFINITY);
    assert_eq!(dropout::normal_quantile(1.0), f64::INFINITY);
    assert!(dropout::normal_quantile(1.5).is_nan());
}

#[test]
fn normal_quantile_inverts_the_cdf() {
    // Φ(x) = 1/2 + ∫₀ˣ φ by composite Simpson's rule (error below 1e-12 at these x), so that
    // |Φ(Φ⁻¹(p)) − p|/φ(Φ⁻¹(p)) measures the quantile's error in x.
    let density = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let cdf = |x: f64| {
        let steps = 4000;
        let h = x / f64::from(steps);
        let inner: f64 = (1..steps)
            .map(|i| density(f64::from(i) * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
            .sum();
        0.5 + h / 3.0 * (density(0.0) + inner + density(x))
    };
    for i in 1..100 {
        let p = f64::from(i) / 100.0;
        let x = dropout::normal_quantile(p);
        let error = (cdf(x) - p).abs() / density(x);
        assert!(error <= 1e-9, "Φ⁻¹({p}) = {x} is {error:e} off");
    }
}

fn dropout_case(shape: &[usize], p: f32, seed: u64) {
    let n: usize = shape.iter().product();
    let mut g = Graph::new();
    let (x, noise) = (g.input("x", shape), g.input("noise", shape));
    let y = dropout::dropout(&mut g, x, noise, p);
    let gy = uniform(seed + 2, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, gy.clone());
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let dx = uniform(seed, n, -2.0, 2.0);
    let dnoise = normal(seed + 1, n);
    let out = h.run(&[(x, &dx), (noise, &dnoise)], &[y, gx]);
    let (p64, z) = (f64::from(p), to_f64(&dnoise));
    let threshold = dropout::normal_quantile(p64);
    assert!(
        z.iter().all(|z| (z - threshold).abs() > 1e-5),
        "a draw lies within f32 rounding of the threshold: pick another seed"
    );
    let what = format!("dropout {shape:?} p {p}");
    let want = dropout::cpu::forward(&to_f64(&dx), &z, p64);
    check(&what, elementwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let want = dropout::cpu::forward(&to_f64(&gy), &z, p64);
    check(
        &format!("{what} grad"),
        elementwise_error(&out[1], &want),
        ELEMENTWISE_TOL,
    );
    let kept = out[0].iter().filter(|&&v| v != 0.0).count();
    if p == 0.0 {
        assert_eq!(out[0], dx, "{what}: p = 0 is the identity");
    } else {
        assert!(
            kept > 0 && kept < n,
            "{what}: {kept} of {n} kept, the case tests nothing"
        );
    }
}

#[test]
fn dropout_matches_reference() {
    // ProtoGCN's PRN dropout on odd shapes, one over several workgroups.
    dropout_case(&[3, 7, 13], 0.1, 1400);
    dropout_case(&[5, 257], 0.45, 1410);
    dropout_case(&[2, 33], 0.9, 1420);
    // p = 0 keeps everything and scales by 1.
    dropout_case(&[17], 0.0, 1430);
}

#[test]
fn dropout_keeps_one_minus_p_of_normal_draws() {
    let n = 100_000;
    for (p, seed) in [(0.1f32, 1440), (0.5, 1441), (0.85, 1442)] {
        let mut g = Graph::new();
        let (x, noise) = (g.input("x", &[n]), g.input("noise", &[n]));
        let y = dropout::dropout(&mut g, x, noise, p);
        let h = Harness::new(g, &[y]);
        let out = h.run(&[(x, &vec![1.0; n]), (noise, &normal(seed, n))], &[y]);
        let scale = dropout::scale(p);
        assert!(
            out[0].iter().all(|&v| v == 0.0 || v == scale),
            "p {p}: outputs are 0 or the scale {scale}"
        );
        let kept = out[0].iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        let (q, sigma) = (
            1.0 - f64::from(p),
            (f64::from(p) * (1.0 - f64::from(p)) / n as f64).sqrt(),
        );
        assert!(
            (kept - q).abs() <= 4.0 * sigma,
            "p {p}: kept fraction {kept} vs {q} ± 4·{sigma:.2e}"
        );
    }
}

/// Recorded with PyTorch 2.15 on the CPU:
/// ```python
/// torch.manual_seed(7); x = torch.randn(24)
/// y = torch.nn.functional.dropout(x, p=0.45, training=True)
/// ```
/// x and y as numpy prints their float32 values, and the kept elements (y ≠ 0).
const RECORDED_X: [f32; 24] = [
    -0.8201345,
    0.39563116,
    0.8989085,
    -1.3884039,
    -0.16699602,
    0.28514996,
    -0.6410915,
    -0.8936554,
    -0.8489086,
    -1.2169294,
    -0.081021585,
    1.3614851,
    -1.3032167,
    0.08747838,
    -1.3849614,
    0.5035639,
    -0.8667016,
    -0.5640067,
    -2.0564625,
    -0.35672253,
    1.0955805,
    0.48235416,
    1.3989184,
    1.4058529,
];
const RECORDED_KEPT: &str = "000100001011001111011011";
const RECORDED_Y: [f32; 24] = [
    -0.0,
    0.0,
    0.0,
    -2.5243707,
    -0.0,
    0.0,
    -0.0,
    -0.0,
    -1.5434701,
    -0.0,
    -0.14731197,
    2.4754274,
    -0.0,
    0.0,
    -2.5181115,
    0.9155707,
    -1.575821,
    -1.0254667,
    -0.0,
    -0.6485864,
    1.9919643,
    0.0,
    2.5434878,
    2.556096,
];

#[test]
fn dropout_reproduces_a_recorded_pytorch_mask() {
    let n = RECORDED_X.len();
    let mut g = Graph::new();
    let (x, noise) = (g.input("x", &[n]), g.input("noise", &[n]));
    let y = dropout::dropout(&mut g, x, noise, 0.45);
    let gy = uniform(1450, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, gy.clone());
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let kept: Vec<bool> = RECORDED_KEPT.chars().map(|c| c == '1').collect();
    let z = dropout::recorded_noise(&kept);
    let out = h.run(&[(x, &RECORDED_X), (noise, &z)], &[y, gx]);
    // Bit for bit, signed zeros included: x·1.8181818 where f32(1/0.55) = 1.8181819 would be
    // an ulp off on most kept elements.
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&out[0]),
        bits(&RECORDED_Y),
        "dropout of the recorded mask"
    );
    for (i, (&k, &g)) in kept.iter().zip(&out[1]).enumerate() {
        let want = if k { gy[i] * dropout::scale(0.45) } else { 0.0 };
        assert_eq!(g, want, "gradient of element {i}");
    }
}

#[test]
fn dropout_gradient_passes_finite_differences() {
    let shape = vec![3, 5, 7];
    let n = 105;
    let noise = normal(1460, n);
    let r = gradcheck(
        &[(shape.clone(), uniform(1461, n, -1.0, 1.0))],
        |g, x| {
            let noise = g.constant("noise", &[3, 5, 7], noise);
            dropout::dropout(g, x[0], noise, 0.3)
        },
        1e-2,
        1462,
    );
    check("dropout gradcheck", r.worst, 1e-2);
}

#[test]
fn dropout_noise_has_no_gradient() {
    let mut g = Graph::new();
    let (x, noise) = (g.input("x", &[4]), g.input("noise", &[4]));
    let y = dropout::dropout(&mut g, x, noise, 0.1);
    let loss = weighted_loss(&mut g, y, vec![1.0; 4]);
    let err = g.backward(loss, &[x, noise]).unwrap_err();
    assert!(
        matches!(err, AutodiffError::NotDifferentiable(name) if name.contains("noise")),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "probability 0 ≤ p < 1")]
fn dropout_rejects_p_one() {
    let mut g = Graph::new();
    let (x, noise) = (g.input("x", &[4]), g.input("noise", &[4]));
    dropout::dropout(&mut g, x, noise, 1.0);
}

#[test]
#[should_panic(expected = "noise of the input's shape")]
fn dropout_rejects_mismatched_noise() {
    let mut g = Graph::new();
    let (x, noise) = (g.input("x", &[4, 3]), g.input("noise", &[12]));
    dropout::dropout(&mut g, x, noise, 0.1);
}

#[test]
fn dropout_snapshots() {
    let n = 60;
    let mut g = Graph::new();
    let (x, noise) = (g.input("x", &[4, 15]), g.input("noise", &[4, 15]));
    let y = dropout::dropout(&mut g, x, noise, 0.25);
    let loss = weighted_loss(&mut g, y, fixed(n, 1.0));
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    // Noise sweeping [−1.5, 1.5]: kept where it is at least Φ⁻¹(0.25) ≈ −0.674.
    let z: Vec<f32> = fixed(n, 0.4).iter().map(|v| 1.5 * v).collect();
    let out = h.run(&[(x, &fixed(n, 0.0)), (noise, &z)], &[y, gx]);
    insta::assert_snapshot!("dropout", rounded(&out[0], 4, 5));
    insta::assert_snapshot!("dropout_grad", rounded(&out[1], 4, 5));
}

/// ProtoGCN's class-memory momentum.
const PROTO_MOMENTUM: f32 = 0.9;

/// A seeded (batch, classes) 0/1 mask with about `density` ones, class `empty` without any.
fn mask01(seed: u64, batch: usize, classes: usize, density: f32, empty: usize) -> Vec<f32> {
    uniform(seed, batch * classes, 0.0, 1.0)
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            if i % classes != empty && u < density {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn true_positive_mask_matches_reference() {
    let (b, k) = (37, 11);
    let mut logits = uniform(1500, b * k, -3.0, 3.0);
    let argmax = |row: &[f32]| (0..k).fold(0, |m, j| if row[j] > row[m] { j } else { m });
    // Rows 0–19 are labelled with their first maximum, the rest off it.
    let mut labels: Vec<u32> = (0..b)
        .map(|r| {
            let a = argmax(&logits[r * k..(r + 1) * k]);
            (if r < 20 { a } else { (a + 1 + r % (k - 1)) % k }) as u32
        })
        .collect();
    let mut want_ones: Vec<usize> = (0..20).collect();
    // Rows 20 and 21 tie their two largest logits at classes 2 and 7: torch's max(1) takes the
    // first, so the label 2 is a true positive and the label 7 is not.
    for (r, label) in [(20, 2u32), (21, 7)] {
        logits[r * k + 2] = 5.0;
        logits[r * k + 7] = 5.0;
        labels[r] = label;
    }
    want_ones.push(20);
    // Non-finite rows, where the softmax threshold decides: a NaN elsewhere in a row labelled
    // with its largest number (the softmax is NaN, so not > 0), +∞ at the label (its softmax
    // ∞ − ∞ is NaN), and −∞ elsewhere (the softmax is finite: still a true positive).
    let row = 0;
    logits[row * k + (labels[row] as usize + 1) % k] = f32::NAN;
    let row = 1;
    logits[row * k + labels[row] as usize] = f32::INFINITY;
    let row = 2;
    logits[row * k + (labels[row] as usize + 1) % k] = f32::NEG_INFINITY;
    want_ones.retain(|&r| r != 0 && r != 1);
    // A label beyond the classes has no true positive.
    labels[3] = k as u32;
    want_ones.retain(|&r| r != 3);

    let mut g = Graph::new();
    let (l, y) = (g.input("logits", &[b, k]), g.input_u32("labels", &[b]));
    let mask = true_positive_mask(&mut g, l, y);
    let h = Harness::new(g, &[mask]);
    h.exe.write_u32(y, &labels).unwrap();
    let out = h.run(&[(l, &logits)], &[mask]).remove(0);
    let want = class_memory::cpu::true_positive_mask(&to_f64(&logits), &labels);
    assert_eq!(
        to_f64(&out),
        want,
        "true positive mask against the reference"
    );
    for r in 0..b {
        let ones: Vec<usize> = (0..k).filter(|&j| out[r * k + j] != 0.0).collect();
        let expected = if want_ones.contains(&r) {
            vec![labels[r] as usize]
        } else {
            vec![]
        };
        assert_eq!(ones, expected, "row {r} (label {})", labels[r]);
    }
}

/// class_memory in `mode` of inputs f and mask over a state memory initialised to `memory`, a
/// weighted loss of the output and the gradient of f.
struct MemoryCase {
    h: Harness,
    f: TensorId,
    mask: TensorId,
    memory: TensorId,
    out: TensorId,
    gf: TensorId,
}

fn memory_case(
    b: usize,
    d: usize,
    k: usize,
    memory: Vec<f32>,
    gy: Vec<f32>,
    mode: Mode,
) -> MemoryCase {
    let mut g = Graph::new();
    let (f, mask) = (g.input("f", &[b, d]), g.input("mask", &[b, k]));
    let memory = g.state("csc.avg_f", &[d, k], memory);
    let out = class_memory(&mut g, f, mask, memory, PROTO_MOMENTUM, mode);
    let loss = weighted_loss(&mut g, out, gy);
    let gf = g.backward(loss, &[f]).unwrap()[0];
    let h = Harness::new(g, &[out, gf]);
    MemoryCase {
        h,
        f,
        mask,
        memory,
        out,
        gf,
    }
}

fn class_memory_case(b: usize, d: usize, k: usize, seed: u64) {
    let m0 = uniform(seed, d * k, -1.0, 1.0);
    let gy = uniform(seed + 1, d * k, -1.0, 1.0);
    let c = memory_case(b, d, k, m0.clone(), gy.clone(), Mode::Train);
    let df = uniform(seed + 2, b * d, -2.0, 2.0);
    let dmask = mask01(seed + 3, b, k, 0.3, 1);
    let momentum = f64::from(PROTO_MOMENTUM);
    let (f64f, f64mask) = (to_f64(&df), to_f64(&dmask));
    let what = format!("class_memory B {b} D {d} K {k}");
    let mut memory = m0.clone();
    for step in 0..2 {
        let out = c.h.run(&[(c.f, &df), (c.mask, &dmask)], &[c.out, c.gf]);
        let want = class_memory::cpu::class_memory(&f64f, &f64mask, &to_f64(&memory), b, momentum);
        check(
            &format!("{what} step {step}"),
            normwise_error(&out[0], &want),
            REDUCTION_TOL,
        );
        let want = class_memory::cpu::class_memory_grad(&f64mask, &to_f64(&gy), b, momentum);
        check(
            &format!("{what} step {step} grad"),
            normwise_error(&out[1], &want),
            REDUCTION_TOL,
        );
        let updated = c.h.exe.read(c.memory).unwrap();
        assert_eq!(
            updated, out[0],
            "{what} step {step}: the memory becomes the output"
        );
        // Class 1 has no true positive: its column is the initial memory, bit for bit.
        for j in 0..d {
            assert_eq!(
                updated[j * k + 1].to_bits(),
                m0[j * k + 1].to_bits(),
                "{what} step {step}: class 1 without true positives, feature {j}"
            );
        }
        assert_ne!(
            updated, memory,
            "{what} step {step}: the other classes move"
        );
        memory = updated;
    }
}

#[test]
fn class_memory_matches_reference_and_updates_in_training() {
    class_memory_case(13, 7, 5, 1600);
    // More (d, k) cells than a workgroup, and ProtoGCN's NTU120 shapes at batch 16.
    class_memory_case(6, 300, 11, 1610);
    class_memory_case(16, 256, 120, 1620);
}

#[test]
fn class_memory_leaves_the_memory_in_evaluation() {
    let (b, d, k) = (9, 5, 4);
    let m0 = uniform(1630, d * k, -1.0, 1.0);
    let c = memory_case(
        b,
        d,
        k,
        m0.clone(),
        uniform(1631, d * k, -1.0, 1.0),
        Mode::Eval,
    );
    let df = uniform(1632, b * d, -2.0, 2.0);
    let dmask = mask01(1633, b, k, 0.4, 3);
    let first = c.h.run(&[(c.f, &df), (c.mask, &dmask)], &[c.out]).remove(0);
    let second = c.h.run(&[(c.f, &df), (c.mask, &dmask)], &[c.out]).remove(0);
    assert_eq!(
        c.h.exe.read(c.memory).unwrap(),
        m0,
        "evaluation writes no memory"
    );
    assert_eq!(first, second, "the same output from the unchanged memory");
    let want = class_memory::cpu::class_memory(
        &to_f64(&df),
        &to_f64(&dmask),
        &to_f64(&m0),
        b,
        f64::from(PROTO_MOMENTUM),
    );
    check(
        "class_memory in evaluation",
        normwise_error(&first, &want),
        REDUCTION_TOL,
    );
}

#[test]
fn class_memory_reference_gradient_matches_finite_differences() {
    let (b, d, k) = (4, 3, 5);
    let momentum = f64::from(PROTO_MOMENTUM);
    let f = to_f64(&uniform(1640, b * d, -1.0, 1.0));
    let mask = to_f64(&mask01(1641, b, k, 0.5, 0));
    let memory = to_f64(&uniform(1642, d * k, -1.0, 1.0));
    let gy = to_f64(&uniform(1643, d * k, -1.0, 1.0));
    let loss = |f: &[f64]| -> f64 {
        let y = class_memory::cpu::class_memory(f, &mask, &memory, b, momentum);
        y.iter().zip(&gy).map(|(y, g)| y * g).sum()
    };
    let analytic = class_memory::cpu::class_memory_grad(&mask, &gy, b, momentum);
    let h = 1e-6;
    for (i, want) in analytic.iter().enumerate() {
        let mut plus = f.clone();
        let mut minus = f.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
        assert!(
            (fd - want).abs() <= 1e-8,
            "element {i}: finite difference {fd} vs reference {want}"
        );
    }
}

#[test]
fn class_memory_gradient_passes_finite_differences() {
    // Evaluation mode: a training graph would move the memory between the difference's runs.
    let (b, d, k) = (7, 5, 6);
    let mask = mask01(1650, b, k, 0.35, 2);
    let memory = uniform(1651, d * k, -1.0, 1.0);
    let r = gradcheck(
        &[(vec![b, d], uniform(1652, b * d, -1.0, 1.0))],
        |g, x| {
            let mask = g.constant("mask", &[b, k], mask);
            let memory = g.state("csc.avg_f", &[d, k], memory);
            class_memory(g, x[0], mask, memory, PROTO_MOMENTUM, Mode::Eval)
        },
        1e-2,
        1653,
    );
    check("class_memory gradcheck", r.worst, 1e-2);
}

#[test]
fn class_memory_differentiates_features_only() {
    // ProtoGCN's use: the mask of the logits' true positives, the logits needing a gradient for
    // the classification loss. The mask passes none back, the features get theirs.
    let (b, d, k) = (6, 4, 3);
    let mut g = Graph::new();
    let (f, logits) = (g.input("f", &[b, d]), g.input("logits", &[b, k]));
    let labels = g.input_u32("labels", &[b]);
    let mask = true_positive_mask(&mut g, logits, labels);
    let memory = g.state("csc.avg_f", &[d, k], vec![0.5; d * k]);
    let out = class_memory(&mut g, f, mask, memory, PROTO_MOMENTUM, Mode::Train);
    let gy = uniform(1660, d * k, -1.0, 1.0);
    let loss = weighted_loss(&mut g, out, gy.clone());
    let grads = g.backward_partial(loss, &[f, logits]).unwrap();
    assert!(
        grads[1].is_none(),
        "the logits get no gradient through the mask"
    );
    let gf = grads[0].expect("the features' gradient");
    let h = Harness::new(g, &[mask, gf]);
    let dl = uniform(1661, b * k, -2.0, 2.0);
    let dlabels: Vec<u32> = (0..b as u32).map(|i| i % k as u32).collect();
    h.exe.write_u32(labels, &dlabels).unwrap();
    let out = h.run(
        &[(f, &uniform(1662, b * d, -1.0, 1.0)), (logits, &dl)],
        &[mask, gf],
    );
    let want_mask = class_memory::cpu::true_positive_mask(&to_f64(&dl), &dlabels);
    assert_eq!(to_f64(&out[0]), want_mask);
    let want = class_memory::cpu::class_memory_grad(
        &want_mask,
        &to_f64(&gy),
        b,
        f64::from(PROTO_MOMENTUM),
    );
    check(
        "class_memory grad through the true-positive mask",
        normwise_error(&out[1], &want),
        REDUCTION_TOL,
    );

    // A mask from anything else, or the memory, asking for a gradient is refused.
    let mut g = Graph::new();
    let (f, mask) = (g.input("f", &[b, d]), g.input("mask", &[b, k]));
    let memory = g.state("csc.avg_f", &[d, k], vec![0.5; d * k]);
    let out = class_memory(&mut g, f, mask, memory, PROTO_MOMENTUM, Mode::Train);
    let loss = weighted_loss(&mut g, out, vec![1.0; d * k]);
    for wrt in [mask, memory] {
        let err = g.clone().backward(loss, &[f, wrt]).unwrap_err();
        assert!(
            matches!(err, AutodiffError::NotDifferentiable(name) if name.contains("class_memory")),
            "{err}"
        );
    }
}

#[test]
#[should_panic(expected = "must be a state tensor")]
fn training_class_memory_needs_a_state_memory() {
    let mut g = Graph::new();
    let (f, mask) = (g.input("f", &[4, 3]), g.input("mask", &[4, 2]));
    let memory = g.input("memory", &[3, 2]);
    class_memory(&mut g, f, mask, memory, PROTO_MOMENTUM, Mode::Train);
}

#[test]
#[should_panic(expected = "class_memory needs a (3, 2) memory")]
fn class_memory_rejects_a_transposed_memory() {
    let mut g = Graph::new();
    let (f, mask) = (g.input("f", &[4, 3]), g.input("mask", &[4, 2]));
    let memory = g.state("memory", &[2, 3], vec![0.0; 6]);
    class_memory(&mut g, f, mask, memory, PROTO_MOMENTUM, Mode::Train);
}

#[test]
fn class_memory_snapshots() {
    let (b, d, k) = (6, 5, 4);
    let mut g = Graph::new();
    let (f, logits) = (g.input("f", &[b, d]), g.input("logits", &[b, k]));
    let labels = g.input_u32("labels", &[b]);
    let mask = true_positive_mask(&mut g, logits, labels);
    let memory = g.state("csc.avg_f", &[d, k], fixed(d * k, 2.0));
    let out = class_memory(&mut g, f, mask, memory, PROTO_MOMENTUM, Mode::Train);
    let loss = weighted_loss(&mut g, out, fixed(d * k, 1.0));
    let gf = g.backward(loss, &[f]).unwrap()[0];
    let h = Harness::new(g, &[mask, out, gf]);
    // The logits' first maxima are at 2, 0, 3, 0, 3, 0: every row but the fourth is a true
    // positive, classes 0 and 3 have two each, class 1 none.
    let dlabels = [2, 0, 3, 1, 3, 0];
    h.exe.write_u32(labels, &dlabels).unwrap();
    let out = h.run(
        &[(f, &fixed(b * d, 0.0)), (logits, &fixed(b * k, 0.5))],
        &[mask, out, gf],
    );
    insta::assert_snapshot!("true_positive_mask", rounded(&out[0], 4, k));
    insta::assert_snapshot!("class_memory", rounded(&out[1], 4, k));
    insta::assert_snapshot!("class_memory_grad", rounded(&out[2], 4, d));
}
