//! The ops HD-GCN adds: LeakyReLU, the maximum over one axis, k-nearest neighbours in feature
//! space and the EdgeConv feature [x_nbr − x_ctr, x_ctr].

use sfhead::engine::{Graph, TensorId};
use sfhead::ops::axis_max::{self, max_axis};
use sfhead::ops::edge_feature::{self, edge_feature};
use sfhead::ops::knn::{self, knn};
use sfhead::ops::leaky_relu::{self, leaky_relu};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

/// Σ gy ⊙ y: its gradient with respect to y is exactly `gy`.
fn weighted_loss(g: &mut Graph, y: TensorId, gy: &[f32]) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy.to_vec());
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, weighted, &axes)
}

const SLOPE: f32 = 0.2;

#[test]
fn leaky_relu_matches_reference() {
    let shape = [3, 7, 13];
    let n = shape.iter().product();
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let y = leaky_relu(&mut g, x, SLOPE);
    let gy = uniform(21, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let dx = uniform(20, n, -1.0, 1.0);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    let slope = f64::from(SLOPE);
    let want = leaky_relu::cpu::leaky_relu(&to_f64(&dx), slope);
    check(
        "leaky_relu",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    let want = leaky_relu::cpu::leaky_relu_grad(&to_f64(&dx), &to_f64(&gy), slope);
    check(
        "leaky_relu grad",
        elementwise_error(&out[1], &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn leaky_relu_at_zero_takes_the_slope() {
    // PyTorch's rule: x = 0 is on the negative side, also for the gradient; slope 0 is ReLU.
    for slope in [0.0, SLOPE] {
        let mut g = Graph::new();
        let x = g.input("x", &[4]);
        let y = leaky_relu(&mut g, x, slope);
        let loss = weighted_loss(&mut g, y, &[1.0, 2.0, 3.0, 4.0]);
        let gx = g.backward(loss, &[x]).unwrap()[0];
        let h = Harness::new(g, &[y, gx]);
        let out = h.run(&[(x, &[-2.0, 0.0, -0.0, 3.0])], &[y, gx]);
        assert_eq!(out[0], [-2.0 * slope, 0.0, 0.0, 3.0], "slope {slope}");
        assert_eq!(
            out[1],
            [slope, 2.0 * slope, 3.0 * slope, 4.0],
            "slope {slope}"
        );
    }
}

#[test]
fn leaky_relu_gradient_passes_finite_differences() {
    let inputs = vec![(vec![3, 5, 7], away_from_zero(22, 105, 0.2, 1.0))];
    let r = gradcheck(&inputs, |g, x| leaky_relu(g, x[0], SLOPE), 1e-2, 23);
    check("leaky_relu gradcheck", r.worst, 1e-2);
}

#[test]
fn leaky_relu_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[4, 6]);
    let y = leaky_relu(&mut g, x, SLOPE);
    let h = Harness::new(g, &[y]);
    let out = h.run(&[(x, &fixed(24, 0.0))], &[y]);
    insta::assert_snapshot!("leaky_relu", rounded(&out[0], 4, 6));
}

/// Forward and gradient of `max_axis` on `data` of `shape` through the GPU, checked exactly
/// against the reference: the op only copies values and routes gradients.
fn max_case(shape: &[usize], axis: usize, data: &[f32], seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut g = Graph::new();
    let x = g.input("x", shape);
    let y = max_axis(&mut g, x, axis);
    let mut want_shape = shape.to_vec();
    want_shape.remove(axis);
    assert_eq!(g.shape(y), want_shape);
    let gy = uniform(seed, g.numel(y), -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let mut out = h.run(&[(x, data)], &[y, gx]).into_iter();
    let (y, gx) = (out.next().unwrap(), out.next().unwrap());
    let xf = to_f64(data);
    let what = format!("max_axis {shape:?} axis {axis}");
    let want = axis_max::cpu::max_axis(&xf, shape, axis);
    check(&what, elementwise_error(&y, &want), 0.0);
    let want = axis_max::cpu::max_axis_grad(&xf, &to_f64(&gy), shape, axis);
    check(&format!("{what} grad"), elementwise_error(&gx, &want), 0.0);
    (y, gx)
}

#[test]
fn max_axis_matches_reference() {
    // Over T of (N, C, L, T, V), over the k neighbours of (N, C, V, k), and over the first axis.
    let cases: [(&[usize], usize); 3] =
        [(&[3, 5, 2, 9, 7], 3), (&[3, 5, 7, 5], 3), (&[5, 3, 7], 0)];
    for (i, (shape, axis)) in cases.into_iter().enumerate() {
        let n = shape.iter().product();
        max_case(
            shape,
            axis,
            &uniform(30 + i as u64, n, -1.0, 1.0),
            40 + i as u64,
        );
    }
}

#[test]
fn max_axis_ties_go_to_the_first_maximum() {
    // By hand: rows of (2, 3) over the last axis, columns of (3, 2) over the first.
    let (y, gx) = max_case(&[2, 3], 1, &[1.0, 2.0, 2.0, 0.0, 0.0, 0.0], 50);
    let gy = uniform(50, 2, -1.0, 1.0);
    assert_eq!(y, [2.0, 0.0]);
    assert_eq!(gx, [0.0, gy[0], 0.0, gy[1], 0.0, 0.0]);
    let (y, gx) = max_case(&[3, 2], 0, &[1.0, 5.0, 3.0, 5.0, 3.0, 4.0], 51);
    let gy = uniform(51, 2, -1.0, 1.0);
    assert_eq!(y, [3.0, 5.0]);
    assert_eq!(gx, [0.0, gy[1], gy[0], 0.0, 0.0, 0.0]);
    // Many ties: values from {0, 1, 2} over a middle axis, against the reference.
    let data: Vec<f32> = uniform(52, 4 * 9 * 5, 0.0, 3.0)
        .iter()
        .map(|v| v.floor())
        .collect();
    max_case(&[4, 9, 5], 1, &data, 53);
}

/// `n` distinct values in [−1, 1): a shuffled even grid, so that no finite-difference step of
/// size below half the spacing can change an argmax.
fn distinct(seed: u64, n: usize) -> Vec<f32> {
    let keys = uniform(seed, n, 0.0, 1.0);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut v = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        v[i] = -1.0 + 2.0 * rank as f32 / n as f32;
    }
    v
}

#[test]
fn max_axis_gradient_passes_finite_differences() {
    for (axis, seed) in [(2, 60), (3, 61)] {
        let inputs = vec![(vec![2, 3, 5, 7], distinct(seed, 210))];
        let r = gradcheck(&inputs, |g, x| max_axis(g, x[0], axis), 1e-3, seed + 10);
        check(&format!("max_axis {axis} gradcheck"), r.worst, 1e-2);
    }
}

#[test]
fn max_axis_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 5, 3]);
    let y = max_axis(&mut g, x, 1);
    let loss = weighted_loss(&mut g, y, &fixed(6, 1.0));
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &fixed(30, 0.3))], &[y, gx]);
    insta::assert_snapshot!("max_axis_1", rounded(&out[0], 4, 3));
    insta::assert_snapshot!("max_axis_1_grad", rounded(&out[1], 4, 3));
}

