//! The small ops SF-Head is composed from (sigmoid, channel affine, one-channel GroupNorm,
//! softmax along an axis, weighted sum of parts): forward and every gradient against the f64
//! references, finite differences, numerical edge cases and snapshots.

use sfhead::engine::{Graph, TensorId};
use sfhead::ops::{channel_affine, group_norm, mul, reduce, sigmoid, softmax, weighted_sum};
use sfhead::testing::*;

use crate::fixed;

/// (A, K, T, V) with odd sizes.
const SHAPE: [usize; 4] = [3, 5, 7, 11];
const N: usize = 3 * 5 * 7 * 11;

/// `Σ gy ⊙ y` with a constant `gy` of seed `seed`: its gradient with respect to y is `gy`.
fn weighted_loss(g: &mut Graph, y: TensorId, seed: u64) -> (TensorId, Vec<f32>) {
    let shape = g.shape(y).to_vec();
    let gy_data = uniform(seed, g.numel(y), -1.0, 1.0);
    let gy = g.constant("gy", &shape, gy_data.clone());
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    (reduce::sum(g, weighted, &axes), gy_data)
}

#[test]
fn sigmoid_forward_and_backward_match_reference() {
    let mut g = Graph::new();
    let x = g.input("x", &SHAPE);
    let y = sigmoid::sigmoid(&mut g, x);
    let (loss, gy) = weighted_loss(&mut g, y, 400);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    // Within ±4 the f32 forward output still carries 1 − σ to about 1e-6 relative.
    let dx = uniform(401, N, -4.0, 4.0);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    let xf = to_f64(&dx);
    let want = sigmoid::cpu::sigmoid(&xf);
    check(
        "sigmoid",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    let want = sigmoid::cpu::sigmoid_grad(&xf, &to_f64(&gy));
    check(
        "sigmoid grad",
        elementwise_error(&out[1], &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn sigmoid_is_stable_at_large_magnitude() {
    let dx = [-80.0, -40.0, -10.0, 0.0, 10.0, 40.0, 80.0];
    let mut g = Graph::new();
    let x = g.input("x", &[dx.len()]);
    let y = sigmoid::sigmoid(&mut g, x);
    let axes = [0];
    let loss = reduce::sum(&mut g, y, &axes);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    assert!(out.iter().flatten().all(|v| v.is_finite()), "{out:?}");
    assert_eq!(out[0][6], 1.0, "σ(80) rounds to 1");
    let xf = to_f64(&dx);
    let want = sigmoid::cpu::sigmoid(&xf);
    check(
        "sigmoid at ±80",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    // σ' = σ·(1 − σ) from the f32 output keeps its relative precision where σ is small; where σ
    // rounds towards 1 only its absolute error (about 1e-7) is meaningful.
    let want = sigmoid::cpu::sigmoid_grad(&xf, &[1.0; 7]);
    check(
        "sigmoid grad at x ≤ 0",
        elementwise_error(&out[1][..4], &want[..4]),
        ELEMENTWISE_TOL,
    );
    for (got, want) in out[1][4..].iter().zip(&want[4..]) {
        assert!((f64::from(*got) - want).abs() < 1e-7, "{got} vs {want}");
    }
}

/// Forward and gradients of `channel_affine` on `shape`, with or without bias.
fn channel_affine_case(shape: &[usize], with_bias: bool, seed: u64) {
    let k = shape[1];
    let inner: usize = shape[2..].iter().product();
    let n: usize = shape.iter().product();
    let mut g = Graph::new();
    let x = g.input("x", shape);
    let w = g.input("w", &[k]);
    let b = g.input("b", &[k]);
    let y = channel_affine::channel_affine(&mut g, x, w, with_bias.then_some(b));
    let (loss, gy) = weighted_loss(&mut g, y, seed);
    let wrt: Vec<TensorId> = [x, w].into_iter().chain(with_bias.then_some(b)).collect();
    let grads = g.backward(loss, &wrt).unwrap();
    let keep: Vec<TensorId> = [y].into_iter().chain(grads).collect();
    let h = Harness::new(g, &keep);
    let (dx, dw, db) = (
        uniform(seed + 1, n, -2.0, 2.0),
        uniform(seed + 2, k, -1.5, 1.5),
        uniform(seed + 3, k, -1.0, 1.0),
    );
    let mut feed = vec![(x, dx.as_slice()), (w, dw.as_slice())];
    if with_bias {
        feed.push((b, db.as_slice()));
    }
    let out = h.run(&feed, &keep);
    let (xf, wf, bf) = (to_f64(&dx), to_f64(&dw), to_f64(&db));
    let what = format!("channel_affine {shape:?} bias {with_bias}");
    let want = channel_affine::cpu::forward(&xf, inner, &wf, with_bias.then_some(&bf[..]));
    // x·w + b may cancel to almost nothing in single elements.
    check(&what, normwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let (gx, gw, gb) = channel_affine::cpu::backward(&xf, inner, &wf, &to_f64(&gy));
    check(
        &format!("{what} grad x"),
        elementwise_error(&out[1], &gx),
        ELEMENTWISE_TOL,
    );
    check(
        &format!("{what} grad w"),
        normwise_error(&out[2], &gw),
        REDUCTION_TOL,
    );
    if with_bias {
        check(
            &format!("{what} grad b"),
            normwise_error(&out[3], &gb),
            REDUCTION_TOL,
        );
    }
}

#[test]
fn channel_affine_matches_reference() {
    channel_affine_case(&SHAPE, true, 410);
    channel_affine_case(&SHAPE, false, 420);
    // (R, K): no rest axes, as SF-Head's per-item means.
    channel_affine_case(&[13, 6], true, 430);
}

#[test]
fn group_norm_matches_reference() {
    let inner = SHAPE[2] * SHAPE[3];
    let mut g = Graph::new();
    let x = g.input("x", &SHAPE);
    let y = group_norm::group_norm(&mut g, x, group_norm::DEFAULT_EPS);
    let (loss, gy) = weighted_loss(&mut g, y, 440);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let dx = uniform(441, N, -2.0, 3.0);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    let xf = to_f64(&dx);
    let want = group_norm::cpu::forward(&xf, inner, 1e-5);
    check("group norm", normwise_error(&out[0], &want), REDUCTION_TOL);
    let want = group_norm::cpu::backward(&xf, &to_f64(&gy), inner, 1e-5);
    check(
        "group norm grad",
        normwise_error(&out[1], &want),
        REDUCTION_TOL,
    );
}

#[test]
fn group_norm_keeps_precision_under_a_large_offset() {
    // Rows of ±1 around 1000: E[x²] − E[x]² would lose every digit of the variance in f32.
    let (shape, inner) = ([2, 3, 60], 60);
    let n = 360;
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let y = group_norm::group_norm(&mut g, x, group_norm::DEFAULT_EPS);
    let (loss, gy) = weighted_loss(&mut g, y, 450);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let dx: Vec<f32> = uniform(451, n, -1.0, 1.0)
        .iter()
        .map(|v| v + 1000.0)
        .collect();
    let out = h.run(&[(x, &dx)], &[y, gx]);
    // The definition, directly: y = (x − mean)/√(var + eps) per row of 60.
    let direct: Vec<f64> = to_f64(&dx)
        .chunks(inner)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / inner as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / inner as f64;
            row.iter()
                .map(move |v| (v - mean) / (var + 1e-5).sqrt())
                .collect::<Vec<_>>()
        })
        .collect();
    // The f32 mean alone is off by up to half an ulp of 1000 (3e-5), about 5e-5 of σ.
    let tol = 2e-4;
    check(
        "group norm at offset 1000",
        normwise_error(&out[0], &direct),
        tol,
    );
    let want = group_norm::cpu::backward(&to_f64(&dx), &to_f64(&gy), inner, 1e-5);
    check(
        "group norm grad at offset 1000",
        normwise_error(&out[1], &want),
        tol,
    );
}

/// Softmax of `x` along `axis` of `shape` and its gradient against the reference.
fn softmax_case(shape: &[usize], axis: usize, (lo, hi): (f32, f32), seed: u64) {
    let n: usize = shape.iter().product();
    let mut g = Graph::new();
    let x = g.input("x", shape);
    let y = softmax::softmax(&mut g, x, axis);
    let (loss, gy) = weighted_loss(&mut g, y, seed);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let dx = uniform(seed + 1, n, lo, hi);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    let xf = to_f64(&dx);
    let what = format!("softmax {shape:?} axis {axis} in [{lo}, {hi})");
    let want = softmax::cpu::softmax(&xf, shape, axis);
    check(&what, elementwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let want = softmax::cpu::softmax_grad(&xf, &to_f64(&gy), shape, axis);
    check(
        &format!("{what} grad"),
        normwise_error(&out[1], &want),
        REDUCTION_TOL,
    );
}

#[test]
fn softmax_matches_reference_along_any_axis() {
    softmax_case(&SHAPE, 0, (-3.0, 3.0), 460);
    softmax_case(&SHAPE, 2, (-3.0, 3.0), 470);
    softmax_case(&SHAPE, 3, (-3.0, 3.0), 480);
    // SF-Head's fusion weights: one line of 4.
    softmax_case(&[4], 0, (-1.0, 1.0), 490);
}

#[test]
fn softmax_subtracts_the_maximum() {
    // exp(100) overflows f32; after subtracting each line's maximum nothing does.
    softmax_case(&[6, 4], 1, (90.0, 110.0), 500);
}

/// Weighted sum of `parts` parts of `shape` and all its gradients against the reference.
fn weighted_sum_case(shape: &[usize], parts: usize, seed: u64) {
    let n: usize = shape.iter().product();
    let mut g = Graph::new();
    let xs: Vec<TensorId> = (0..parts)
        .map(|i| g.input(&format!("x{i}"), shape))
        .collect();
    let w = g.input("w", &[parts]);
    let y = weighted_sum::weighted_sum(&mut g, &xs, w);
    let (loss, gy) = weighted_loss(&mut g, y, seed);
    let wrt: Vec<TensorId> = xs.iter().copied().chain([w]).collect();
    let grads = g.backward(loss, &wrt).unwrap();
    let keep: Vec<TensorId> = [y].into_iter().chain(grads).collect();
    let h = Harness::new(g, &keep);
    let data: Vec<Vec<f32>> = (0..parts)
        .map(|i| uniform(seed + 1 + i as u64, n, -2.0, 2.0))
        .collect();
    let dw = uniform(seed + 9, parts, -1.0, 1.0);
    let feed: Vec<(TensorId, &[f32])> = xs
        .iter()
        .copied()
        .zip(data.iter().map(Vec::as_slice))
        .chain([(w, dw.as_slice())])
        .collect();
    let out = h.run(&feed, &keep);
    let parts_f: Vec<Vec<f64>> = data.iter().map(|d| to_f64(d)).collect();
    let wf = to_f64(&dw);
    let what = format!("weighted_sum of {parts} {shape:?}");
    let want = weighted_sum::cpu::weighted_sum(&parts_f, &wf);
    // A sum of products: single elements may cancel.
    check(&what, normwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let (g_parts, g_w) = weighted_sum::cpu::backward(&parts_f, &wf, &to_f64(&gy));
    for (i, want) in g_parts.iter().enumerate() {
        check(
            &format!("{what} grad part {i}"),
            elementwise_error(&out[1 + i], want),
            ELEMENTWISE_TOL,
        );
    }
    check(
        &format!("{what} grad weights"),
        normwise_error(&out[1 + parts], &g_w),
        REDUCTION_TOL,
    );
}

#[test]
fn weighted_sum_matches_reference() {
    weighted_sum_case(&SHAPE, 4, 510);
    // 5,148 elements: two chunks per weight, so the weight gradient takes its second pass.
    weighted_sum_case(&[4, 9, 13, 11], 3, 520);
    weighted_sum_case(&[2, 3, 5], 1, 530);
}

#[test]
fn sf_elementwise_gradients_pass_finite_differences() {
    let small = vec![3, 4, 5];
    let r = gradcheck(
        &[(small.clone(), uniform(540, 60, -3.0, 3.0))],
        |g, x| sigmoid::sigmoid(g, x[0]),
        1e-2,
        541,
    );
    check("sigmoid gradcheck", r.worst, 1e-2);
    let affine_inputs = |shape: &[usize], seed| {
        let n = shape.iter().product();
        vec![
            (shape.to_vec(), uniform(seed, n, -1.0, 1.0)),
            (vec![shape[1]], uniform(seed + 1, shape[1], -1.5, 1.5)),
            (vec![shape[1]], uniform(seed + 2, shape[1], -1.0, 1.0)),
        ]
    };
    let r = gradcheck(
        &affine_inputs(&small, 550),
        |g, x| channel_affine::channel_affine(g, x[0], x[1], Some(x[2])),
        1e-2,
        553,
    );
    check("channel_affine gradcheck", r.worst, 1e-2);
    let r = gradcheck(
        &affine_inputs(&[7, 3], 560)[..2],
        |g, x| channel_affine::channel_affine(g, x[0], x[1], None),
        1e-2,
        563,
    );
    check("channel_affine (R, K) gradcheck", r.worst, 1e-2);
    let r = gradcheck(
        &[(vec![2, 3, 4, 5], uniform(570, 120, -1.0, 2.0))],
        |g, x| group_norm::group_norm(g, x[0], group_norm::DEFAULT_EPS),
        1e-2,
        571,
    );
    check("group norm gradcheck", r.worst, 1e-2);
    let r = gradcheck(
        &[(small.clone(), uniform(580, 60, -2.0, 2.0))],
        |g, x| softmax::softmax(g, x[0], 1),
        1e-2,
        581,
    );
    check("softmax gradcheck", r.worst, 1e-2);
    let mut inputs: Vec<(Vec<usize>, Vec<f32>)> = (0..3)
        .map(|i| (small.clone(), uniform(590 + i, 60, -1.0, 1.0)))
        .collect();
    inputs.push((vec![3], uniform(595, 3, -1.0, 1.0)));
    let r = gradcheck(
        &inputs,
        |g, x| weighted_sum::weighted_sum(g, &x[..3], x[3]),
        1e-2,
        596,
    );
    check("weighted_sum gradcheck", r.worst, 1e-2);
}

#[test]
fn sf_elementwise_snapshots() {
    let shape = [2, 3, 4];
    let mut g = Graph::new();
    let (a, b, c) = (
        g.input("a", &shape),
        g.input("b", &shape),
        g.input("c", &shape),
    );
    let w = g.input("w", &[3]);
    let s = sigmoid::sigmoid(&mut g, a);
    let affine = channel_affine::channel_affine(&mut g, a, w, Some(w));
    let norm = group_norm::group_norm(&mut g, a, group_norm::DEFAULT_EPS);
    let soft = softmax::softmax(&mut g, a, 1);
    let fused = weighted_sum::weighted_sum(&mut g, &[a, b, c], w);
    let keep = [s, affine, norm, soft, fused];
    let h = Harness::new(g, &keep);
    let da: Vec<f32> = fixed(24, 0.0).iter().map(|v| 4.0 * v).collect();
    let (db, dc, dw) = (fixed(24, 1.0), fixed(24, 2.0), fixed(3, 0.5));
    let out = h.run(&[(a, &da), (b, &db), (c, &dc), (w, &dw)], &keep);
    insta::assert_snapshot!("sigmoid", rounded(&out[0], 4, 4));
    insta::assert_snapshot!("channel_affine", rounded(&out[1], 4, 4));
    insta::assert_snapshot!("group_norm", rounded(&out[2], 4, 4));
    insta::assert_snapshot!("softmax", rounded(&out[3], 4, 4));
    insta::assert_snapshot!("weighted_sum", rounded(&out[4], 4, 4));
}
