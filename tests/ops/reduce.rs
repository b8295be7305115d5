use sfhead::engine::Graph;
use sfhead::ops::reduce;
use sfhead::testing::*;

use crate::fixed;

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
