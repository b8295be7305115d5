//! InfoGCN's loss ops against their f64 references: label-smoothing cross-entropy, the
//! class-mean/prior MSE and the L2 norm. Forward and gradient on seeded inputs of odd sizes (a
//! batch with an absent class and a class of three rows; InfoGCN's 120 classes × 256 features),
//! the references' own gradients against f64 finite differences, the GPU gradients by finite
//! differences mid-graph, smoothing 0 against plain cross-entropy, and snapshots.

use sfhead::engine::{AutodiffError, Graph, TensorId};
use sfhead::ops::class_mean_mse::{self, class_mean_mse};
use sfhead::ops::cross_entropy::{self, cross_entropy, cross_entropy_smoothed};
use sfhead::ops::l2_norm::{self, l2_norm};
use sfhead::ops::mul;
use sfhead::testing::*;

use crate::fixed;

/// The incoming gradient of every mid-graph check: the loss is scaled, so a backward that
/// ignores its incoming gradient fails.
const COEF: f32 = -2.5;

/// `COEF · loss`.
fn scaled(g: &mut Graph, loss: TensorId) -> TensorId {
    let coef = g.constant("coef", &[1], vec![COEF]);
    mul::mul(g, loss, coef)
}

/// Seeded labels in [0, classes).
fn random_labels(seed: u64, n: usize, classes: usize) -> Vec<u32> {
    uniform(seed, n, 0.0, classes as f32)
        .iter()
        .map(|&v| (v as u32).min(classes as u32 - 1))
        .collect()
}

/// Central differences of the f64 `loss` at `x` along every coordinate, against `analytic`.
fn check_reference_gradient(what: &str, x: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) {
    let h = 1e-6;
    for (i, want) in analytic.iter().enumerate() {
        let mut plus = x.to_vec();
        let mut minus = x.to_vec();
        plus[i] += h;
        minus[i] -= h;
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
        assert!(
            (fd - want).abs() <= 1e-7 * want.abs().max(1.0),
            "{what}, element {i}: finite difference {fd} vs reference {want}"
        );
    }
}

// ---- label-smoothing cross-entropy ----

/// GPU loss and logit gradient of the smoothed cross-entropy under `COEF`.
fn smoothed_ce_on_gpu(logits: &[f32], labels: &[u32], classes: usize, eps: f32) -> [Vec<f32>; 2] {
    let rows = labels.len();
    let mut g = Graph::new();
    let z = g.input("z", &[rows, classes]);
    let y = g.input_u32("y", &[rows]);
    let loss = cross_entropy_smoothed(&mut g, z, y, eps);
    let top = scaled(&mut g, loss);
    let gz = g.backward(top, &[z]).unwrap()[0];
    let h = Harness::new(g, &[loss, gz]);
    h.exe.write_u32(y, labels).unwrap();
    <[Vec<f32>; 2]>::try_from(h.run(&[(z, logits)], &[loss, gz])).unwrap()
}

fn smoothed_ce_case(rows: usize, classes: usize, eps: f32, seed: u64) {
    let logits = uniform(seed, rows * classes, -3.0, 3.0);
    let labels = random_labels(seed + 1, rows, classes);
    let [loss, gz] = smoothed_ce_on_gpu(&logits, &labels, classes, eps);
    let zf = to_f64(&logits);
    let e = f64::from(eps);
    let what = format!("smoothed cross entropy {rows}×{classes}, ε = {eps}");
    let want = cross_entropy::cpu::cross_entropy_smoothed(&zf, &labels, classes, e);
    check(&what, normwise_error(&loss, &[want]), REDUCTION_TOL);
    let want =
        cross_entropy::cpu::cross_entropy_smoothed_grad(&zf, &labels, classes, e, f64::from(COEF));
    check(
        &format!("{what} grad"),
        normwise_error(&gz, &want),
        REDUCTION_TOL,
    );
}

#[test]
fn smoothed_cross_entropy_matches_reference() {
    smoothed_ce_case(7, 5, 0.1, 1000);
    smoothed_ce_case(13, 11, 0.37, 1010);
    // InfoGCN on NTU120: 120 classes.
    smoothed_ce_case(64, 120, 0.1, 1020);
    // All smoothing: the target is uniform.
    smoothed_ce_case(5, 3, 1.0, 1030);
}