/// (B, C, V, k) of the kNN and edge-feature cases.
type Dims = (usize, usize, usize, usize);

/// The GPU's `knn` indices of `x_data` (B, C, V). The executor reads f32 only, so they come back
/// exactly through the edge feature of the node numbers z[b, 0, w] = w, whose channel 0 at
/// (b, u, j) is idx[b, u, j] − u.
fn knn_indices(x_data: &[f32], (batch, channels, nodes, k): Dims) -> Vec<u32> {
    let mut g = Graph::new();
    let x = g.input("x", &[batch, channels, nodes]);
    let idx = knn(&mut g, x, k);
    assert_eq!(g.shape(idx), [batch, nodes, k]);
    let numbers = (0..batch * nodes).map(|i| (i % nodes) as f32).collect();
    let z = g.constant("z", &[batch, 1, nodes], numbers);
    let e = edge_feature(&mut g, z, idx);
    let h = Harness::new(g, &[e]);
    let e = &h.run(&[(x, x_data)], &[e])[0];
    let mut idx = Vec::with_capacity(batch * nodes * k);
    for b in 0..batch {
        for u in 0..nodes {
            for j in 0..k {
                let w = e[((b * 2) * nodes + u) * k + j] + u as f32;
                assert!(
                    w >= 0.0 && w.fract() == 0.0,
                    "index {w} read back at {b}, {u}, {j}"
                );
                idx.push(w as u32);
            }
        }
    }
    idx
}

