use sfhead::engine::{Graph, TensorId};
use sfhead::ops::plane_conv::{self as conv, plane_conv};
use sfhead::ops::plane_pool::{self as pool, PooledAxis, plane_pool};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

const AXES: [PooledAxis; 3] = [PooledAxis::Channel, PooledAxis::Time, PooledAxis::Joint];

/// `Σ gy ⊙ y` with a constant `gy` of y's shape, so that d loss/d y = gy.
fn weighted_loss(g: &mut Graph, y: TensorId, gy: &[f32]) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy.to_vec());
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, weighted, &axes)
}

/// The (H, W) plane of `axis` for x (R, Q, T, V), from the spec's table.
fn plane(axis: PooledAxis, [_, q, t, v]: [usize; 4]) -> [usize; 2] {
    match axis {
        PooledAxis::Channel => [t, v],
        PooledAxis::Time => [q, v],
        PooledAxis::Joint => [t, q],
    }
}

/// Runs the pool on `data` with the output gradient `gz`; returns (Z, g_x).
fn run_pool(shape: [usize; 4], axis: PooledAxis, data: &[f32], gz: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let z = plane_pool(&mut g, x, axis);
    let [h, w] = plane(axis, shape);
    assert_eq!(g.shape(z), [shape[0], 2, h, w], "{axis:?}");
    let loss = weighted_loss(&mut g, z, gz);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let hs = Harness::new(g, &[z, gx]);
    let mut out = hs.run(&[(x, data)], &[z, gx]).into_iter();
    (out.next().unwrap(), out.next().unwrap())
}

