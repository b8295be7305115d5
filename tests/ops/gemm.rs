use sfhead::engine::Graph;
use sfhead::ops::{conv1x1, gemm, linear, matmul};
use sfhead::testing::*;

use crate::{bits_under, fixed};

/// Odd sizes: none is a multiple of the 64-wide tile or the 16-deep k-tile.
const M: usize = 67;
const N: usize = 45;
const K: usize = 37;

#[test]
fn matmul_layouts_match_reference() {
    for (i, (ta, tb)) in [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        let a_shape = if ta { [K, M] } else { [M, K] };
        let b_shape = if tb { [N, K] } else { [K, N] };
        let mut g = Graph::new();
        let (a, b) = (g.input("a", &a_shape), g.input("b", &b_shape));
        let c = matmul::matmul(&mut g, a, b, ta, tb);
        let h = Harness::new(g, &[c]);
        let da = uniform(40 + i as u64, M * K, -1.0, 1.0);
        let db = uniform(50 + i as u64, K * N, -1.0, 1.0);
        let got = &h.run(&[(a, &da), (b, &db)], &[c])[0];
        let want = matmul::cpu::matmul(&to_f64(&da), &to_f64(&db), (M, N, K), ta, tb);
        check(
            &format!("matmul ta={ta} tb={tb}"),
            normwise_error(got, &want),
            REDUCTION_TOL,
        );
    }
}

/// The GPU and the CPU variants of the kernels (tiled or direct-load GEMM, parallel or serial
/// reduction trees) add in the same order, so they agree bit for bit, on every layout, with
/// bias, batched and grouped products and split-K with its reduction; the tall product puts the
/// direct body's lanes along C's rows, the others along its columns.
#[test]
fn gemm_variants_give_identical_bits() {
    use sfhead::engine::TensorId;
    use sfhead::gpu::Tuning;
    let run = |tuning: Tuning| -> Vec<Vec<u32>> {
        let mut g = Graph::new();
        let mut outputs = Vec::new();
        let mut inputs = Vec::new();
        for (i, (ta, tb, k)) in [
            (false, false, K),
            (false, true, K),
            (true, false, 3001),
            (true, true, K),
            (false, false, K + 1),
        ]
        .into_iter()
        .enumerate()
        {
            let (m, n) = match k {
                K => (M, N),
                3001 => (9, 13),
                _ => (150, 7),
            };
            let a = g.input(&format!("a{i}"), &if ta { [k, m] } else { [m, k] });
            let b = g.input(&format!("b{i}"), &if tb { [n, k] } else { [k, n] });
            outputs.push(matmul::matmul(&mut g, a, b, ta, tb));
            inputs.push((a, uniform(70 + i as u64, m * k, -1.0, 1.0)));
            inputs.push((b, uniform(80 + i as u64, k * n, -1.0, 1.0)));
        }
        // Batched with a bias: a 1×1 convolution of (3, 37, 5, 9) to 67 channels.
        let x = g.input("x", &[3, K, 5, 9]);
        let w = g.input("w", &[M, K, 1, 1]);
        let bias = g.input("bias", &[M]);
        outputs.push(conv1x1::conv1x1(&mut g, x, w, Some(bias)));
        inputs.push((x, uniform(90, 3 * K * 45, -1.0, 1.0)));
        inputs.push((w, uniform(91, M * K, -1.0, 1.0)));
        inputs.push((bias, uniform(92, M, -1.0, 1.0)));
        // Grouped, with the groups' deep weight gradients split along k.
        let xg = g.input("xg", &[3, 3 * 5, 16, 11]);
        let wg = g.input("wg", &[3 * 4, 5]);
        let gy = g.input("gy", &[3, 3 * 4, 16, 11]);
        outputs.push(conv1x1::conv1x1_grouped(&mut g, xg, wg, None, 3));
        let dims = conv1x1::Dims {
            groups: 3,
            cin: 5,
            cout: 4,
            points: 16 * 11,
        };
        let shape = [3 * 4, 5];
        outputs.push(conv1x1::grad_weight_gemm(3, dims).push(&mut g, "gw", gy, xg, None, &shape));
        inputs.push((xg, uniform(93, 3 * 15 * 176, -1.0, 1.0)));
        inputs.push((wg, uniform(94, 60, -1.0, 1.0)));
        inputs.push((gy, uniform(95, 3 * 12 * 176, -1.0, 1.0)));
        let inputs: Vec<(TensorId, &[f32])> =
            inputs.iter().map(|(t, d)| (*t, d.as_slice())).collect();
        bits_under(tuning, &g, &inputs, &outputs)
    };
    assert_eq!(run(Tuning::GPU), run(Tuning::CPU));
}