/// The smallest gap between successive distances among the k + 1 nearest nodes of any (b, u):
/// above float32 rounding, the GPU's order cannot differ from the f64 reference's.
fn knn_margin(x: &[f32], (batch, channels, nodes, k): Dims) -> f64 {
    let at = |b: usize, c: usize, v: usize| f64::from(x[(b * channels + c) * nodes + v]);
    let mut margin = f64::INFINITY;
    for b in 0..batch {
        for u in 0..nodes {
            let mut d: Vec<f64> = (0..nodes)
                .map(|w| {
                    (0..channels)
                        .map(|c| (at(b, c, u) - at(b, c, w)).powi(2))
                        .sum()
                })
                .collect();
            d.sort_by(f64::total_cmp);
            for pair in d[..(k + 1).min(nodes)].windows(2) {
                margin = margin.min(pair[1] - pair[0]);
            }
        }
    }
    margin
}

#[test]
fn knn_matches_reference() {
    // V = 25 joints with k = 5 (HD-Gconv), V = 6 levels with k = 3 (AHA), and k = V.
    for (i, dims) in [(3, 5, 25, 5), (4, 7, 6, 3), (2, 3, 9, 9)]
        .into_iter()
        .enumerate()
    {
        let (batch, channels, nodes, k) = dims;
        let x = uniform(70 + i as u64, batch * channels * nodes, -1.0, 1.0);
        let margin = knn_margin(&x, dims);
        assert!(
            margin > 1e-4,
            "case {dims:?}: near tie {margin:.1e} in the test data"
        );
        let want = knn::cpu::knn(&to_f64(&x), (batch, channels, nodes), k);
        assert_eq!(knn_indices(&x, dims), want, "knn {dims:?}");
    }
}

#[test]
fn knn_finds_known_neighbours_and_ties_go_to_the_lower_index() {
    // Sample 0: nodes on a line at 0, 2, 4, 9, 10 (channel 0), so node 1 is 4 away from both
    // node 0 and node 2. Sample 1: the same points in reverse node order, on channel 1, where
    // node 3 is 4 away from both 2 and 4. Every distance is an exact small integer in float32.
    let line = [0.0, 2.0, 4.0, 9.0, 10.0];
    let mut x = vec![0.0f32; 2 * 2 * 5];
    x[..5].copy_from_slice(&line);
    for (w, &v) in line.iter().rev().enumerate() {
        x[3 * 5 + w] = v;
    }
    #[rustfmt::skip]
    let want: [u32; 30] = [
        0, 1, 2,  1, 0, 2,  2, 1, 0,  3, 4, 2,  4, 3, 2,
        0, 1, 2,  1, 0, 2,  2, 3, 4,  3, 2, 4,  4, 3, 2,
    ];
    assert_eq!(knn_indices(&x, (2, 2, 5, 3)), want);
    assert_eq!(knn::cpu::knn(&to_f64(&x), (2, 2, 5), 3), want);
}

#[test]
fn knn_snapshot() {
    let dims = (2, 3, 7, 3);
    let x = fixed(42, 0.5);
    assert!(knn_margin(&x, dims) > 1e-4, "near tie in the fixed input");
    let idx: Vec<f32> = knn_indices(&x, dims).iter().map(|&w| w as f32).collect();
    insta::assert_snapshot!("knn", rounded(&idx, 4, 3));
}

/// `n` indices below `nodes`, repeats and self-references included.
fn index_table(seed: u64, n: usize, nodes: usize) -> Vec<u32> {
    uniform(seed, n, 0.0, nodes as f32)
        .iter()
        .map(|&v| (v as u32).min(nodes as u32 - 1))
        .collect()
}

/// Forward and x-gradient of `edge_feature` on the GPU against the reference, for indices from
/// a fixed table or (`None`) from `knn` of the same x.
fn edge_case(dims: Dims, table: Option<Vec<u32>>, seed: u64) {
    let (batch, channels, nodes, k) = dims;
    let x_data = uniform(seed, batch * channels * nodes, -1.0, 1.0);
    let table =
        table.unwrap_or_else(|| knn::cpu::knn(&to_f64(&x_data), (batch, channels, nodes), k));
    let mut g = Graph::new();
    let x = g.input("x", &[batch, channels, nodes]);
    let idx = g.constant_u32("idx", &[batch, nodes, k], table.clone());
    let y = edge_feature(&mut g, x, idx);
    assert_eq!(g.shape(y), [batch, 2 * channels, nodes, k]);
    let gy = uniform(seed + 1, g.numel(y), -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &x_data)], &[y, gx]);
    let want = edge_feature::cpu::edge_feature(&to_f64(&x_data), &table, dims);
    check(
        &format!("edge_feature {dims:?}"),
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    let want = edge_feature::cpu::edge_feature_grad(&table, &to_f64(&gy), dims);
    check(
        &format!("edge_feature {dims:?} grad"),
        normwise_error(&out[1], &want),
        REDUCTION_TOL,
    );
}

