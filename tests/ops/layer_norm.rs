//! LayerNorm against its f64 reference: forward and the three gradients on odd shapes with a
//! constant row (variance 0) and rows at a common offset of 100 (where E[x²] − E[x]² would
//! cancel), the reference's own gradients against f64 finite differences, the GPU gradients by
//! finite differences mid-graph, and snapshots.

use sfhead::engine::{Graph, TensorId};
use sfhead::ops::layer_norm::{self, layer_norm};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

/// `Σ gy ⊙ y` with the constant `gy`: its gradient with respect to y is `gy`.
fn weighted_loss(g: &mut Graph, y: TensorId, gy: Vec<f32>) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy);
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, weighted, &axes)
}

/// The worst norm-wise error of any row, each against its own largest value: a constant row's
/// input gradient is about 300 times the others (rstd = 1/√EPS) and would hide their errors in
/// one tensor-wide norm.
fn rowwise_error(got: &[f32], want: &[f64], c: usize) -> f64 {
    got.chunks(c)
        .zip(want.chunks(c))
        .map(|(g, w)| normwise_error(g, w))
        .fold(0.0, |m: f64, e| if e.is_nan() { e } else { m.max(e) })
}

/// A (rows, c) input of seeded values in [−1, 1): row `constant` holds one repeated value and
/// the rows in `offset` are shifted by 100.
fn input(rows: usize, c: usize, seed: u64, constant: usize, offset: &[usize]) -> Vec<f32> {
    let mut x = uniform(seed, rows * c, -1.0, 1.0);
    for (r, row) in x.chunks_mut(c).enumerate() {
        if r == constant {
            row.fill(0.3);
        } else if offset.contains(&r) {
            row.iter_mut().for_each(|v| *v += 100.0);
        }
    }
    x
}

/// The GPU's y, g_x, g_w and g_b for `x` (shape, ending in C) with the output gradient `gy`.
fn run_gpu(shape: &[usize], x: &[f32], w: &[f32], b: &[f32], gy: Vec<f32>) -> Vec<Vec<f32>> {
    let c = shape[shape.len() - 1];
    let mut g = Graph::new();
    let xt = g.input("x", shape);
    let wt = g.input("w", &[c]);
    let bt = g.input("b", &[c]);
    let y = layer_norm(&mut g, xt, wt, bt);
    let loss = weighted_loss(&mut g, y, gy);
    let grads = g.backward(loss, &[xt, wt, bt]).unwrap();
    let keep = [y, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    h.run(&[(xt, x), (wt, w), (bt, b)], &keep)
}

fn reference_case(rows: usize, c: usize, constant: usize, offset: &[usize], seed: u64) {
    let x = input(rows, c, seed, constant, offset);
    let w = uniform(seed + 1, c, 0.5, 1.5);
    let b = uniform(seed + 2, c, -1.0, 1.0);
    let gy = uniform(seed + 3, rows * c, -1.0, 1.0);
    let out = run_gpu(&[rows, c], &x, &w, &b, gy.clone());
    let (xf, wf, bf) = (to_f64(&x), to_f64(&w), to_f64(&b));
    let what = format!("layer_norm ({rows}, {c})");
    let want = layer_norm::cpu::forward(&xf, &wf, &bf);
    check(&what, rowwise_error(&out[0], &want, c), REDUCTION_TOL);
    let (gx, gw, gb) = layer_norm::cpu::backward(&xf, &wf, &to_f64(&gy));
    let grad_x = rowwise_error(&out[1], &gx, c);
    check(&format!("{what} grad x"), grad_x, REDUCTION_TOL);
    let grad_w = normwise_error(&out[2], &gw);
    check(&format!("{what} grad w"), grad_w, REDUCTION_TOL);
    let grad_b = normwise_error(&out[3], &gb);
    check(&format!("{what} grad b"), grad_b, REDUCTION_TOL);
    // A constant row normalises to exactly 0, so it maps to the bias.
    let row = constant * c..(constant + 1) * c;
    assert_eq!(out[0][row], b, "{what}: constant row {constant}");
}

#[test]
fn layer_norm_matches_reference() {
    reference_case(37, 24, 5, &[0, 11, 36], 1000);
    reference_case(500, 64, 499, &[3, 250, 251, 252], 1010);
    // InfoGCN's widest stage, and a single channel (variance 0 everywhere, y = b).
    reference_case(9, 256, 2, &[4], 1020);
    reference_case(13, 1, 0, &[7], 1030);
}

#[test]
fn layer_norm_normalises_the_last_axis_of_any_rank() {
    // (N, T, V, C) as SA-GC applies it: the same result as its (N·T·V, C) rows.
    let shape = [2, 3, 5, 16];
    let n = shape.iter().product();
    let x = uniform(1040, n, -2.0, 2.0);
    let w = uniform(1041, 16, 0.5, 1.5);
    let b = uniform(1042, 16, -1.0, 1.0);
    let gy = uniform(1043, n, -1.0, 1.0);
    let out = run_gpu(&shape, &x, &w, &b, gy.clone());
    let (xf, wf) = (to_f64(&x), to_f64(&w));
    let want = layer_norm::cpu::forward(&xf, &wf, &to_f64(&b));
    check(
        "layer_norm 4-D",
        rowwise_error(&out[0], &want, 16),
        REDUCTION_TOL,
    );
    let (gx, gw, gb) = layer_norm::cpu::backward(&xf, &wf, &to_f64(&gy));
    let grad_x = rowwise_error(&out[1], &gx, 16);
    check("layer_norm 4-D grad x", grad_x, REDUCTION_TOL);
    let grad_w = normwise_error(&out[2], &gw);
    check("layer_norm 4-D grad w", grad_w, REDUCTION_TOL);
    let grad_b = normwise_error(&out[3], &gb);
    check("layer_norm 4-D grad b", grad_b, REDUCTION_TOL);
}

#[test]
fn layer_norm_reference_gradients_match_finite_differences() {
    let (rows, c) = (3, 5);
    let x = to_f64(&uniform(1050, rows * c, -1.0, 1.0));
    let w = to_f64(&uniform(1051, c, 0.5, 1.5));
    let b = to_f64(&uniform(1052, c, -1.0, 1.0));
    let gy = to_f64(&uniform(1053, rows * c, -1.0, 1.0));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let y = layer_norm::cpu::forward(x, w, b);
        y.iter().zip(&gy).map(|(y, g)| y * g).sum()
    };
    let (gx, gw, gb) = layer_norm::cpu::backward(&x, &w, &gy);
    let h = 1e-6;
    let central = |which: usize, i: usize| {
        let mut args = [x.clone(), w.clone(), b.clone()];
        args[which][i] += h;
        let plus = loss(&args[0], &args[1], &args[2]);
        args[which][i] -= 2.0 * h;
        let minus = loss(&args[0], &args[1], &args[2]);
        (plus - minus) / (2.0 * h)
    };
    for (which, (name, analytic)) in [("x", &gx), ("w", &gw), ("b", &gb)].iter().enumerate() {
        for (i, want) in analytic.iter().enumerate() {
            let fd = central(which, i);
            assert!(
                (fd - want).abs() <= 1e-7 * want.abs().max(1.0),
                "{name}[{i}]: finite difference {fd} vs reference {want}"
            );
        }
    }
}