#[test]
fn split_k_products_match_reference() {
    // A long k with a single small output tile takes the split-K path and its reduction.
    let (m, n, k) = (9, 13, 3001);
    let mut g = Graph::new();
    let (a, b) = (g.input("a", &[k, m]), g.input("b", &[k, n]));
    let c = matmul::matmul(&mut g, a, b, true, false);
    let h = Harness::new(g, &[c]);
    let (da, db) = (uniform(60, m * k, -1.0, 1.0), uniform(61, k * n, -1.0, 1.0));
    let got = &h.run(&[(a, &da), (b, &db)], &[c])[0];
    let want = matmul::cpu::matmul(&to_f64(&da), &to_f64(&db), (m, n, k), true, false);
    check("split-K matmul", normwise_error(got, &want), REDUCTION_TOL);
}

#[test]
fn gemm_reference_agrees_with_plain_matmul() {
    let g = gemm::Gemm {
        m: 3,
        n: 4,
        k: 5,
        kb: 1,
        products: 1,
        nest: gemm::FLAT,
        a: gemm::Operand::rows(false, 5),
        b: gemm::Operand::rows(true, 5),
        ldc: 4,
        c_batch: [0; 3],
        bias: gemm::Bias::None,
        bias_batch: 0,
    };
    let a = to_f64(&uniform(62, 15, -1.0, 1.0));
    let b = to_f64(&uniform(63, 20, -1.0, 1.0));
    let want = matmul::cpu::matmul(&a, &b, (3, 4, 5), false, true);
    let got = gemm::cpu::gemm(&g, &a, &b, None);
    assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12));
}

/// x (B, C_in, T, V) with odd sizes.
const X: [usize; 4] = [3, 5, 7, 11];
const COUT: usize = 19;

