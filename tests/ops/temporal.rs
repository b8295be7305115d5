use sfhead::engine::{Graph, TensorId};
use sfhead::gpu::Tuning;
use sfhead::ops::temporal_conv::{TemporalConvDims, cpu, temporal_conv};
use sfhead::ops::temporal_max_pool::{self as pool, temporal_max_pool};
use sfhead::ops::temporal_subsample::{self as sub, conv1x1_strided, temporal_subsample};
use sfhead::ops::{conv1x1, mul, reduce};
use sfhead::testing::*;

use crate::{bits_under, fixed};

/// `Σ gy ⊙ y` with a constant `gy` of y's shape, so that d loss/d y = gy.
fn weighted_loss(g: &mut Graph, y: TensorId, gy: &[f32]) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy.to_vec());
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, weighted, &axes)
}

/// Forward and all three gradients of one temporal convolution against the f64 reference.
fn conv_case(d: TemporalConvDims, seed: u64) {
    let x_shape = [d.batch, d.cin, d.frames, d.joints];
    let w_shape = [d.cout, d.cin, d.ksize, 1];
    let y_len = d.batch * d.cout * d.frames_out() * d.joints;
    let mut g = Graph::new();
    let x = g.input("x", &x_shape);
    let w = g.input("w", &w_shape);
    let b = g.input("b", &[d.cout]);
    let y = temporal_conv(&mut g, x, w, Some(b), d.dilation, d.stride);
    assert_eq!(g.shape(y), [d.batch, d.cout, d.frames_out(), d.joints]);
    let gy = uniform(seed, y_len, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let grads = g.backward(loss, &[x, w, b]).unwrap();
    let keep = [y, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    let dx = uniform(seed + 1, x_shape.iter().product(), -1.0, 1.0);
    let dw = uniform(seed + 2, w_shape.iter().product(), -1.0, 1.0);
    let db = uniform(seed + 3, d.cout, -1.0, 1.0);
    let out = h.run(&[(x, &dx), (w, &dw), (b, &db)], &keep);
    // The GPU and CPU variants of the kernel add in the same order: the same bits.
    let inputs: [(TensorId, &[f32]); 3] = [(x, &dx), (w, &dw), (b, &db)];
    let bits = |tuning: Tuning| bits_under(tuning, &h.graph, &inputs, &keep);
    assert_eq!(
        bits(Tuning::GPU),
        bits(Tuning::CPU),
        "kernel variants differ"
    );
    let (xf, wf, gyf) = (to_f64(&dx), to_f64(&dw), to_f64(&gy));
    let what = format!("temporal conv {d:?}");
    let want = cpu::forward(&xf, &wf, Some(&to_f64(&db)), &d);
    check(&what, normwise_error(&out[0], &want), REDUCTION_TOL);
    let want = cpu::grad_input(&gyf, &wf, &d);
    check(
        &format!("{what} grad x"),
        normwise_error(&out[1], &want),
        REDUCTION_TOL,
    );
    let want = cpu::grad_weight(&gyf, &xf, &d);
    check(
        &format!("{what} grad w"),
        normwise_error(&out[2], &want),
        REDUCTION_TOL,
    );
    let want = cpu::grad_bias(&gyf, &d);
    check(
        &format!("{what} grad b"),
        normwise_error(&out[3], &want),
        REDUCTION_TOL,
    );
}

fn dims(
    batch: usize,
    (cin, cout): (usize, usize),
    (frames, joints): (usize, usize),
) -> TemporalConvDims {
    TemporalConvDims {
        batch,
        cin,
        cout,
        frames,
        joints,
        ksize: 5,
        dilation: 1,
        stride: 1,
    }
}

#[test]
fn temporal_conv_matches_reference_for_each_dilation_and_stride() {
    for (i, (dilation, stride)) in [(1, 1), (2, 1), (1, 2), (2, 2)].into_iter().enumerate() {
        let d = TemporalConvDims {
            dilation,
            stride,
            ..dims(3, (5, 7), (11, 3))
        };
        conv_case(d, 300 + 10 * i as u64);
    }
}

#[test]
fn temporal_conv_matches_reference_across_tiles() {
    // 67 output channels and 115 (t, v) columns span two tiles each way, C_in·k = 65 spans five
    // k-tiles, and the weight gradient is split along (B, T_out·V).
    conv_case(
        TemporalConvDims {
            dilation: 2,
            ..dims(3, (13, 67), (23, 5))
        },
        340,
    );
    // A single sample with one k-tile of depth: the weight gradient in one pass, no split.
    conv_case(
        TemporalConvDims {
            stride: 2,
            ..dims(1, (3, 4), (9, 3))
        },
        350,
    );
}

#[test]
fn temporal_conv_reference_with_one_tap_is_a_strided_conv1x1() {
    let d = TemporalConvDims {
        ksize: 1,
        stride: 2,
        ..dims(2, (3, 4), (7, 5))
    };
    let x = to_f64(&uniform(360, 2 * 3 * 7 * 5, -1.0, 1.0));
    let w = to_f64(&uniform(361, 12, -1.0, 1.0));
    let b = to_f64(&uniform(362, 4, -1.0, 1.0));
    let picked = sub::cpu::subsample(&x, 7, 5, 2);
    let want = conv1x1::cpu::conv1x1(&picked, &w, Some(&b), (2, 3, 4, 4 * 5));
    let got = cpu::forward(&x, &w, Some(&b), &d);
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
}

#[test]
fn temporal_conv_gradients_pass_finite_differences() {
    for (i, (dilation, stride)) in [(1, 1), (2, 2)].into_iter().enumerate() {
        let inputs = vec![
            (vec![2, 3, 7, 2], uniform(370 + i as u64, 84, -1.0, 1.0)),
            (vec![4, 3, 5, 1], uniform(380 + i as u64, 60, -1.0, 1.0)),
            (vec![4], uniform(390 + i as u64, 4, -1.0, 1.0)),
        ];
        let r = gradcheck(
            &inputs,
            |g, x| temporal_conv(g, x[0], x[1], Some(x[2]), dilation, stride),
            1e-2,
            395 + i as u64,
        );
        check(
            &format!("temporal conv d={dilation} s={stride} gradcheck"),
            r.worst,
            1e-2,
        );
    }
}

#[test]
fn temporal_conv_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 2, 6, 2]);
    let w = g.input("w", &[2, 2, 5, 1]);
    let b = g.input("b", &[2]);
    let y = temporal_conv(&mut g, x, w, Some(b), 2, 2);
    let loss = weighted_loss(&mut g, y, &fixed(12, 3.0));
    let grads = g.backward(loss, &[x, w]).unwrap();
    let keep = [y, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    let feed = [(x, fixed(24, 0.0)), (w, fixed(20, 1.0)), (b, fixed(2, 2.0))];
    let feed: Vec<_> = feed.iter().map(|(t, d)| (*t, d.as_slice())).collect();
    let out = h.run(&feed, &keep);
    insta::assert_snapshot!("temporal_conv_d2_s2", rounded(&out[0], 4, 6));
    insta::assert_snapshot!("temporal_conv_d2_s2_grad_x", rounded(&out[1], 4, 6));
    insta::assert_snapshot!("temporal_conv_d2_s2_grad_w", rounded(&out[2], 4, 5));
}