#[test]
fn layer_norm_gradients_pass_finite_differences() {
    let (shape, c) = (vec![5, 7], 7);
    let x = uniform(1060, 35, -2.0, 2.0);
    let w = uniform(1061, c, 0.5, 1.5);
    let b = uniform(1062, c, -1.0, 1.0);
    // Each parameter on its own, the others constant, so no gradient hides behind another.
    let r = gradcheck(
        &[(shape.clone(), x.clone())],
        |g, t| {
            let wt = g.constant("w", &[c], w.clone());
            let bt = g.constant("b", &[c], b.clone());
            layer_norm(g, t[0], wt, bt)
        },
        1e-2,
        1063,
    );
    check("layer_norm gradcheck x", r.worst, 1e-2);
    let r = gradcheck(
        &[(vec![c], w.clone())],
        |g, t| {
            let xt = g.constant("x", &shape, x.clone());
            let bt = g.constant("b", &[c], b.clone());
            layer_norm(g, xt, t[0], bt)
        },
        1e-2,
        1064,
    );
    check("layer_norm gradcheck w", r.worst, 1e-2);
    let r = gradcheck(
        &[(vec![c], b.clone())],
        |g, t| {
            let xt = g.constant("x", &shape, x.clone());
            let wt = g.constant("w", &[c], w.clone());
            layer_norm(g, xt, wt, t[0])
        },
        1e-2,
        1065,
    );
    check("layer_norm gradcheck b", r.worst, 1e-2);
    // All three together on a 4-D input, the weight also reaching the loss directly.
    let shape = vec![2, 3, 2, 6];
    let r = gradcheck(
        &[
            (vec![6], uniform(1070, 6, 0.5, 1.5)),
            (vec![6], uniform(1071, 6, -1.0, 1.0)),
            (shape, uniform(1072, 72, -2.0, 2.0)),
        ],
        |g, t| layer_norm(g, t[2], t[0], t[1]),
        1e-2,
        1073,
    );
    check("layer_norm gradcheck 4-D", r.worst, 1e-2);
}

#[test]
#[should_panic(expected = "layer_norm weight must be (6)")]
fn layer_norm_rejects_a_weight_of_the_wrong_width() {
    let mut g = Graph::new();
    let x = g.input("x", &[4, 6]);
    let w = g.input("w", &[4]);
    let b = g.input("b", &[6]);
    layer_norm(&mut g, x, w, b);
}

#[test]
#[should_panic(expected = "at least one leading axis")]
fn layer_norm_rejects_a_vector() {
    let mut g = Graph::new();
    let x = g.input("x", &[6]);
    let w = g.input("w", &[6]);
    let b = g.input("b", &[6]);
    layer_norm(&mut g, x, w, b);
}

#[test]
fn layer_norm_snapshots() {
    let (rows, c) = (4, 6);
    let mut x = fixed(rows * c, 0.0);
    // Row 2 is constant: y = b there.
    x[2 * c..3 * c].fill(0.5);
    let w: Vec<f32> = fixed(c, 2.0).iter().map(|v| 1.0 + 0.5 * v).collect();
    let b: Vec<f32> = fixed(c, 3.0).iter().map(|v| 0.1 * v).collect();
    let out = run_gpu(&[rows, c], &x, &w, &b, fixed(rows * c, 1.0));
    insta::assert_snapshot!("layer_norm", rounded(&out[0], 4, c));
    insta::assert_snapshot!("layer_norm_grad_x", rounded(&out[1], 4, c));
    insta::assert_snapshot!("layer_norm_grad_w", rounded(&out[2], 4, c));
    insta::assert_snapshot!("layer_norm_grad_b", rounded(&out[3], 4, c));
}