#[test]
fn smoothed_cross_entropy_reference_follows_its_definition() {
    // Against a hand-worked row: z = (0, ln 2, ln 3), y = 2, so p = (1, 2, 3)/6.
    let z = [0.0, 2f64.ln(), 3f64.ln()];
    let eps = 0.2;
    let lp: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|p| (p / 6.0).ln()).collect();
    let want = (1.0 - eps) * -lp[2] + eps * -(lp[0] + lp[1] + lp[2]) / 3.0;
    let got = cross_entropy::cpu::cross_entropy_smoothed(&z, &[2], 3, eps);
    assert!((got - want).abs() <= 1e-14, "{got} vs {want}");
    let (rows, classes) = (4, 6);
    let zf = to_f64(&uniform(1040, rows * classes, -2.0, 2.0));
    let labels = random_labels(1041, rows, classes);
    let analytic = cross_entropy::cpu::cross_entropy_smoothed_grad(&zf, &labels, classes, 0.1, 1.0);
    check_reference_gradient("smoothed cross entropy reference", &zf, &analytic, |x| {
        cross_entropy::cpu::cross_entropy_smoothed(x, &labels, classes, 0.1)
    });
}

#[test]
fn smoothing_zero_is_plain_cross_entropy() {
    let (rows, classes) = (9, 7);
    let logits = uniform(1050, rows * classes, -4.0, 4.0);
    let labels = random_labels(1051, rows, classes);
    let mut g = Graph::new();
    let z = g.input("z", &[rows, classes]);
    let y = g.input_u32("y", &[rows]);
    let plain = cross_entropy(&mut g, z, y);
    let top = scaled(&mut g, plain);
    let gz = g.backward(top, &[z]).unwrap()[0];
    let h = Harness::new(g, &[plain, gz]);
    h.exe.write_u32(y, &labels).unwrap();
    let want = h.run(&[(z, &logits)], &[plain, gz]);
    let [loss, grad] = smoothed_ce_on_gpu(&logits, &labels, classes, 0.0);
    assert_eq!(loss, want[0], "loss at smoothing 0");
    assert_eq!(grad, want[1], "gradient at smoothing 0");
    // And both are the unsmoothed cross-entropy.
    let zf = to_f64(&logits);
    let reference = cross_entropy::cpu::cross_entropy(&zf, &labels, classes);
    check(
        "plain cross entropy",
        normwise_error(&loss, &[reference]),
        REDUCTION_TOL,
    );
}

#[test]
fn smoothed_cross_entropy_passes_finite_differences() {
    let (rows, classes) = (7, 5);
    let inputs = vec![(
        vec![rows, classes],
        uniform(1060, rows * classes, -2.0, 2.0),
    )];
    let labels = random_labels(1061, rows, classes);
    let r = gradcheck(
        &inputs,
        |g, x| {
            let y = g.constant_u32("y", &[rows], labels);
            cross_entropy_smoothed(g, x[0], y, 0.1)
        },
        1e-2,
        1062,
    );
    check("smoothed cross entropy gradcheck", r.worst, 1e-2);
}

#[test]
#[should_panic(expected = "label smoothing must lie in [0, 1]")]
fn smoothing_outside_the_unit_interval_is_refused() {
    let mut g = Graph::new();
    let z = g.input("z", &[2, 3]);
    let y = g.input_u32("y", &[2]);
    cross_entropy_smoothed(&mut g, z, y, 1.5);
}

#[test]
fn smoothed_cross_entropy_snapshot() {
    let [loss, gz] = smoothed_ce_on_gpu(&fixed(12, 0.1), &[0, 3, 1], 4, 0.1);
    insta::assert_snapshot!("smoothed_cross_entropy", rounded(&loss, 4, 1));
    insta::assert_snapshot!("smoothed_cross_entropy_grad", rounded(&gz, 4, 4));
}

// ---- class-mean/prior MSE ----

/// GPU loss and z gradient of the class-mean MSE under `COEF`.
fn class_mean_mse_on_gpu(z: &[f32], labels: &[u32], prior: &[f32], d: usize) -> [Vec<f32>; 2] {
    let (rows, classes) = (labels.len(), prior.len() / d);
    let mut g = Graph::new();
    let zt = g.input("z", &[rows, d]);
    let y = g.input_u32("y", &[rows]);
    let p = g.constant("prior", &[classes, d], prior.to_vec());
    let loss = class_mean_mse(&mut g, zt, y, p);
    let top = scaled(&mut g, loss);
    let gz = g.backward(top, &[zt]).unwrap()[0];
    let h = Harness::new(g, &[loss, gz]);
    h.exe.write_u32(y, labels).unwrap();
    <[Vec<f32>; 2]>::try_from(h.run(&[(zt, z)], &[loss, gz])).unwrap()
}

