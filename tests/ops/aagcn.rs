//! The ops MS-AAGCN adds (tanh, the batched matrix product): forward and every gradient against
//! the f64 references, finite differences and snapshots.

use sfhead::engine::{Graph, TensorId};
use sfhead::ops::{bmm, mul, reduce, tanh};
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

#[test]
fn tanh_forward_and_backward_match_reference() {
    let shape = [3, 5, 7, 11];
    let n = shape.iter().product();
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let y = tanh::tanh(&mut g, x);
    let (loss, gy) = weighted_loss(&mut g, y, 1300);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    // Within ±2 the f32 output still carries 1 − y² to about 2e-6 relative; the values cover
    // both branches of the kernel (|x| below and above 0.625) and tiny |x|.
    let mut dx = uniform(1301, n, -2.0, 2.0);
    dx[..8].copy_from_slice(&[1e-6, -3e-5, 0.624, -0.626, 0.625, 1e-30, 0.0, -0.1]);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    let xf = to_f64(&dx);
    let want = tanh::cpu::tanh(&xf);
    check("tanh", elementwise_error(&out[0], &want), ELEMENTWISE_TOL);
    let want = tanh::cpu::tanh_grad(&xf, &to_f64(&gy));
    check(
        "tanh grad",
        elementwise_error(&out[1], &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn tanh_is_finite_at_large_magnitude() {
    let dx = [-1e4, -80.0, -10.0, 10.0, 80.0, 1e4, f32::MAX];
    let mut g = Graph::new();
    let x = g.input("x", &[dx.len()]);
    let y = tanh::tanh(&mut g, x);
    let loss = reduce::sum(&mut g, y, &[0]);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    assert!(out.iter().flatten().all(|v| v.is_finite()), "{out:?}");
    let want = tanh::cpu::tanh(&to_f64(&dx));
    check(
        "tanh at large |x|",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    // 1 − y² of a saturated output: exactly zero in f32, 1e-8 or less in f64.
    for (i, got) in out[1].iter().enumerate() {
        assert!(got.abs() < 1e-7, "element {i}: gradient {got}");
    }
}

#[test]
fn tanh_gradient_passes_finite_differences() {
    let shape = vec![4, 9, 5];
    let r = gradcheck(
        &[(shape.clone(), uniform(1310, 180, -2.0, 2.0))],
        |g, x| tanh::tanh(g, x[0]),
        1e-2,
        1311,
    );
    check("tanh gradcheck", r.worst, 1e-2);
}

/// Stored shapes of A and B for op(A) m×k and op(B) k×n.
fn stored(batch: usize, (m, n, k): (usize, usize, usize), ta: bool, tb: bool) -> [Vec<usize>; 2] {
    let a = if ta {
        vec![batch, k, m]
    } else {
        vec![batch, m, k]
    };
    let b = if tb {
        vec![batch, n, k]
    } else {
        vec![batch, k, n]
    };
    [a, b]
}

fn bmm_case(batch: usize, dims: (usize, usize, usize), ta: bool, tb: bool, seed: u64) {
    let (m, n, k) = dims;
    let [sa, sb] = stored(batch, dims, ta, tb);
    let mut g = Graph::new();
    let a = g.input("a", &sa);
    let b = g.input("b", &sb);
    let c = bmm::bmm(&mut g, a, b, ta, tb);
    assert_eq!(g.shape(c), [batch, m, n]);
    let (loss, gc) = weighted_loss(&mut g, c, seed);
    let grads = g.backward(loss, &[a, b]).unwrap();
    let h = Harness::new(g, &[c, grads[0], grads[1]]);
    let da = uniform(seed + 1, batch * m * k, -1.0, 1.0);
    let db = uniform(seed + 2, batch * k * n, -1.0, 1.0);
    let out = h.run(&[(a, &da), (b, &db)], &[c, grads[0], grads[1]]);
    let (af, bf, gf) = (to_f64(&da), to_f64(&db), to_f64(&gc));
    let what = format!("bmm B={batch} {dims:?} trans ({ta}, {tb})");
    let want = bmm::cpu::bmm(&af, &bf, batch, dims, ta, tb);
    check(&what, normwise_error(&out[0], &want), REDUCTION_TOL);
    // From the definition: g_a[z, i, l] = Σ_j g[z, i, j]·op(b)[z, l, j], stored as A is, and
    // g_b[z, l, j] = Σ_i op(a)[z, i, l]·g[z, i, j], stored as B is.
    let mut want_a = vec![0.0; batch * m * k];
    let mut want_b = vec![0.0; batch * k * n];
    for z in 0..batch {
        for i in 0..m {
            for l in 0..k {
                for j in 0..n {
                    let ai = z * m * k + if ta { l * m + i } else { i * k + l };
                    let bi = z * k * n + if tb { j * k + l } else { l * n + j };
                    let gv = gf[(z * m + i) * n + j];
                    want_a[ai] += gv * bf[bi];
                    want_b[bi] += gv * af[ai];
                }
            }
        }
    }
    check(
        &format!("{what} grad a"),
        normwise_error(&out[1], &want_a),
        REDUCTION_TOL,
    );
    check(
        &format!("{what} grad b"),
        normwise_error(&out[2], &want_b),
        REDUCTION_TOL,
    );
}

#[test]
fn bmm_matches_reference_in_every_layout() {
    for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        bmm_case(3, (7, 5, 13), ta, tb, 1320 + 10 * i as u64);
    }
    // MS-AAGCN's Gram matrix at NW-UCLA's 20 joints (K = inter·T) and its aggregation.
    bmm_case(5, (20, 20, 16 * 9), true, false, 1370);
    bmm_case(4, (3 * 9, 20, 20), false, false, 1380);
    // Tiles of 64 with remainders.
    bmm_case(2, (70, 67, 130), true, false, 1390);
}

#[test]
fn bmm_gradient_passes_finite_differences() {
    for (i, (ta, tb)) in [(true, false), (false, true)].into_iter().enumerate() {
        let seed = 1400 + 10 * i as u64;
        let [sa, sb] = stored(3, (4, 5, 6), ta, tb);
        let r = gradcheck(
            &[
                (sa, uniform(seed, 72, -1.0, 1.0)),
                (sb, uniform(seed + 1, 90, -1.0, 1.0)),
            ],
            |g, x| bmm::bmm(g, x[0], x[1], ta, tb),
            1e-2,
            seed + 2,
        );
        check(&format!("bmm ({ta}, {tb}) gradcheck"), r.worst, 1e-2);
    }
}

#[test]
#[should_panic(expected = "bmm inner dimensions differ")]
fn bmm_rejects_mismatched_inner_dimensions() {
    let mut g = Graph::new();
    let a = g.input("a", &[2, 3, 4]);
    let b = g.input("b", &[2, 5, 6]);
    bmm::bmm(&mut g, a, b, false, false);
}

#[test]
fn aagcn_ops_snapshots() {
    let mut g = Graph::new();
    let x = g.input("x", &[24]);
    let y = tanh::tanh(&mut g, x);
    let h = Harness::new(g, &[y]);
    let dx: Vec<f32> = fixed(24, 0.3).iter().map(|v| 2.0 * v).collect();
    let out = h.run(&[(x, &dx)], &[y]);
    insta::assert_snapshot!("tanh", rounded(&out[0], 4, 6));

    let mut g = Graph::new();
    let a = g.input("a", &[2, 4, 3]);
    let b = g.input("b", &[2, 4, 3]);
    let c = bmm::bmm(&mut g, a, b, true, false);
    let h = Harness::new(g, &[c]);
    let out = h.run(&[(a, &fixed(24, 0.0)), (b, &fixed(24, 1.0))], &[c]);
    insta::assert_snapshot!("bmm_tn", rounded(&out[0], 4, 3));
}