/// Forward and backward of the pool on `data` (B, C, T, V) against the reference, exactly:
/// the pool only copies and sums at most three gradients in a fixed order.
fn pool_case(shape: [usize; 4], stride: usize, data: &[f32], seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (frames, joints) = (shape[2], shape[3]);
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let y = temporal_max_pool(&mut g, x, stride);
    let tout = pool::frames_out(frames, stride);
    assert_eq!(g.shape(y), [shape[0], shape[1], tout, joints]);
    let gy = uniform(seed, g.numel(y), -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, data)], &[y, gx]);
    let xf = to_f64(data);
    let want = pool::cpu::forward(&xf, frames, joints, stride);
    check(
        &format!("max-pool s={stride}"),
        elementwise_error(&out[0], &want),
        0.0,
    );
    let want = pool::cpu::backward(&xf, &to_f64(&gy), frames, joints, stride);
    check(
        &format!("max-pool s={stride} grad"),
        normwise_error(&out[1], &want),
        ELEMENTWISE_TOL,
    );
    let mut out = out.into_iter();
    (out.next().unwrap(), out.next().unwrap())
}

#[test]
fn max_pool_matches_reference() {
    for stride in [1, 2] {
        for frames in [10, 11] {
            let shape = [3, 5, frames, 7];
            let data = uniform(400 + frames as u64, shape.iter().product(), -1.0, 1.0);
            pool_case(shape, stride, &data, 410 + stride as u64);
        }
    }
}