fn class_mean_mse_case(labels: &[u32], classes: usize, d: usize, seed: u64) {
    let rows = labels.len();
    let z = uniform(seed, rows * d, -1.0, 1.0);
    let prior = uniform(seed + 1, classes * d, -1.0, 1.0);
    let [loss, gz] = class_mean_mse_on_gpu(&z, labels, &prior, d);
    let (zf, pf) = (to_f64(&z), to_f64(&prior));
    let what = format!("class_mean_mse N = {rows}, K = {classes}, D = {d}");
    let want = class_mean_mse::cpu::class_mean_mse(&zf, labels, &pf);
    check(&what, normwise_error(&loss, &[want]), REDUCTION_TOL);
    let want = class_mean_mse::cpu::class_mean_mse_grad(&zf, labels, &pf, f64::from(COEF));
    check(
        &format!("{what} grad"),
        normwise_error(&gz, &want),
        REDUCTION_TOL,
    );
}

/// Seven rows over five classes: class 2 absent, class 3 three times.
const SMALL_LABELS: [u32; 7] = [3, 0, 3, 4, 1, 3, 0];

#[test]
fn class_mean_mse_matches_reference() {
    class_mean_mse_case(&SMALL_LABELS, 5, 9, 1100);
    // InfoGCN on NTU120: 120 classes of 256 features, most absent from a batch of 64.
    class_mean_mse_case(&random_labels(1110, 64, 120), 120, 256, 1111);
    // A batch of one class.
    class_mean_mse_case(&[2; 5], 3, 4, 1120);
}

#[test]
fn class_mean_mse_reference_follows_its_definition() {
    // Two features, classes 0 and 2 present (1 absent): class 0 has rows (1, 2) and (3, 6), mean
    // (2, 4), prior (1, 1); class 2 has the row (0, −1), prior (0, 1). Squares 1, 9, 0, 4 over
    // P·D = 4 values.
    let z = [1.0, 2.0, 3.0, 6.0, 0.0, -1.0];
    let prior = [1.0, 1.0, 5.0, 5.0, 0.0, 1.0];
    let got = class_mean_mse::cpu::class_mean_mse(&z, &[0, 0, 2], &prior);
    assert_eq!(got, 14.0 / 4.0);
    let (d, classes) = (3, 5);
    let zf = to_f64(&uniform(1130, SMALL_LABELS.len() * d, -1.0, 1.0));
    let pf = to_f64(&uniform(1131, classes * d, -1.0, 1.0));
    let analytic = class_mean_mse::cpu::class_mean_mse_grad(&zf, &SMALL_LABELS, &pf, 1.0);
    check_reference_gradient("class_mean_mse reference", &zf, &analytic, |x| {
        class_mean_mse::cpu::class_mean_mse(x, &SMALL_LABELS, &pf)
    });
}

#[test]
fn class_mean_mse_passes_finite_differences() {
    let (d, classes) = (6, 5);
    let rows = SMALL_LABELS.len();
    let inputs = vec![(vec![rows, d], uniform(1140, rows * d, -1.0, 1.0))];
    let prior = uniform(1141, classes * d, -1.0, 1.0);
    let r = gradcheck(
        &inputs,
        |g, x| {
            let y = g.constant_u32("y", &[rows], SMALL_LABELS.to_vec());
            let p = g.constant("prior", &[classes, d], prior);
            class_mean_mse(g, x[0], y, p)
        },
        1e-2,
        1142,
    );
    check("class_mean_mse gradcheck", r.worst, 1e-2);
}

#[test]
fn class_mean_mse_ignores_labels_out_of_range() {
    let (d, classes) = (4, 5);
    // Row 2 is labelled K: the loss is that of the other rows, and row 2 gets no gradient.
    let labels = [1, 4, 5, 1, 0];
    let z = uniform(1150, labels.len() * d, -1.0, 1.0);
    let prior = uniform(1151, classes * d, -1.0, 1.0);
    let [loss, gz] = class_mean_mse_on_gpu(&z, &labels, &prior, d);
    let kept: Vec<f64> = to_f64(&z)
        .chunks(d)
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .flat_map(|(_, row)| row.to_vec())
        .collect();
    let want = class_mean_mse::cpu::class_mean_mse(&kept, &[1, 4, 1, 0], &to_f64(&prior));
    check(
        "class_mean_mse with a label of K",
        normwise_error(&loss, &[want]),
        REDUCTION_TOL,
    );
    assert_eq!(gz[2 * d..3 * d], [0.0; 4], "row with a label of K");
    // With no label in range no class is present: the loss is 0/0.
    let [loss, gz] = class_mean_mse_on_gpu(&z, &[5, 9, 5, 6, 7], &prior, d);
    assert!(loss[0].is_nan(), "no class present gives {}", loss[0]);
    assert!(
        gz.iter().all(|&v| v == 0.0),
        "no class present: gradient {gz:?}"
    );
}

