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
    let want = aggregate::cpu::aggregate(&qf, &xf, maps, t, v);
    check("aggregate", normwise_error(&out[0], &want), REDUCTION_TOL);
    let (gq, gx) = aggregate::cpu::aggregate_grad(&qf, &xf, &to_f64(&gz), maps, t, v);
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
    let z = sfhead::ops::gemm::cpu::gemm(&aggregate::forward_gemm(maps, t, v), &x3, &q, None);
    assert!(close(&z, &aggregate::cpu::aggregate(&q, &x3, maps, t, v)));
    let (gq, gx) = aggregate::cpu::aggregate_grad(&q, &x3, &gz, maps, t, v);
    let gemm_gq = sfhead::ops::gemm::cpu::gemm(&aggregate::grad_q_gemm(maps, t, v), &gz, &x3, None);
    let gemm_gx = sfhead::ops::gemm::cpu::gemm(&aggregate::grad_x3_gemm(maps, t, v), &gz, &q, None);
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