#[test]
fn max_pool_ties_go_to_the_first_frame_of_the_window() {
    // One series per case, V = 1: all zeros (the absent second person), a constant, and values
    // from {0, 1, 2} where ties between unequal neighbours occur too.
    let series: [&[f32]; 3] = [
        &[0.0; 5],
        &[2.5; 5],
        &[1.0, 1.0, 0.0, 2.0, 2.0, 2.0, 0.0, 1.0, 1.0],
    ];
    for data in series {
        for stride in [1, 2] {
            let (y, gx) = pool_case([1, 1, data.len(), 1], stride, data, 420);
            let gy = uniform(420, pool::frames_out(data.len(), stride), -1.0, 1.0);
            // By hand: window t' covers frames t'·s − 1 … t'·s + 1 and routes to its first
            // maximal frame.
            let mut want = vec![0.0f32; data.len()];
            for (to, &gv) in gy.iter().enumerate() {
                let first = (to * stride).saturating_sub(1);
                let last = (to * stride + 1).min(data.len() - 1);
                let max = data[first..=last].iter().copied().fold(f32::MIN, f32::max);
                let at = (first..=last).find(|&t| data[t] == max).unwrap();
                assert_eq!(y[to], max);
                want[at] += gv;
            }
            assert_eq!(gx, want, "ties in {data:?} at stride {stride}");
        }
    }
}

#[test]
fn max_pool_padding_never_wins() {
    // All values negative: a zero-filled pad would win at both ends.
    let data = [-5.0, -4.0, -3.0, -6.0, -7.0, -2.0];
    let (y, _) = pool_case([1, 1, 6, 1], 1, &data, 430);
    assert_eq!(y, [-4.0, -3.0, -3.0, -3.0, -2.0, -2.0]);
    let (y, _) = pool_case([1, 1, 6, 1], 2, &data, 431);
    assert_eq!(y, [-4.0, -3.0, -2.0]);
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
fn max_pool_gradients_pass_finite_differences() {
    for stride in [1, 2] {
        let inputs = vec![(vec![2, 3, 7, 5], distinct(440 + stride as u64, 210))];
        let r = gradcheck(
            &inputs,
            |g, x| temporal_max_pool(g, x[0], stride),
            1e-3,
            445,
        );
        check(&format!("max-pool s={stride} gradcheck"), r.worst, 1e-2);
    }
}

#[test]
fn max_pool_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 2, 7, 2]);
    let y = temporal_max_pool(&mut g, x, 2);
    let loss = weighted_loss(&mut g, y, &fixed(16, 1.0));
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &fixed(28, 0.3))], &[y, gx]);
    insta::assert_snapshot!("max_pool_s2", rounded(&out[0], 4, 4));
    insta::assert_snapshot!("max_pool_s2_grad", rounded(&out[1], 4, 7));
}

#[test]
fn strided_conv1x1_matches_reference() {
    for (i, (stride, frames)) in [(2, 11), (2, 10), (1, 7)].into_iter().enumerate() {
        let d = TemporalConvDims {
            ksize: 1,
            stride,
            ..dims(3, (5, 6), (frames, 7))
        };
        let x_shape = [d.batch, d.cin, d.frames, d.joints];
        let seed = 450 + 10 * i as u64;
        let mut g = Graph::new();
        let x = g.input("x", &x_shape);
        let w = g.input("w", &[d.cout, d.cin, 1, 1]);
        let b = g.input("b", &[d.cout]);
        let y = conv1x1_strided(&mut g, x, w, Some(b), stride);
        assert_eq!(g.shape(y), [d.batch, d.cout, d.frames_out(), d.joints]);
        let gy = uniform(seed, g.numel(y), -1.0, 1.0);
        let loss = weighted_loss(&mut g, y, &gy);
        let grads = g.backward(loss, &[x, w, b]).unwrap();
        let keep = [y, grads[0], grads[1], grads[2]];
        let h = Harness::new(g, &keep);
        let dx = uniform(seed + 1, x_shape.iter().product(), -1.0, 1.0);
        let dw = uniform(seed + 2, d.cout * d.cin, -1.0, 1.0);
        let db = uniform(seed + 3, d.cout, -1.0, 1.0);
        let out = h.run(&[(x, &dx), (w, &dw), (b, &db)], &keep);
        // The reference is the temporal convolution with one tap.
        let (xf, wf, gyf) = (to_f64(&dx), to_f64(&dw), to_f64(&gy));
        let what = format!("conv1x1 stride {stride}, T = {frames}");
        let want = cpu::forward(&xf, &wf, Some(&to_f64(&db)), &d);
        check(&what, normwise_error(&out[0], &want), REDUCTION_TOL);
        let pairs = [
            (&out[1], cpu::grad_input(&gyf, &wf, &d), "x"),
            (&out[2], cpu::grad_weight(&gyf, &xf, &d), "w"),
            (&out[3], cpu::grad_bias(&gyf, &d), "b"),
        ];
        for (got, want, name) in pairs {
            check(
                &format!("{what} grad {name}"),
                normwise_error(got, &want),
                REDUCTION_TOL,
            );
        }
    }
}