#[test]
fn edge_feature_matches_reference() {
    let dims = (3, 5, 7, 4);
    edge_case(dims, Some(index_table(80, 3 * 7 * 4, 7)), 81);
    edge_case((2, 9, 25, 5), None, 82);
    edge_case((5, 3, 6, 3), None, 83);
}

#[test]
fn edge_feature_follows_knn_indices() {
    // knn feeding edge_feature inside one graph gives the reference's feature of the reference's
    // neighbours.
    let dims = (2, 4, 25, 5);
    let (batch, channels, nodes, k) = dims;
    let x_data = uniform(85, batch * channels * nodes, -1.0, 1.0);
    let margin = knn_margin(&x_data, dims);
    assert!(margin > 1e-4, "near tie {margin:.1e} in the test data");
    let mut g = Graph::new();
    let x = g.input("x", &[batch, channels, nodes]);
    let idx = knn(&mut g, x, k);
    let y = edge_feature(&mut g, x, idx);
    let h = Harness::new(g, &[y]);
    let got = &h.run(&[(x, &x_data)], &[y])[0];
    let xf = to_f64(&x_data);
    let table = knn::cpu::knn(&xf, (batch, channels, nodes), k);
    let want = edge_feature::cpu::edge_feature(&xf, &table, dims);
    check(
        "knn → edge_feature",
        elementwise_error(got, &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn edge_feature_gradient_passes_finite_differences() {
    // With knn's indices of the same x, the finite differences must not move any neighbour. A
    // step of 1e-3 along a direction in [−1, 1] changes a squared distance of points in [−3, 3]
    // by at most 2·C·6·2·1e-3 = 0.072, so gaps above 0.15 keep every order.
    let dims = (2, 3, 7, 3);
    let (batch, channels, nodes, k) = dims;
    let x = uniform(90, batch * channels * nodes, -3.0, 3.0);
    let margin = knn_margin(&x, dims);
    assert!(
        margin > 0.15,
        "distance gap {margin:.1e} too small for the step"
    );
    let inputs = vec![(vec![batch, channels, nodes], x)];
    let r = gradcheck(
        &inputs,
        |g, x| {
            let idx = knn(g, x[0], k);
            edge_feature(g, x[0], idx)
        },
        1e-3,
        91,
    );
    check("edge_feature (knn) gradcheck", r.worst, 1e-2);
    let table = index_table(92, batch * nodes * k, nodes);
    let r = gradcheck(
        &inputs,
        |g, x| {
            let idx = g.constant_u32("idx", &[batch, nodes, k], table);
            edge_feature(g, x[0], idx)
        },
        1e-2,
        93,
    );
    check("edge_feature (table) gradcheck", r.worst, 1e-2);
}

#[test]
#[should_panic(expected = "index 7 at entry 5 of `idx` is not below V = 7")]
fn edge_feature_rejects_an_index_out_of_range() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 2, 7]);
    let mut table = vec![0u32; 7 * 2];
    table[5] = 7;
    let idx = g.constant_u32("idx", &[1, 7, 2], table);
    edge_feature(&mut g, x, idx);
}

#[test]
fn edge_feature_snapshot() {
    let (batch, channels, nodes, k) = (2, 2, 5, 3);
    let mut g = Graph::new();
    let x = g.input("x", &[batch, channels, nodes]);
    // idx[b, u, j] = (3u + 2j + b) mod V: repeats, self-references and unreferenced nodes.
    let table = (0..batch * nodes * k)
        .map(|i| ((3 * ((i / k) % nodes) + 2 * (i % k) + i / (nodes * k)) % nodes) as u32)
        .collect();
    let idx = g.constant_u32("idx", &[batch, nodes, k], table);
    let y = edge_feature(&mut g, x, idx);
    let loss = weighted_loss(&mut g, y, &fixed(batch * 2 * channels * nodes * k, 1.0));
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &fixed(batch * channels * nodes, 0.3))], &[y, gx]);
    insta::assert_snapshot!("edge_feature", rounded(&out[0], 4, k));
    insta::assert_snapshot!("edge_feature_grad", rounded(&out[1], 4, nodes));
}
