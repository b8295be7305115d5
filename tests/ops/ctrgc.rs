//! The graph-convolution ops of CTR-GC: pairwise tanh difference, topology refinement and
//! aggregation, forward and every gradient against the f64 references.

use sfhead::engine::{Graph, TensorId};
use sfhead::ops::{aggregate, mul, reduce, refine, tanh_diff};
use sfhead::testing::*;

use crate::fixed;

/// `Σ gy ⊙ y` with a constant `gy` of seed `seed`: its gradient with respect to y is `gy`.
fn weighted_loss(g: &mut Graph, y: TensorId, seed: u64) -> (TensorId, Vec<f32>) {
    let shape = g.shape(y).to_vec();
    let gy_data = uniform(seed, g.numel(y), -1.0, 1.0);
    let gy = g.constant("gy", &shape, gy_data.clone());
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    (reduce::sum(g, weighted, &axes), gy_data)
}

/// (B, R, V) with odd sizes.
const REL: [usize; 3] = [3, 5, 7];

#[test]
fn tanh_diff_forward_and_backward_match_reference() {
    let [b, r, v] = REL;
    let mut g = Graph::new();
    let (x1, x2) = (g.input("x1", &REL), g.input("x2", &REL));
    let e = tanh_diff::tanh_diff(&mut g, x1, x2);
    assert_eq!(g.shape(e), [b, r, v, v]);
    let (loss, ge) = weighted_loss(&mut g, e, 300);
    let grads = g.backward(loss, &[x1, x2]).unwrap();
    let keep = [e, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    // Differences up to ±6 reach the saturated ends of tanh as well as its linear middle.
    let d1 = uniform(301, b * r * v, -3.0, 3.0);
    let d2 = uniform(302, b * r * v, -3.0, 3.0);
    let out = h.run(&[(x1, &d1), (x2, &d2)], &keep);
    let want = tanh_diff::cpu::tanh_diff(&to_f64(&d1), &to_f64(&d2), v);
    check(
        "tanh_diff",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    let (g1, g2) = tanh_diff::cpu::tanh_diff_grad(&want, &to_f64(&ge), v);
    check(
        "tanh_diff grad x1",
        normwise_error(&out[1], &g1),
        REDUCTION_TOL,
    );
    check(
        "tanh_diff grad x2",
        normwise_error(&out[2], &g2),
        REDUCTION_TOL,
    );
}

/// Runs refine on C of `shape` for `branch`; checks Q and the gradients of C, alpha and PA.
fn refine_case(shape: [usize; 4], branch: usize, seed: u64) {
    let [b, c, v, _] = shape;
    let (n, vv) = (b * c * v * v, v * v);
    let mut g = Graph::new();
    let ct = g.input("c", &shape);
    let alpha = g.input("alpha", &[1]);
    let pa = g.input("pa", &[3, v, v]);
    let q = refine::refine(&mut g, ct, alpha, pa, branch);
    let (loss, gq) = weighted_loss(&mut g, q, seed);
    let grads = g.backward(loss, &[ct, alpha, pa]).unwrap();
    let keep = [q, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    let dc = uniform(seed + 1, n, -1.0, 1.0);
    let dalpha = [0.73f32];
    let dpa = uniform(seed + 2, 3 * vv, -1.0, 1.0);
    let out = h.run(&[(ct, &dc), (alpha, &dalpha), (pa, &dpa)], &keep);
    let (cf, a, paf, gqf) = (to_f64(&dc), f64::from(dalpha[0]), to_f64(&dpa), to_f64(&gq));
    let want = refine::cpu::refine(&cf, a, &paf, branch, vv);
    check("refine", normwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let (gc, galpha, gpa) = refine::cpu::refine_grad(&gqf, &cf, a, 3 * vv, branch, vv);
    check(
        "refine grad C",
        elementwise_error(&out[1], &gc),
        ELEMENTWISE_TOL,
    );
    check(
        "refine grad alpha",
        normwise_error(&out[2], &[galpha]),
        REDUCTION_TOL,
    );
    check(
        "refine grad PA",
        normwise_error(&out[3], &gpa),
        REDUCTION_TOL,
    );
    // The slices of the other branches get exactly zero.
    let other = out[3].iter().enumerate().filter(|(i, _)| i / vv != branch);
    assert!(other.into_iter().all(|(_, &x)| x == 0.0));
}

#[test]
fn refine_forward_and_backward_match_reference() {
    refine_case([3, 5, 7, 7], 1, 310);
    // More than 4,096 elements: g_alpha sums several chunk partials.
    refine_case([4, 23, 9, 9], 2, 320);
    // More than 4,096 maps: the sums of g_PA over (b, c) take two passes.
    refine_case([65, 64, 3, 3], 0, 360);
}

/// (B, C, T, V) with odd sizes; T spans more than one 64-row GEMM tile.
const AGG: [usize; 4] = [2, 5, 67, 7];

#[test]
fn aggregate_forward_and_backward_match_reference() {
    let [b, c, t, v] = AGG;
    let maps = b * c;
    let mut g = Graph::new();
    let q = g.input("q", &[b, c, v, v]);
    let x3 = g.input("x3", &AGG);
    let z = aggregate::aggregate(&mut g, q, x3);
    let (loss, gz) = weighted_loss(&mut g, z, 330);
    let grads = g.backward(loss, &[q, x3]).unwrap();
    let keep = [z, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    let dq = uniform(331, maps * v * v, -1.0, 1.0);
    let dx = uniform(332, maps * t * v, -1.0, 1.0);
    let out = h.run(&[(q, &dq), (x3, &dx)], &keep);
    let (qf, xf) = (to_f64(&dq), to_f64(&dx));
    let dims = aggregate::Dims::maps(maps, t, v);
    let want = aggregate::cpu::aggregate(&qf, &xf, dims);
    check("aggregate", normwise_error(&out[0], &want), REDUCTION_TOL);
    let (gq, gx) = aggregate::cpu::aggregate_grad(&qf, &xf, &to_f64(&gz), dims);
    check(
        "aggregate grad Q",
        normwise_error(&out[1], &gq),
        REDUCTION_TOL,
    );
    check(
        "aggregate grad x3",
        normwise_error(&out[2], &gx),
        REDUCTION_TOL,
    );
}

#[test]
fn aggregate_gemms_describe_the_definition() {
    // The GEMM descriptors, evaluated by the GEMM reference, agree with the direct loops.
    let [b, c, t, v] = AGG;
    let maps = b * c;
    let q = to_f64(&uniform(340, maps * v * v, -1.0, 1.0));
    let x3 = to_f64(&uniform(341, maps * t * v, -1.0, 1.0));
    let gz = to_f64(&uniform(342, maps * t * v, -1.0, 1.0));
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    let dims = aggregate::Dims::maps(maps, t, v);
    let z = sfhead::ops::gemm::cpu::gemm(&aggregate::forward_gemm(dims), &x3, &q, None);
    assert!(close(&z, &aggregate::cpu::aggregate(&q, &x3, dims)));
    let (gq, gx) = aggregate::cpu::aggregate_grad(&q, &x3, &gz, dims);
    let gemm_gq = sfhead::ops::gemm::cpu::gemm(&aggregate::grad_q_gemm(dims), &gz, &x3, None);
    let gemm_gx = sfhead::ops::gemm::cpu::gemm(&aggregate::grad_x3_gemm(dims), &gz, &q, None);
    assert!(close(&gemm_gq, &gq));
    assert!(close(&gemm_gx, &gx));
}

#[test]
fn ctrgc_gradients_pass_finite_differences() {
    let rel = vec![2, 3, 5];
    let inputs = vec![
        (rel.clone(), uniform(350, 30, -1.0, 1.0)),
        (rel, uniform(351, 30, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| tanh_diff::tanh_diff(g, x[0], x[1]),
        1e-2,
        352,
    );
    check("tanh_diff gradcheck", r.worst, 1e-2);

    let inputs = vec![
        (vec![2, 3, 5, 5], uniform(353, 150, -1.0, 1.0)),
        (vec![1], vec![-0.6]),
        (vec![3, 5, 5], uniform(354, 75, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| refine::refine(g, x[0], x[1], x[2], 2),
        1e-2,
        355,
    );
    check("refine gradcheck", r.worst, 1e-2);

    let inputs = vec![
        (vec![2, 3, 5, 5], uniform(356, 150, -1.0, 1.0)),
        (vec![2, 3, 4, 5], uniform(357, 120, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| aggregate::aggregate(g, x[0], x[1]),
        1e-2,
        358,
    );
    check("aggregate gradcheck", r.worst, 1e-2);
}

#[test]
fn ctrgc_snapshots() {
    let mut g = Graph::new();
    let (x1, x2) = (g.input("x1", &[1, 2, 3]), g.input("x2", &[1, 2, 3]));
    let e = tanh_diff::tanh_diff(&mut g, x1, x2);
    let c = g.input("c", &[1, 2, 3, 3]);
    let alpha = g.input("alpha", &[1]);
    let pa = g.input("pa", &[3, 3, 3]);
    let q = refine::refine(&mut g, c, alpha, pa, 1);
    let x3 = g.input("x3", &[1, 2, 4, 3]);
    let z = aggregate::aggregate(&mut g, q, x3);
    let h = Harness::new(g, &[e, q, z]);
    let out = h.run(
        &[
            (x1, &fixed(6, 0.0)),
            (x2, &fixed(6, 1.5)),
            (c, &fixed(18, 0.3)),
            (alpha, &[0.5]),
            (pa, &fixed(27, 2.0)),
            (x3, &fixed(24, 0.9)),
        ],
        &[e, q, z],
    );
    insta::assert_snapshot!("tanh_diff", rounded(&out[0], 4, 3));
    insta::assert_snapshot!("refine", rounded(&out[1], 4, 3));
    insta::assert_snapshot!("aggregate", rounded(&out[2], 4, 3));
}

/// (B, S, R or C, T, V) of the branch-stack tests.
const STACK: [usize; 5] = [2, 3, 4, 6, 5];

/// Rows `r` of length `len` taken from `x` (rows of `len`), for each index of `rows`.
fn rows(x: &[f64], rows: impl Iterator<Item = usize>, len: usize) -> Vec<f64> {
    rows.flat_map(|r| x[r * len..(r + 1) * len].to_vec())
        .collect()
}

#[test]
fn stacked_tanh_diff_matches_its_branches() {
    let [b, s, r, _, v] = STACK;
    let mut g = Graph::new();
    let x = g.input("x", &[b, s * 2 * r, v]);
    let e = tanh_diff::tanh_diff_stacked(&mut g, x, s);
    assert_eq!(g.shape(e), [b, s * r, v, v]);
    let (loss, ge) = weighted_loss(&mut g, e, 370);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[e, gx]);
    let dx = uniform(371, b * s * 2 * r * v, -3.0, 3.0);
    let out = h.run(&[(x, &dx)], &[e, gx]);
    // Row (b, s, half, r) of x; branch s pairs its halves 0 and 1.
    let xf = to_f64(&dx);
    let half = |k: usize| {
        let at = (0..b * s).flat_map(move |bs| (0..r).map(move |i| (bs * 2 + k) * r + i));
        rows(&xf, at, v)
    };
    let want = tanh_diff::cpu::tanh_diff(&half(0), &half(1), v);
    check(
        "stacked tanh_diff",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    let (g1, g2) = tanh_diff::cpu::tanh_diff_grad(&want, &to_f64(&ge), v);
    let stacked: Vec<f64> = (0..b * s)
        .flat_map(|bs| [&g1, &g2].map(|h| h[bs * r * v..(bs + 1) * r * v].to_vec()))
        .flatten()
        .collect();
    check(
        "stacked tanh_diff grad",
        normwise_error(&out[1], &stacked),
        REDUCTION_TOL,
    );
    let inputs = vec![(vec![1, 2 * 2 * 2, 3], uniform(372, 24, -1.0, 1.0))];
    let r = gradcheck(
        &inputs,
        |g, x| tanh_diff::tanh_diff_stacked(g, x[0], 2),
        1e-2,
        373,
    );
    check("stacked tanh_diff gradcheck", r.worst, 1e-2);
}

#[test]
fn branch_refinement_matches_its_branches() {
    let [b, s, c, _, v] = STACK;
    let (vv, map) = (v * v, c * v * v);
    let mut g = Graph::new();
    let ct = g.input("c", &[b, s * c, v, v]);
    let alpha = g.input("alpha", &[1]);
    let pa = g.input("pa", &[s, v, v]);
    let q = refine::refine_branches(&mut g, ct, alpha, pa);
    let (loss, gq) = weighted_loss(&mut g, q, 380);
    let grads = g.backward(loss, &[ct, alpha, pa]).unwrap();
    let keep = [q, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    let dc = uniform(381, b * s * map, -1.0, 1.0);
    let dpa = uniform(382, s * vv, -1.0, 1.0);
    let out = h.run(&[(ct, &dc), (alpha, &[0.73]), (pa, &dpa)], &keep);
    let (cf, paf, gqf) = (to_f64(&dc), to_f64(&dpa), to_f64(&gq));
    let a = f64::from(0.73f32);
    // Branch k's maps of every sample, then the branch's refinement and its gradients.
    let branch = |x: &[f64], k: usize| rows(x, (0..b).map(|bi| bi * s + k), map);
    let mut want = vec![0.0; cf.len()];
    let (mut galpha, mut gpa) = (0.0, vec![0.0; s * vv]);
    for k in 0..s {
        let qk = refine::cpu::refine(&branch(&cf, k), a, &paf, k, vv);
        let (_, ga, gp) =
            refine::cpu::refine_grad(&branch(&gqf, k), &branch(&cf, k), a, s * vv, k, vv);
        for bi in 0..b {
            want[(bi * s + k) * map..][..map].copy_from_slice(&qk[bi * map..][..map]);
        }
        galpha += ga;
        gpa.iter_mut().zip(gp).for_each(|(t, g)| *t += g);
    }
    check(
        "branch refine",
        normwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    let gc: Vec<f64> = gqf.iter().map(|g| a * g).collect();
    check(
        "branch refine grad C",
        elementwise_error(&out[1], &gc),
        ELEMENTWISE_TOL,
    );
    check(
        "branch refine grad alpha",
        normwise_error(&out[2], &[galpha]),
        REDUCTION_TOL,
    );
    check(
        "branch refine grad PA",
        normwise_error(&out[3], &gpa),
        REDUCTION_TOL,
    );
    let inputs = vec![
        (vec![2, 4, 3, 3], uniform(383, 72, -1.0, 1.0)),
        (vec![1], vec![-0.6]),
        (vec![2, 3, 3], uniform(384, 18, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| refine::refine_branches(g, x[0], x[1], x[2]),
        1e-2,
        385,
    );
    check("branch refine gradcheck", r.worst, 1e-2);
}

#[test]
fn branch_aggregation_sums_its_branches() {
    let [b, s, c, t, v] = STACK;
    let dims = aggregate::Dims {
        batch: b,
        channels: c,
        branches: s,
        frames: t,
        joints: v,
    };
    let mut g = Graph::new();
    let q = g.input("q", &[b, s * c, v, v]);
    let x3 = g.input("x3", &[b, s * c, t, v]);
    let z = aggregate::aggregate_branches(&mut g, q, x3, s);
    assert_eq!(g.shape(z), [b, c, t, v]);
    let (loss, gz) = weighted_loss(&mut g, z, 390);
    let grads = g.backward(loss, &[q, x3]).unwrap();
    let keep = [z, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    let dq = uniform(391, b * s * c * v * v, -1.0, 1.0);
    let dx = uniform(392, b * s * c * t * v, -1.0, 1.0);
    let out = h.run(&[(q, &dq), (x3, &dx)], &keep);
    let (qf, xf, gzf) = (to_f64(&dq), to_f64(&dx), to_f64(&gz));
    // The branched reference against the sum of one-branch aggregations.
    let maps = aggregate::Dims::maps(b * c, t, v);
    let branch = |x: &[f64], k: usize, len: usize| {
        rows(
            x,
            (0..b).flat_map(|bi| (0..c).map(move |ci| (bi * s + k) * c + ci)),
            len,
        )
    };
    let mut summed = vec![0.0; b * c * t * v];
    for k in 0..s {
        let zk = aggregate::cpu::aggregate(&branch(&qf, k, v * v), &branch(&xf, k, t * v), maps);
        summed.iter_mut().zip(zk).for_each(|(a, z)| *a += z);
    }
    let want = aggregate::cpu::aggregate(&qf, &xf, dims);
    assert!(want.iter().zip(&summed).all(|(a, b)| (a - b).abs() < 1e-12));
    check(
        "branch aggregate",
        normwise_error(&out[0], &want),
        REDUCTION_TOL,
    );
    let (gq, gx) = aggregate::cpu::aggregate_grad(&qf, &xf, &gzf, dims);
    check(
        "branch aggregate grad Q",
        normwise_error(&out[1], &gq),
        REDUCTION_TOL,
    );
    check(
        "branch aggregate grad x3",
        normwise_error(&out[2], &gx),
        REDUCTION_TOL,
    );
    let inputs = vec![
        (vec![2, 4, 3, 3], uniform(393, 72, -1.0, 1.0)),
        (vec![2, 4, 2, 3], uniform(394, 48, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| aggregate::aggregate_branches(g, x[0], x[1], 2),
        1e-2,
        395,
    );
    check("branch aggregate gradcheck", r.worst, 1e-2);
}
