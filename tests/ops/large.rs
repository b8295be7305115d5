//! Shapes beyond one grid dimension: more than 65,535 workgroups of 256 invocations.

use sfhead::engine::Graph;
use sfhead::ops::{add, reduce};
use sfhead::testing::*;

const N: usize = 65_535 * 256 + 4_097;

#[test]
fn elementwise_and_full_reduction_beyond_one_grid_dimension() {
    let mut g = Graph::new();
    let (a, b) = (g.input("a", &[N]), g.input("b", &[N]));
    let s = add::add(&mut g, a, b);
    let total = reduce::sum(&mut g, s, &[0]);
    let h = Harness::new(g, &[s, total]);
    let (da, db) = (uniform(200, N, 0.0, 1.0), uniform(201, N, 0.0, 1.0));
    let out = h.run(&[(a, &da), (b, &db)], &[s, total]);
    let want = add::cpu::add(&to_f64(&da), &to_f64(&db));
    check(
        "large add",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    // The last element sits in the folded second grid row.
    assert_eq!(out[0][N - 1], da[N - 1] + db[N - 1]);
    let sum: f64 = want.iter().sum();
    check("large sum", normwise_error(&out[1], &[sum]), REDUCTION_TOL);
}

#[test]
fn reduction_with_more_outputs_than_one_grid_dimension() {
    let (rows, cols) = (70_001, 3);
    let mut g = Graph::new();
    let x = g.input("x", &[rows, cols]);
    let m = reduce::mean(&mut g, x, &[1]);
    let h = Harness::new(g, &[m]);
    let data = uniform(202, rows * cols, -1.0, 1.0);
    let out = &h.run(&[(x, &data)], &[m])[0];
    let want = reduce::cpu::sum(&to_f64(&data), &[rows, cols], &[1], 1.0 / 3.0);
    check("row means", normwise_error(out, &want), REDUCTION_TOL);
}

#[test]
fn batched_products_beyond_one_grid_dimension() {
    // More products than grid z holds: they fold into grid y.
    let (batch, m, n, k) = (70_001, 2, 3, 2);
    let mut g = Graph::new();
    let (a, b) = (g.input("a", &[batch, m, k]), g.input("b", &[batch, k, n]));
    let c = sfhead::ops::bmm::bmm(&mut g, a, b, false, false);
    let h = Harness::new(g, &[c]);
    let da = uniform(203, batch * m * k, -1.0, 1.0);
    let db = uniform(204, batch * k * n, -1.0, 1.0);
    let out = &h.run(&[(a, &da), (b, &db)], &[c])[0];
    let (af, bf) = (to_f64(&da), to_f64(&db));
    let want: Vec<f64> = (0..batch)
        .flat_map(|z| {
            let (a, b) = (&af[z * m * k..][..m * k], &bf[z * k * n..][..k * n]);
            sfhead::ops::matmul::cpu::matmul(a, b, (m, n, k), false, false)
        })
        .collect();
    check("folded bmm", normwise_error(out, &want), REDUCTION_TOL);
    // The last product sits in the folded second row of grid y.
    let last = &want[(batch - 1) * m * n..];
    assert!(
        out[(batch - 1) * m * n..]
            .iter()
            .zip(last)
            .all(|(a, b)| (f64::from(*a) - b).abs() < 1e-5)
    );
}
