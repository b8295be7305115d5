use sfhead::engine::Graph;
use sfhead::ops::reduce;
use sfhead::testing::*;

use crate::{bits_under, fixed};

const SHAPE: [usize; 4] = [5, 3, 7, 11];

fn sum_case(axes: &[usize], seed: u64) {
    let n: usize = SHAPE.iter().product();
    let mut g = Graph::new();
    let x = g.input("x", &SHAPE);
    let s = reduce::sum(&mut g, x, axes);
    let m = reduce::mean(&mut g, x, axes);
    let h = Harness::new(g, &[s, m]);
    let data = uniform(seed, n, -1.0, 1.0);
    let out = h.run(&[(x, &data)], &[s, m]);
    let count: usize = axes.iter().map(|&a| SHAPE[a]).product();
    let want = reduce::cpu::sum(&to_f64(&data), &SHAPE, axes, 1.0);
    check(
        &format!("sum {axes:?}"),
        normwise_error(&out[0], &want),
        REDUCTION_TOL,
    );
    let want = reduce::cpu::sum(&to_f64(&data), &SHAPE, axes, 1.0 / count as f64);
    check(
        &format!("mean {axes:?}"),
        normwise_error(&out[1], &want),
        REDUCTION_TOL,
    );
}

#[test]
fn sums_and_means_over_axis_sets_match_reference() {
    for (i, axes) in [
        vec![3],
        vec![0],
        vec![2, 3],
        vec![0, 2, 3],
        vec![1, 3],
        vec![0, 1, 2, 3],
    ]
    .iter()
    .enumerate()
    {
        sum_case(axes, 20 + i as u64);
    }
}

#[test]
fn expand_matches_reference() {
    let axes = [0, 2];
    let kept = reduce::kept_shape(&SHAPE, &axes);
    let mut g = Graph::new();
    let src = g.input("src", &kept);
    let y = reduce::expand(&mut g, src, &SHAPE, &axes, 0.5);
    let h = Harness::new(g, &[y]);
    let data = uniform(30, kept.iter().product(), -1.0, 1.0);
    let got = &h.run(&[(src, &data)], &[y])[0];
    let want = reduce::cpu::expand(&to_f64(&data), &SHAPE, &axes, 0.5);
    check("expand", elementwise_error(got, &want), ELEMENTWISE_TOL);
}

#[test]
fn reduction_gradients_pass_finite_differences() {
    let n: usize = SHAPE.iter().product();
    let input = vec![(SHAPE.to_vec(), uniform(31, n, -1.0, 1.0))];
    let r = gradcheck(&input, |g, x| reduce::mean(g, x[0], &[0, 2]), 1e-2, 32);
    check("mean gradcheck", r.worst, 1e-2);
    let r = gradcheck(&input, |g, x| reduce::sum(g, x[0], &[1, 3]), 1e-2, 33);
    check("sum gradcheck", r.worst, 1e-2);
    let kept = vec![5, 7];
    let input = vec![(kept.clone(), uniform(34, 35, -1.0, 1.0))];
    let r = gradcheck(
        &input,
        |g, x| reduce::expand(g, x[0], &SHAPE, &[1, 3], 2.0),
        1e-2,
        35,
    );
    check("expand gradcheck", r.worst, 1e-2);
}

#[test]
fn reduction_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[3, 4, 5]);
    let m = reduce::mean(&mut g, x, &[0, 2]);
    let h = Harness::new(g, &[m]);
    let out = h.run(&[(x, &fixed(60, 0.3))], &[m]);
    insta::assert_snapshot!("mean_axes_0_2", rounded(&out[0], 4, 4));
}

