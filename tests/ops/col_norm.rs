//! Column L2 normalisation against its f64 reference: forward and gradient on odd shapes with a
//! zero column and an eps-dominated column, the reference's own Jacobian against f64 finite
//! differences, the GPU gradient by finite differences mid-graph, and a snapshot.

use sfhead::engine::{Graph, TensorId};
use sfhead::ops::col_norm::{self, EPS};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

/// `Σ gy ⊙ y` with the constant `gy`: its gradient with respect to y is `gy`.
fn weighted_loss(g: &mut Graph, y: TensorId, gy: Vec<f32>) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy);
    let weighted = mul::mul(g, y, gy);
    reduce::sum(g, weighted, &[0, 1, 2])
}

/// Flat index of a[k, v, w] in a (K, V, W) tensor.
fn at([_, v_len, w_len]: [usize; 3], k: usize, v: usize, w: usize) -> usize {
    (k * v_len + v) * w_len + w
}

/// The worst norm-wise error of any (k, w) column, each against its own largest value: the
/// gradient of an eps-dominated column is about 1e4 times the others and would hide their errors
/// in one tensor-wide norm.
fn columnwise_error(got: &[f32], want: &[f64], shape: [usize; 3]) -> f64 {
    let [k_len, v_len, w_len] = shape;
    let mut worst = 0.0f64;
    for k in 0..k_len {
        for w in 0..w_len {
            let idx: Vec<usize> = (0..v_len).map(|v| at(shape, k, v, w)).collect();
            let g: Vec<f32> = idx.iter().map(|&i| got[i]).collect();
            let r: Vec<f64> = idx.iter().map(|&i| want[i]).collect();
            let e = normwise_error(&g, &r);
            if e.is_nan() {
                return e;
            }
            worst = worst.max(e);
        }
    }
    worst
}

/// Seeded values in [−1, 1) with column `zero` set to 0 and column `tiny` scaled to about EPS,
/// where the eps dominates the norm.
fn input(shape: [usize; 3], seed: u64, zero: (usize, usize), tiny: (usize, usize)) -> Vec<f32> {
    let mut a = uniform(seed, shape.iter().product(), -1.0, 1.0);
    for v in 0..shape[1] {
        a[at(shape, zero.0, v, zero.1)] = 0.0;
        a[at(shape, tiny.0, v, tiny.1)] *= EPS;
    }
    a
}