#[test]
fn class_mean_mse_refuses_a_prior_gradient() {
    let mut g = Graph::new();
    let z = g.input("z", &[3, 2]);
    let y = g.input_u32("y", &[3]);
    let prior = g.input("prior", &[4, 2]);
    let loss = class_mean_mse(&mut g, z, y, prior);
    let err = g.backward(loss, &[z, prior]).unwrap_err();
    assert_eq!(
        err,
        AutodiffError::NotDifferentiable("class_mean_mse prior")
    );
}

#[test]
#[should_panic(expected = "class_mean_mse needs a (K, 4) prior")]
fn class_mean_mse_rejects_a_prior_of_other_width() {
    let mut g = Graph::new();
    let z = g.input("z", &[3, 4]);
    let y = g.input_u32("y", &[3]);
    let prior = g.input("prior", &[5, 3]);
    class_mean_mse(&mut g, z, y, prior);
}

#[test]
fn class_mean_mse_snapshot() {
    let d = 3;
    let prior: Vec<f32> = fixed(5 * d, 0.5).iter().map(|v| 0.5 * v).collect();
    let [loss, gz] = class_mean_mse_on_gpu(&fixed(7 * d, 0.0), &SMALL_LABELS, &prior, d);
    insta::assert_snapshot!("class_mean_mse", rounded(&loss, 4, 1));
    insta::assert_snapshot!("class_mean_mse_grad", rounded(&gz, 4, d));
}

// ---- L2 norm ----

/// GPU norm and gradient of `x` (of `shape`) under `COEF`.
fn l2_norm_on_gpu(x: &[f32], shape: &[usize]) -> [Vec<f32>; 2] {
    let mut g = Graph::new();
    let xt = g.input("x", shape);
    let norm = l2_norm(&mut g, xt);
    let top = scaled(&mut g, norm);
    let gx = g.backward(top, &[xt]).unwrap()[0];
    let h = Harness::new(g, &[norm, gx]);
    <[Vec<f32>; 2]>::try_from(h.run(&[(xt, x)], &[norm, gx])).unwrap()
}

#[test]
fn l2_norm_matches_reference() {
    // One chunk, and several chunks of the first pass (4096 elements each) with a short last one.
    for (shape, seed) in [
        (vec![7, 13], 1200),
        (vec![256], 1210),
        (vec![3, 5, 1001], 1220),
    ] {
        let n = shape.iter().product();
        let x = uniform(seed, n, -1.0, 1.0);
        let [norm, gx] = l2_norm_on_gpu(&x, &shape);
        let xf = to_f64(&x);
        let what = format!("l2_norm {shape:?}");
        check(
            &what,
            normwise_error(&norm, &[l2_norm::cpu::l2_norm(&xf)]),
            REDUCTION_TOL,
        );
        // Each gradient element is one product and quotient of the norm.
        let want = l2_norm::cpu::l2_norm_grad(&xf, f64::from(COEF));
        check(
            &format!("{what} grad"),
            elementwise_error(&gx, &want),
            REDUCTION_TOL,
        );
    }
}

#[test]
fn l2_norm_of_zero_has_zero_gradient() {
    let [norm, gx] = l2_norm_on_gpu(&[0.0; 11], &[11]);
    assert_eq!(norm, [0.0]);
    assert_eq!(gx, [0.0; 11], "PyTorch's subgradient of the norm at 0");
}

#[test]
fn l2_norm_reference_follows_its_definition() {
    assert_eq!(l2_norm::cpu::l2_norm(&[3.0, -4.0, 0.0, 12.0]), 13.0);
    let x = to_f64(&uniform(1230, 9, -1.0, 1.0));
    let analytic = l2_norm::cpu::l2_norm_grad(&x, 1.0);
    check_reference_gradient("l2_norm reference", &x, &analytic, l2_norm::cpu::l2_norm);
}

#[test]
fn l2_norm_passes_finite_differences() {
    for (shape, seed) in [(vec![5, 9], 1240), (vec![3, 2, 701], 1250)] {
        let n = shape.iter().product();
        let r = gradcheck(
            &[(shape.clone(), uniform(seed, n, -1.0, 1.0))],
            |g, x| l2_norm(g, x[0]),
            1e-2,
            seed + 1,
        );
        check(&format!("l2_norm {shape:?} gradcheck"), r.worst, 1e-2);
    }
}

#[test]
fn l2_norm_snapshot() {
    let [norm, gx] = l2_norm_on_gpu(&fixed(10, 0.2), &[2, 5]);
    insta::assert_snapshot!("l2_norm", rounded(&norm, 4, 1));
    insta::assert_snapshot!("l2_norm_grad", rounded(&gx, 4, 5));
}