/// The broadcast product equals the product with the expanded factor bit for bit, forward and
/// backward, over kept axes that alternate with the broadcast ones.
#[test]
fn broadcast_mul_is_the_product_with_the_expanded_factor() {
    let axes = [1, 3];
    let kept = reduce::kept_shape(&SHAPE, &axes);
    let n: usize = SHAPE.iter().product();
    let build = |fused: bool| {
        let mut g = Graph::new();
        let x = g.input("x", &SHAPE);
        let s = g.input("s", &kept);
        let y = if fused {
            reduce::broadcast_mul(&mut g, x, s, &axes)
        } else {
            let e = reduce::expand(&mut g, s, &SHAPE, &axes, 1.0);
            sfhead::ops::mul::mul(&mut g, x, e)
        };
        let w = g.constant("w", &SHAPE, uniform(36, n, -1.0, 1.0));
        let weighted = sfhead::ops::mul::mul(&mut g, y, w);
        let loss = reduce::sum(&mut g, weighted, &[0, 1, 2, 3]);
        let grads = g.backward(loss, &[x, s]).unwrap();
        let keep = [y, grads[0], grads[1]];
        let h = Harness::new(g, &keep);
        let dx = uniform(37, n, -1.0, 1.0);
        let ds = uniform(38, kept.iter().product(), -1.0, 1.0);
        h.run(&[(x, &dx), (s, &ds)], &keep)
    };
    let (fused, plain) = (build(true), build(false));
    for (a, b) in fused.iter().zip(&plain) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b));
    }
    let dx = to_f64(&uniform(37, n, -1.0, 1.0));
    let ds = reduce::cpu::expand(
        &to_f64(&uniform(38, kept.iter().product(), -1.0, 1.0)),
        &SHAPE,
        &axes,
        1.0,
    );
    let want: Vec<f64> = dx.iter().zip(&ds).map(|(a, b)| a * b).collect();
    check(
        "broadcast_mul",
        elementwise_error(&fused[0], &want),
        ELEMENTWISE_TOL,
    );
    let inputs = vec![
        (vec![2, 3, 4], uniform(39, 24, -1.0, 1.0)),
        (vec![2, 4], uniform(40, 8, -1.0, 1.0)),
    ];
    let r = gradcheck(
        &inputs,
        |g, x| reduce::broadcast_mul(g, x[0], x[1], &[1]),
        1e-2,
        41,
    );
    check("broadcast_mul gradcheck", r.worst, 1e-2);
}

#[test]
fn broadcast_mul_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3, 4]);
    let s = g.input("s", &[2, 4]);
    let y = reduce::broadcast_mul(&mut g, x, s, &[1]);
    let h = Harness::new(g, &[y]);
    let out = h.run(&[(x, &fixed(24, 0.3)), (s, &fixed(8, 1.1))], &[y]);
    insta::assert_snapshot!("broadcast_mul_axis_1", rounded(&out[0], 4, 4));
}

/// Broadcasts by row (the CPU tuning) and by element (the GPU one) write the same bits, with the
/// innermost axis kept or broadcast.
#[test]
fn broadcasts_by_row_and_by_element_agree_bit_for_bit() {
    use sfhead::engine::TensorId;
    use sfhead::gpu::Tuning;
    let run = |tuning: Tuning| -> Vec<Vec<u32>> {
        let mut g = Graph::new();
        let x = g.input("x", &SHAPE);
        let mut outputs = Vec::new();
        let mut inputs = vec![(x, uniform(42, SHAPE.iter().product(), -1.0, 1.0))];
        for (i, axes) in [vec![3], vec![1, 3], vec![0, 2], vec![2, 3]]
            .iter()
            .enumerate()
        {
            let kept = reduce::kept_shape(&SHAPE, axes);
            let s = g.input(&format!("s{i}"), &kept);
            inputs.push((s, uniform(43 + i as u64, kept.iter().product(), -1.0, 1.0)));
            outputs.push(reduce::broadcast_mul(&mut g, x, s, axes));
            outputs.push(reduce::expand(&mut g, s, &SHAPE, axes, 0.5));
        }
        let inputs: Vec<(TensorId, &[f32])> =
            inputs.iter().map(|(t, d)| (*t, d.as_slice())).collect();
        bits_under(tuning, &g, &inputs, &outputs)
    };
    assert_eq!(run(Tuning::GPU), run(Tuning::CPU));
}