fn reference_case(shape: [usize; 3], zero: (usize, usize), tiny: (usize, usize), seed: u64) {
    let n = shape.iter().product();
    let mut g = Graph::new();
    let a = g.input("a", &shape);
    let y = col_norm::col_l2_normalize(&mut g, a);
    let gy = uniform(seed + 1, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, gy.clone());
    let ga = g.backward(loss, &[a]).unwrap()[0];
    let h = Harness::new(g, &[y, ga]);
    let da = input(shape, seed, zero, tiny);
    let out = h.run(&[(a, &da)], &[y, ga]);
    let af = to_f64(&da);
    let what = format!("col_norm {shape:?}");
    // Each output is one element over a sum of squares: no cancellation.
    let want = col_norm::cpu::forward(&af, shape);
    check(&what, elementwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let want = col_norm::cpu::backward(&af, &to_f64(&gy), shape);
    check(
        &format!("{what} grad"),
        columnwise_error(&out[1], &want, shape),
        REDUCTION_TOL,
    );
    // A zero column maps to zero and passes g/EPS back, as PyTorch's norm subgradient gives.
    for v in 0..shape[1] {
        let i = at(shape, zero.0, v, zero.1);
        assert_eq!(out[0][i], 0.0, "{what}: zero column, row {v}");
        let want = f64::from(gy[i]) / f64::from(EPS);
        assert!(
            (f64::from(out[1][i]) - want).abs() <= 1e-5 * want.abs(),
            "{what}: zero column grad, row {v}: {} vs {want}",
            out[1][i]
        );
    }
}

#[test]
fn col_norm_matches_reference() {
    reference_case([3, 7, 5], (1, 2), (2, 0), 900);
    // ST-GCN's adjacency: three 25×25 subsets.
    reference_case([3, 25, 25], (0, 24), (2, 13), 910);
    // One column per subset.
    reference_case([4, 9, 1], (1, 0), (3, 0), 920);
}

#[test]
fn col_norm_gradient_is_accurate_at_identity() {
    // ST-GCN's initial adjacency. Its diagonal gradient g·EPS/n² is 1e4 times smaller than the
    // terms of g/n − a·(g·a)/(n²‖a‖), so this checks every element on its own, diagonal included.
    let shape = [3, 25, 25];
    let n = 3 * 25 * 25;
    let mut g = Graph::new();
    let a = g.input("a", &shape);
    let y = col_norm::col_l2_normalize(&mut g, a);
    let gy = uniform(925, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, gy.clone());
    let ga = g.backward(loss, &[a]).unwrap()[0];
    let h = Harness::new(g, &[y, ga]);
    let mut da = vec![0.0; n];
    for k in 0..3 {
        for v in 0..25 {
            da[at(shape, k, v, v)] = 1.0;
        }
    }
    let out = h.run(&[(a, &da)], &[y, ga]);
    let af = to_f64(&da);
    let want = col_norm::cpu::forward(&af, shape);
    check(
        "col_norm at identity",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    let want = col_norm::cpu::backward(&af, &to_f64(&gy), shape);
    check(
        "col_norm grad at identity",
        elementwise_error(&out[1], &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn col_norm_reference_gradient_matches_finite_differences() {
    let shape = [2, 6, 3];
    let a = to_f64(&uniform(930, 36, -1.0, 1.0));
    let gy = to_f64(&uniform(931, 36, -1.0, 1.0));
    let loss = |x: &[f64]| -> f64 {
        let y = col_norm::cpu::forward(x, shape);
        y.iter().zip(&gy).map(|(y, g)| y * g).sum()
    };
    let analytic = col_norm::cpu::backward(&a, &gy, shape);
    let h = 1e-6;
    for (i, want) in analytic.iter().enumerate() {
        let mut plus = a.clone();
        let mut minus = a.clone();
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
fn col_norm_gradient_passes_finite_differences() {
    for (shape, seed) in [(vec![3, 5, 4], 940), (vec![2, 9, 1], 950)] {
        let n = shape.iter().product();
        // Entries of ±2 keep each column's norm well above the step, so the central difference's
        // truncation error (of order (step/‖a‖)²) stays far below the tolerance.
        let r = gradcheck(
            &[(shape.clone(), uniform(seed, n, -2.0, 2.0))],
            |g, x| col_norm::col_l2_normalize(g, x[0]),
            1e-2,
            seed + 1,
        );
        check(&format!("col_norm {shape:?} gradcheck"), r.worst, 1e-2);
    }
}

#[test]
#[should_panic(expected = "non-empty (K, V, W) tensor")]
fn col_norm_rejects_a_matrix() {
    let mut g = Graph::new();
    let a = g.input("a", &[25, 25]);
    col_norm::col_l2_normalize(&mut g, a);
}

#[test]
fn col_norm_snapshots() {
    let shape = [3, 4, 5];
    let mut g = Graph::new();
    let a = g.input("a", &shape);
    let y = col_norm::col_l2_normalize(&mut g, a);
    let loss = weighted_loss(&mut g, y, fixed(60, 1.0));
    let ga = g.backward(loss, &[a]).unwrap()[0];
    let h = Harness::new(g, &[y, ga]);
    let mut da = fixed(60, 0.0);
    // Column (1, 3) is zero: y = 0 there and its gradient is g/EPS.
    for v in 0..4 {
        da[at(shape, 1, v, 3)] = 0.0;
    }
    let out = h.run(&[(a, &da)], &[y, ga]);
    insta::assert_snapshot!("col_norm", rounded(&out[0], 4, 5));
    insta::assert_snapshot!("col_norm_grad", rounded(&out[1], 4, 5));
}