#[test]
fn conv1x1_forward_and_backward_match_reference() {
    let (batch, cin, points) = (X[0], X[1], X[2] * X[3]);
    let mut g = Graph::new();
    let x = g.input("x", &X);
    let w = g.input("w", &[COUT, cin, 1, 1]);
    let b = g.input("b", &[COUT]);
    let y = conv1x1::conv1x1(&mut g, x, w, Some(b));
    let gy_data = uniform(70, batch * COUT * points, -1.0, 1.0);
    let gy = g.constant("gy", &[batch, COUT, X[2], X[3]], gy_data.clone());
    let weighted = sfhead::ops::mul::mul(&mut g, y, gy);
    let loss = sfhead::ops::reduce::sum(&mut g, weighted, &[0, 1, 2, 3]);
    let grads = g.backward(loss, &[x, w, b]).unwrap();
    let keep = [y, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    let dx = uniform(71, batch * cin * points, -1.0, 1.0);
    let dw = uniform(72, COUT * cin, -1.0, 1.0);
    let db = uniform(73, COUT, -1.0, 1.0);
    let out = h.run(&[(x, &dx), (w, &dw), (b, &db)], &keep);
    let dims = (batch, cin, COUT, points);
    let (xf, wf, gyf) = (to_f64(&dx), to_f64(&dw), to_f64(&gy_data));
    let want = conv1x1::cpu::conv1x1(&xf, &wf, Some(&to_f64(&db)), dims);
    check("conv1x1", normwise_error(&out[0], &want), REDUCTION_TOL);
    // gx = Wᵀ·gY per sample; gW = Σ_b gY·Xᵀ; gb = Σ gY.
    let mut gx = vec![0.0; xf.len()];
    let mut gw = vec![0.0; wf.len()];
    let mut gb = vec![0.0; COUT];
    for bi in 0..batch {
        for o in 0..COUT {
            for p in 0..points {
                let gyv = gyf[(bi * COUT + o) * points + p];
                gb[o] += gyv;
                for i in 0..cin {
                    gx[(bi * cin + i) * points + p] += wf[o * cin + i] * gyv;
                    gw[o * cin + i] += gyv * xf[(bi * cin + i) * points + p];
                }
            }
        }
    }
    check(
        "conv1x1 grad x",
        normwise_error(&out[1], &gx),
        REDUCTION_TOL,
    );
    check(
        "conv1x1 grad w",
        normwise_error(&out[2], &gw),
        REDUCTION_TOL,
    );
    check(
        "conv1x1 grad b",
        normwise_error(&out[3], &gb),
        REDUCTION_TOL,
    );
}

#[test]
fn linear_forward_and_backward_match_reference() {
    let (rows, cin, cout) = (13, 29, 11);
    let mut g = Graph::new();
    let x = g.input("x", &[rows, cin]);
    let w = g.input("w", &[cout, cin]);
    let b = g.input("b", &[cout]);
    let y = linear::linear(&mut g, x, w, Some(b));
    let gy_data = uniform(80, rows * cout, -1.0, 1.0);
    let gy = g.constant("gy", &[rows, cout], gy_data.clone());
    let weighted = sfhead::ops::mul::mul(&mut g, y, gy);
    let loss = sfhead::ops::reduce::sum(&mut g, weighted, &[0, 1]);
    let grads = g.backward(loss, &[x, w, b]).unwrap();
    let keep = [y, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    let dx = uniform(81, rows * cin, -1.0, 1.0);
    let dw = uniform(82, cout * cin, -1.0, 1.0);
    let db = uniform(83, cout, -1.0, 1.0);
    let out = h.run(&[(x, &dx), (w, &dw), (b, &db)], &keep);
    let (xf, wf, gyf) = (to_f64(&dx), to_f64(&dw), to_f64(&gy_data));
    let want = linear::cpu::linear(&xf, &wf, Some(&to_f64(&db)), (rows, cin, cout));
    check("linear", normwise_error(&out[0], &want), REDUCTION_TOL);
    let gx = matmul::cpu::matmul(&gyf, &wf, (rows, cin, cout), false, false);
    let gw = matmul::cpu::matmul(&gyf, &xf, (cout, cin, rows), true, false);
    let gb: Vec<f64> = (0..cout)
        .map(|o| (0..rows).map(|r| gyf[r * cout + o]).sum())
        .collect();
    check("linear grad x", normwise_error(&out[1], &gx), REDUCTION_TOL);
    check("linear grad w", normwise_error(&out[2], &gw), REDUCTION_TOL);
    check("linear grad b", normwise_error(&out[3], &gb), REDUCTION_TOL);
}

#[test]
fn gemm_family_gradients_pass_finite_differences() {
    let inputs = vec![
        (vec![7, 9], uniform(90, 63, -1.0, 1.0)),
        (vec![9, 5], uniform(91, 45, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| matmul::matmul(g, x[0], x[1], false, false),
        1e-2,
        92,
    );
    check("matmul NN gradcheck", r.worst, 1e-2);
    let inputs = vec![
        (vec![9, 7], uniform(93, 63, -1.0, 1.0)),
        (vec![5, 9], uniform(94, 45, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| matmul::matmul(g, x[0], x[1], true, true),
        1e-2,
        95,
    );
    check("matmul TT gradcheck", r.worst, 1e-2);
    let inputs = vec![
        (vec![2, 3, 5, 4], uniform(96, 120, -1.0, 1.0)),
        (vec![6, 3, 1, 1], uniform(97, 18, -1.0, 1.0)),
        (vec![6], uniform(98, 6, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| conv1x1::conv1x1(g, x[0], x[1], Some(x[2])),
        1e-2,
        99,
    );
    check("conv1x1 gradcheck", r.worst, 1e-2);
    let inputs = vec![
        (vec![5, 8], uniform(100, 40, -1.0, 1.0)),
        (vec![3, 8], uniform(101, 24, -1.0, 1.0)),
        (vec![3], uniform(102, 3, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| linear::linear(g, x[0], x[1], Some(x[2])),
        1e-2,
        103,
    );
    check("linear gradcheck", r.worst, 1e-2);
}

#[test]
fn gemm_snapshots() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3, 2, 2]);
    let w = g.input("w", &[4, 3]);
    let b = g.input("b", &[4]);
    let y = conv1x1::conv1x1(&mut g, x, w, Some(b));
    let h = Harness::new(g, &[y]);
    let out = h.run(
        &[
            (x, &fixed(24, 0.0)),
            (w, &fixed(12, 0.5)),
            (b, &fixed(4, 2.0)),
        ],
        &[y],
    );
    insta::assert_snapshot!("conv1x1", rounded(&out[0], 4, 4));
}

/// A grouped 1×1 convolution is its groups' convolutions side by side, forward and backward;
/// 16 × 11 positions make the weight gradient of each group deep enough to be split along k.
#[test]
fn grouped_conv1x1_matches_its_groups() {
    let (batch, groups, cin, cout, points) = (3, 3, 5, 4, 16 * 11);
    let mut g = Graph::new();
    let x = g.input("x", &[batch, groups * cin, 16, 11]);
    let w = g.input("w", &[groups * cout, cin, 1, 1]);
    let b = g.input("b", &[groups * cout]);
    let y = conv1x1::conv1x1_grouped(&mut g, x, w, Some(b), groups);
    assert_eq!(g.shape(y), [batch, groups * cout, 16, 11]);
    let gy_data = uniform(74, batch * groups * cout * points, -1.0, 1.0);
    let gy = g.constant("gy", &[batch, groups * cout, 16, 11], gy_data.clone());
    let weighted = sfhead::ops::mul::mul(&mut g, y, gy);
    let loss = sfhead::ops::reduce::sum(&mut g, weighted, &[0, 1, 2, 3]);
    let grads = g.backward(loss, &[x, w, b]).unwrap();
    let keep = [y, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    let dx = uniform(75, batch * groups * cin * points, -1.0, 1.0);
    let dw = uniform(76, groups * cout * cin, -1.0, 1.0);
    let db = uniform(77, groups * cout, -1.0, 1.0);
    let out = h.run(&[(x, &dx), (w, &dw), (b, &db)], &keep);
    let (xf, wf, bf, gyf) = (to_f64(&dx), to_f64(&dw), to_f64(&db), to_f64(&gy_data));
    let (mut want, mut gx, mut gw, mut gb) = (
        vec![0.0; gyf.len()],
        vec![0.0; xf.len()],
        vec![0.0; wf.len()],
        vec![0.0; bf.len()],
    );
    for s in 0..groups {
        for bi in 0..batch {
            for o in 0..cout {
                let (oc, row) = (s * cout + o, (bi * groups * cout + s * cout + o) * points);
                for p in 0..points {
                    let gyv = gyf[row + p];
                    gb[oc] += gyv;
                    let mut acc = bf[oc];
                    for i in 0..cin {
                        let xi = (bi * groups * cin + s * cin + i) * points + p;
                        acc += wf[oc * cin + i] * xf[xi];
                        gx[xi] += wf[oc * cin + i] * gyv;
                        gw[oc * cin + i] += gyv * xf[xi];
                    }
                    want[row + p] = acc;
                }
            }
        }
    }
    for (name, got, want) in [
        ("grouped conv1x1", &out[0], &want),
        ("grouped conv1x1 grad x", &out[1], &gx),
        ("grouped conv1x1 grad w", &out[2], &gw),
        ("grouped conv1x1 grad b", &out[3], &gb),
    ] {
        check(name, normwise_error(got, want), REDUCTION_TOL);
    }
    let inputs = vec![
        (vec![2, 6, 3], uniform(78, 36, -1.0, 1.0)),
        (vec![4, 3], uniform(79, 12, -1.0, 1.0)),
        (vec![4], uniform(80, 4, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| conv1x1::conv1x1_grouped(g, x[0], x[1], Some(x[2]), 2),
        1e-2,
        81,
    );
    check("grouped conv1x1 gradcheck", r.worst, 1e-2);
}