/// Forward and backward of the pool against the reference.
fn pool_case(shape: [usize; 4], axis: PooledAxis, data: &[f32], seed: u64) {
    let [h, w] = plane(axis, shape);
    let gz = uniform(seed, shape[0] * 2 * h * w, -1.0, 1.0);
    let (z, gx) = run_pool(shape, axis, data, &gz);
    let xf = to_f64(data);
    let what = format!("plane pool {axis:?} {shape:?}");
    let want = pool::cpu::forward(&xf, shape, axis);
    check(&what, elementwise_error(&z, &want), ELEMENTWISE_TOL);
    let want = pool::cpu::backward(&xf, &to_f64(&gz), shape, axis);
    check(
        &format!("{what} grad"),
        normwise_error(&gx, &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn plane_pool_matches_reference_for_each_axis() {
    // Q = 2 gives the degenerate planes 2×V (Time) and T×2 (Joint).
    for (i, shape) in [[3, 5, 7, 11], [4, 2, 9, 5]].into_iter().enumerate() {
        for (j, axis) in AXES.into_iter().enumerate() {
            let seed = 600 + 10 * i as u64 + j as u64;
            let data = uniform(seed, shape.iter().product(), -1.0, 1.0);
            pool_case(shape, axis, &data, seed + 100);
        }
    }
}

#[test]
fn plane_pool_ties_go_to_the_first_index() {
    // All zeros (an absent person) and values from {0, 1, 2}, where lines hold several maxima.
    let shape = [2, 3, 4, 5];
    let n: usize = shape.iter().product();
    let levels: Vec<f32> = uniform(620, n, 0.0, 3.0)
        .iter()
        .map(|v| v.floor())
        .collect();
    for data in [vec![0.0; n], levels] {
        for axis in AXES {
            pool_case(shape, axis, &data, 621);
            // With g_Z[1] = 0, g_x is exactly g_Z[0] at each line's first maximum and 0 elsewhere.
            let [h, w] = plane(axis, shape);
            let plane_len = h * w;
            let mut gz = uniform(622, shape[0] * 2 * plane_len, -1.0, 1.0);
            for r in 0..shape[0] {
                gz[(2 * r + 1) * plane_len..(2 * r + 2) * plane_len].fill(0.0);
            }
            let (_, gx) = run_pool(shape, axis, &data, &gz);
            let mut want = vec![0.0f32; n];
            let [_, q, t, v] = shape;
            for r in 0..shape[0] {
                for at in 0..plane_len {
                    let (ph, pw) = (at / w, at % w);
                    let line: Vec<usize> = match axis {
                        PooledAxis::Channel => (0..q).map(|k| (k * t + ph) * v + pw).collect(),
                        PooledAxis::Time => (0..t).map(|f| (ph * t + f) * v + pw).collect(),
                        PooledAxis::Joint => (0..v).map(|j| (pw * t + ph) * v + j).collect(),
                    };
                    let item = &data[r * q * t * v..];
                    let max = line.iter().map(|&o| item[o]).fold(f32::MIN, f32::max);
                    let first = line.iter().find(|&&o| item[o] == max).unwrap();
                    want[r * q * t * v + first] = gz[2 * r * plane_len + at];
                }
            }
            assert_eq!(gx, want, "ties along {axis:?} in {:?}…", &data[..8]);
        }
    }
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
fn plane_pool_gradients_pass_finite_differences() {
    for (i, axis) in AXES.into_iter().enumerate() {
        let inputs = vec![(vec![2, 3, 5, 4], distinct(630 + i as u64, 120))];
        // Steps of 4e-3 move two values closer by at most 8e-3, under the grid spacing 2/120.
        let r = gradcheck(&inputs, |g, x| plane_pool(g, x[0], axis), 4e-3, 635);
        check(&format!("plane pool {axis:?} gradcheck"), r.worst, 1e-2);
    }
}

#[test]
fn plane_pool_snapshot() {
    let shape = [1, 3, 4, 5];
    for (axis, name) in AXES.into_iter().zip(["channel", "time", "joint"]) {
        let [h, w] = plane(axis, shape);
        let (z, gx) = run_pool(shape, axis, &fixed(60, 0.3), &fixed(2 * h * w, 1.0));
        insta::assert_snapshot!(format!("plane_pool_{name}"), rounded(&z, 4, w));
        insta::assert_snapshot!(format!("plane_pool_{name}_grad"), rounded(&gx, 4, 5));
    }
}

/// Forward and both gradients of one plane convolution against the f64 reference.
fn conv_case(s: conv::cpu::Sizes, seed: u64) {
    let z_shape = [s.items, s.channels, s.height, s.width];
    let w_shape = [1, s.channels, s.ksize, s.ksize];
    let mut g = Graph::new();
    let z = g.input("z", &z_shape);
    let w = g.input("w", &w_shape);
    let out = plane_conv(&mut g, z, w);
    assert_eq!(g.shape(out), [s.items, 1, s.height, s.width]);
    let gout = uniform(seed, g.numel(out), -1.0, 1.0);
    let loss = weighted_loss(&mut g, out, &gout);
    let grads = g.backward(loss, &[z, w]).unwrap();
    let keep = [out, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    let dz = uniform(seed + 1, z_shape.iter().product(), -1.0, 1.0);
    let dw = uniform(seed + 2, w_shape.iter().product(), -1.0, 1.0);
    let got = h.run(&[(z, &dz), (w, &dw)], &keep);
    let (zf, wf, gf) = (to_f64(&dz), to_f64(&dw), to_f64(&gout));
    let wants = [
        conv::cpu::forward(&zf, &wf, &s),
        conv::cpu::grad_input(&gf, &wf, &s),
        conv::cpu::grad_weight(&gf, &zf, &s),
    ];
    for ((name, got), want) in ["out", "grad z", "grad w"].iter().zip(&got).zip(&wants) {
        check(
            &format!("plane conv {s:?} {name}"),
            normwise_error(got, want),
            REDUCTION_TOL,
        );
    }
}

fn sizes(
    items: usize,
    channels: usize,
    (height, width): (usize, usize),
    ksize: usize,
) -> conv::cpu::Sizes {
    conv::cpu::Sizes {
        items,
        channels,
        height,
        width,
        ksize,
    }
}

#[test]
fn plane_conv_matches_reference_on_gate_planes() {
    // SF-Head's gates (Cin = 2, K = 7) on odd planes, the degenerate 2×25 and 64×2 planes where
    // the kernel mostly sees padding, a plane smaller than the kernel, and other Cin and K (up
    // to the largest, 9, on a plane wider than the four outputs an invocation computes).
    let cases = [
        sizes(3, 2, (9, 11), 7),
        sizes(3, 2, (2, 25), 7),
        sizes(2, 2, (64, 2), 7),
        sizes(2, 2, (3, 5), 7),
        sizes(3, 3, (7, 5), 3),
        sizes(2, 1, (5, 6), 5),
        sizes(2, 2, (4, 3), 1),
        sizes(2, 2, (6, 13), 9),
    ];
    for (i, s) in cases.into_iter().enumerate() {
        conv_case(s, 700 + 10 * i as u64);
    }
}

#[test]
fn plane_conv_weight_gradient_over_many_chunks() {
    // 300·16·25 = 120,000 outputs per weight: hundreds of partials whose chunks straddle items.
    conv_case(sizes(300, 2, (16, 25), 7), 780);
}

#[test]
fn plane_conv_gradients_pass_finite_differences() {
    for (i, (plane, k)) in [((4, 5), 3), ((2, 5), 7)].into_iter().enumerate() {
        let inputs = vec![
            (
                vec![2, 2, plane.0, plane.1],
                uniform(790 + i as u64, 4 * plane.0 * plane.1, -1.0, 1.0),
            ),
            (
                vec![1, 2, k, k],
                uniform(795 + i as u64, 2 * k * k, -1.0, 1.0),
            ),
        ];
        let r = gradcheck(&inputs, |g, x| plane_conv(g, x[0], x[1]), 1e-2, 799);
        check(
            &format!("plane conv {plane:?} K={k} gradcheck"),
            r.worst,
            1e-2,
        );
    }
}

#[test]
#[should_panic(expected = "K odd")]
fn plane_conv_refuses_an_even_kernel() {
    let mut g = Graph::new();
    let z = g.input("z", &[1, 2, 4, 4]);
    let w = g.input("w", &[1, 2, 4, 4]);
    plane_conv(&mut g, z, w);
}

#[test]
#[should_panic(expected = "at most 9")]
fn plane_conv_refuses_a_kernel_wider_than_its_window() {
    let mut g = Graph::new();
    let z = g.input("z", &[1, 2, 4, 4]);
    let w = g.input("w", &[1, 2, 11, 11]);
    plane_conv(&mut g, z, w);
}

#[test]
fn plane_conv_snapshot() {
    let mut g = Graph::new();
    let z = g.input("z", &[1, 2, 3, 5]);
    let w = g.input("w", &[1, 2, 7, 7]);
    let out = plane_conv(&mut g, z, w);
    let loss = weighted_loss(&mut g, out, &fixed(15, 2.0));
    let grads = g.backward(loss, &[z, w]).unwrap();
    let keep = [out, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    let got = h.run(&[(z, &fixed(30, 0.0)), (w, &fixed(98, 1.0))], &keep);
    insta::assert_snapshot!("plane_conv_k7", rounded(&got[0], 4, 5));
    insta::assert_snapshot!("plane_conv_k7_grad_z", rounded(&got[1], 4, 5));
    insta::assert_snapshot!("plane_conv_k7_grad_w", rounded(&got[2], 4, 7));
}