#[test]
fn subsample_and_transpose_match_reference() {
    let (frames, joints) = (11, 3);
    let shape = [2, 3, frames, joints];
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let y = temporal_subsample(&mut g, x, 2);
    let gy = uniform(490, g.numel(y), -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let data = uniform(491, shape.iter().product(), -1.0, 1.0);
    let out = h.run(&[(x, &data)], &[y, gx]);
    let want = sub::cpu::subsample(&to_f64(&data), frames, joints, 2);
    check("subsample", elementwise_error(&out[0], &want), 0.0);
    let want = sub::cpu::subsample_transpose(&to_f64(&gy), frames, joints, 2);
    check(
        "subsample transpose",
        elementwise_error(&out[1], &want),
        0.0,
    );
}

/// The max-pool and the subsampling, both ways, give the same bits with an element per
/// invocation (the GPU tuning) as with a frame row (the CPU one), ties included.
#[test]
fn pool_and_subsample_agree_across_tunings() {
    let shape = [3, 4, 13, 9];
    let n: usize = shape.iter().product();
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let pooled = [1, 2].map(|stride| temporal_max_pool(&mut g, x, stride));
    let sub = temporal_subsample(&mut g, x, 2);
    let g_sub = uniform(520, g.numel(sub), -1.0, 1.0);
    let mut loss = weighted_loss(&mut g, sub, &g_sub);
    for (k, &y) in pooled.iter().enumerate() {
        let gy = uniform(521 + k as u64, g.numel(y), -1.0, 1.0);
        let term = weighted_loss(&mut g, y, &gy);
        loss = sfhead::ops::add::add(&mut g, loss, term);
    }
    let gx = g.backward(loss, &[x]).unwrap()[0];
    // Values on a coarse grid, so that windows hold ties.
    let data: Vec<f32> = uniform(525, n, -1.0, 1.0)
        .iter()
        .map(|v| (v * 4.0).round() / 4.0)
        .collect();
    let keep = [pooled[0], pooled[1], sub, gx];
    let bits = |tuning: Tuning| bits_under(tuning, &g, &[(x, &data)], &keep);
    assert_eq!(bits(Tuning::GPU), bits(Tuning::CPU));
}

#[test]
fn strided_conv1x1_gradients_pass_finite_differences() {
    let inputs = vec![
        (vec![2, 3, 7, 2], uniform(500, 84, -1.0, 1.0)),
        (vec![4, 3, 1, 1], uniform(501, 12, -1.0, 1.0)),
        (vec![4], uniform(502, 4, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| conv1x1_strided(g, x[0], x[1], Some(x[2]), 2),
        1e-2,
        503,
    );
    check("strided conv1x1 gradcheck", r.worst, 1e-2);
}

#[test]
fn subsample_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 2, 5, 2]);
    let y = temporal_subsample(&mut g, x, 2);
    let loss = weighted_loss(&mut g, y, &fixed(12, 1.0));
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &fixed(20, 0.0))], &[y, gx]);
    insta::assert_snapshot!("subsample_s2", rounded(&out[0], 4, 6));
    insta::assert_snapshot!("subsample_s2_transpose", rounded(&out[1], 4, 10));
}
