//! BlockGCN's persistent-homology feature: the MST deaths of the joint-distance profiles and the
//! structure-element layer, each against its f64 reference; the deaths of joints on a line
//! against their gaps worked out by hand; the structure elements' gradients by finite
//! differences (the reference's in f64, the GPU's mid-graph); refusals; snapshots.

use sfhead::engine::{AutodiffError, Graph, TensorId};
use sfhead::ops::persistence::{self, MAX_JOINTS};
use sfhead::ops::structure_elements::{self, structure_elements};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

/// Flat index of x[n, c, t, v, m] in an (N, C, T, V, M) tensor.
fn at(
    [_, c_len, t_len, v_len, m_len]: [usize; 5],
    n: usize,
    c: usize,
    t: usize,
    v: usize,
    m: usize,
) -> usize {
    (((n * c_len + c) * t_len + t) * v_len + v) * m_len + m
}

/// The GPU deaths of `joints`.
fn gpu_deaths(shape: [usize; 5], joints: &[f32]) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let deaths = persistence::mst_deaths(&mut g, x);
    assert_eq!(g.shape(deaths), [shape[0], shape[3] - 1]);
    let h = Harness::new(g, &[deaths]);
    h.run(&[(x, joints)], &[deaths]).remove(0)
}

fn mst_case(shape: [usize; 5], seed: u64) {
    let joints = uniform(seed, shape.iter().product(), -1.0, 1.0);
    let got = gpu_deaths(shape, &joints);
    let want = persistence::cpu::mst_deaths(&to_f64(&joints), shape);
    let bars = shape[3] - 1;
    for (n, (got, want)) in got.chunks(bars).zip(&want).enumerate() {
        let what = format!("mst_deaths {shape:?}, sample {n}");
        check(&what, normwise_error(got, want), REDUCTION_TOL);
        assert!(
            got.windows(2).all(|w| w[0] <= w[1]),
            "{what}: deaths not ascending: {got:?}"
        );
    }
}

#[test]
fn mst_deaths_match_reference() {
    // NTU: two persons, 25 joints.
    mst_case([3, 3, 7, 25, 2], 1200);
    // NW-UCLA: one person, 20 joints.
    mst_case([2, 3, 7, 20, 1], 1210);
    // More samples than one workgroup of ph_sample holds.
    mst_case([67, 3, 2, 9, 2], 1220);
}

/// Two samples of V = 6 joints on a line through 3-D space, in a scrambled joint order, moved
/// by a common offset per (frame, person) and wobbling per joint in a pattern that averages to 0
/// over the frames: the time- and person-mean joints lie on the line at `positions`.
fn joints_on_lines(positions: &[[f64; 6]; 2]) -> (Vec<f32>, [usize; 5]) {
    let shape = [2, 3, 4, 6, 2];
    let direction = [1.0 / 3.0, 2.0 / 3.0, -2.0 / 3.0];
    let offsets = uniform(1230, 3 * 4 * 2, -1.0, 1.0);
    let wobble = uniform(1231, 3 * 6, -0.5, 0.5);
    let sign = [1.0, -1.0, -1.0, 1.0];
    let mut x = vec![0.0; shape.iter().product()];
    for (n, p) in positions.iter().enumerate() {
        for c in 0..3 {
            for t in 0..4 {
                for v in 0..6 {
                    for m in 0..2 {
                        x[at(shape, n, c, t, v, m)] = (p[v] * direction[c]
                            + f64::from(offsets[(c * 4 + t) * 2 + m])
                            + sign[t] * f64::from(wobble[c * 6 + v]))
                            as f32;
                    }
                }
            }
        }
    }
    (x, shape)
}

#[test]
fn mst_deaths_of_joints_on_a_line_are_their_gaps() {
    // For mean joints on a line, D[a][w] = |p_a − p_w|. Rows a and b next to each other on the
    // line differ by exactly their gap g in all V coordinates: E = g·√V. Rows k places apart
    // (k ≥ 2) differ by at least p_b − p_a ≥ k·g_min in the V − k + 1 coordinates outside
    // (a, b), so E ≥ √(4(V − 1))·g_min, more than √V·g_max for gaps within a factor
    // 1.6 < 2√((V − 1)/V): by the cycle property the tree is the chain along the line, and the
    // deaths are the gaps times √V over the batch's largest span.
    let gaps = [[1.0, 1.5, 1.2, 1.6, 1.1], [2.4, 2.0, 3.2, 2.2, 3.0]];
    // Joint v sits at the rank order[v] along the line.
    let order = [3, 0, 5, 1, 4, 2];
    let mut positions = [[0.0; 6]; 2];
    for (p, gaps) in positions.iter_mut().zip(&gaps) {
        let along: Vec<f64> = std::iter::once(0.0)
            .chain(gaps.iter().scan(0.0, |s, g| {
                *s += g;
                Some(*s)
            }))
            .collect();
        for v in 0..6 {
            p[v] = along[order[v]] - 2.0;
        }
    }
    let span: f64 = gaps[1].iter().sum();
    let want: Vec<Vec<f64>> = gaps
        .iter()
        .map(|g| {
            let mut d: Vec<f64> = g.iter().map(|g| g * 6f64.sqrt() / span).collect();
            d.sort_by(f64::total_cmp);
            d
        })
        .collect();
    let (x, shape) = joints_on_lines(&positions);
    let reference = persistence::cpu::mst_deaths(&to_f64(&x), shape);
    for (n, (r, w)) in reference.iter().zip(&want).enumerate() {
        for (i, (r, w)) in r.iter().zip(w).enumerate() {
            // The f32 joints carry the line to about 1e-7.
            assert!(
                (r - w).abs() <= 1e-6 * w,
                "sample {n}, bar {i}: reference {r}, gap {w}"
            );
        }
    }
    let got = gpu_deaths(shape, &x);
    for (n, (got, w)) in got.chunks(5).zip(&want).enumerate() {
        check(
            &format!("line sample {n}"),
            normwise_error(got, w),
            REDUCTION_TOL,
        );
    }
}

#[test]
fn mst_deaths_refuse_a_gradient() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3, 4, 5, 1]);
    let deaths = persistence::mst_deaths(&mut g, x);
    let loss = reduce::sum(&mut g, deaths, &[0, 1]);
    assert_eq!(
        g.backward(loss, &[x]).unwrap_err(),
        AutodiffError::NotDifferentiable("mst_deaths (its joints are data)")
    );
}

#[test]
#[should_panic(expected = "2 to 32 joints, got V = 33")]
fn mst_deaths_reject_too_many_joints() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 3, 4, MAX_JOINTS + 1, 2]);
    persistence::mst_deaths(&mut g, x);
}

#[test]
#[should_panic(expected = "(N, C, T, V, M) joints")]
fn mst_deaths_reject_batch_layout_without_persons() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3, 4, 25]);
    persistence::mst_deaths(&mut g, x);
}

/// `Σ gy ⊙ y` with the constant `gy`: its gradient with respect to y is `gy`.
fn weighted_loss(g: &mut Graph, y: TensorId, gy: Vec<f32>) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy);
    let weighted = mul::mul(g, y, gy);
    reduce::sum(g, weighted, &[0, 1])
}

/// Deaths in [0, 1), ascending per sample as `mst_deaths` gives them.
fn sorted_deaths(seed: u64, samples: usize, bars: usize) -> Vec<f32> {
    let mut d = uniform(seed, samples * bars, 0.0, 1.0);
    for row in d.chunks_mut(bars) {
        row.sort_by(f32::total_cmp);
    }
    d
}

/// Centres U(0, 1) as the layer initialises them and sharpness about its initial 3.
fn elements(seed: u64, k: usize) -> (Vec<f32>, Vec<f32>) {
    (
        uniform(seed, 2 * k, 0.0, 1.0),
        uniform(seed + 1, 2 * k, 1.5, 4.0),
    )
}

fn structure_elements_case(n: usize, b: usize, k: usize, seed: u64) {
    let mut g = Graph::new();
    let deaths = g.input("deaths", &[n, b]);
    let centres = g.input("centres", &[k, 2]);
    let sharpness = g.input("sharpness", &[k, 2]);
    let y = structure_elements(&mut g, deaths, centres, sharpness);
    let gy = uniform(seed + 3, n * k, -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, gy.clone());
    let grads = g.backward(loss, &[centres, sharpness]).unwrap();
    let h = Harness::new(g, &[y, grads[0], grads[1]]);
    let d = sorted_deaths(seed, n, b);
    let (c, s) = elements(seed + 1, k);
    let out = h.run(
        &[(deaths, &d), (centres, &c), (sharpness, &s)],
        &[y, grads[0], grads[1]],
    );
    let (df, cf, sf) = (to_f64(&d), to_f64(&c), to_f64(&s));
    let what = format!("structure_elements N={n} B={b} K={k}");
    let want = structure_elements::cpu::forward(&df, b, &cf, &sf);
    check(&what, normwise_error(&out[0], &want), REDUCTION_TOL);
    let (gc, gs) = structure_elements::cpu::backward(&df, b, &cf, &sf, &to_f64(&gy));
    check(
        &format!("{what} centres grad"),
        normwise_error(&out[1], &gc),
        REDUCTION_TOL,
    );
    check(
        &format!("{what} sharpness grad"),
        normwise_error(&out[2], &gs),
        REDUCTION_TOL,
    );
}

#[test]
fn structure_elements_match_reference() {
    // BlockGCN: 24 bars of 25 joints, 64 elements.
    structure_elements_case(3, 24, 64, 1300);
    structure_elements_case(5, 7, 9, 1310);
    // (n, k) pairs over several workgroups.
    structure_elements_case(37, 19, 64, 1320);
}

#[test]
fn structure_elements_reference_gradient_matches_finite_differences() {
    let (n, b, k) = (3, 5, 4);
    let d = to_f64(&sorted_deaths(1330, n, b));
    let (c, s) = elements(1331, k);
    let (c, s) = (to_f64(&c), to_f64(&s));
    let gy = to_f64(&uniform(1333, n * k, -1.0, 1.0));
    let loss = |c: &[f64], s: &[f64]| -> f64 {
        let y = structure_elements::cpu::forward(&d, b, c, s);
        y.iter().zip(&gy).map(|(y, g)| y * g).sum()
    };
    let (gc, gs) = structure_elements::cpu::backward(&d, b, &c, &s, &gy);
    let h = 1e-6;
    for (which, analytic) in [("centre", &gc), ("sharpness", &gs)] {
        for (i, want) in analytic.iter().enumerate() {
            let shifted = |sign: f64| {
                let (mut c, mut s) = (c.clone(), s.clone());
                let x = if which == "centre" { &mut c } else { &mut s };
                x[i] += sign * h;
                loss(&c, &s)
            };
            let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * h);
            assert!(
                (fd - want).abs() <= 1e-7 * want.abs().max(1.0),
                "{which} {i}: finite difference {fd} vs reference {want}"
            );
        }
    }
}

#[test]
fn structure_elements_gradient_passes_finite_differences() {
    for (n, b, k, seed) in [(3, 24, 16, 1340), (2, 7, 5, 1350)] {
        let d = sorted_deaths(seed, n, b);
        let (c, s) = elements(seed + 1, k);
        let r = gradcheck(
            &[(vec![k, 2], c), (vec![k, 2], s)],
            |g, x| {
                let deaths = g.constant("deaths", &[n, b], d);
                structure_elements(g, deaths, x[0], x[1])
            },
            1e-2,
            seed + 3,
        );
        check(
            &format!("structure_elements N={n} B={b} K={k} gradcheck"),
            r.worst,
            1e-2,
        );
    }
}

#[test]
fn structure_elements_refuse_a_gradient_of_the_deaths() {
    let mut g = Graph::new();
    let deaths = g.input("deaths", &[2, 3]);
    let centres = g.input("centres", &[4, 2]);
    let sharpness = g.input("sharpness", &[4, 2]);
    let y = structure_elements(&mut g, deaths, centres, sharpness);
    let loss = reduce::sum(&mut g, y, &[0, 1]);
    assert_eq!(
        g.backward(loss, &[centres, deaths]).unwrap_err(),
        AutodiffError::NotDifferentiable(
            "structure_elements (with respect to its deaths, which are data)"
        )
    );
}

#[test]
#[should_panic(expected = "sharpness of the centres' shape [4, 2]")]
fn structure_elements_reject_mismatched_sharpness() {
    let mut g = Graph::new();
    let deaths = g.input("deaths", &[2, 3]);
    let centres = g.input("centres", &[4, 2]);
    let sharpness = g.input("sharpness", &[2, 4]);
    structure_elements(&mut g, deaths, centres, sharpness);
}

#[test]
fn topology_ops_snapshots() {
    let shape = [2, 3, 4, 6, 2];
    let joints = fixed(shape.iter().product(), 0.3);
    insta::assert_snapshot!("mst_deaths", rounded(&gpu_deaths(shape, &joints), 4, 5));

    let (n, b, k) = (2, 5, 3);
    let mut g = Graph::new();
    let deaths = g.input("deaths", &[n, b]);
    let centres = g.input("centres", &[k, 2]);
    let sharpness = g.input("sharpness", &[k, 2]);
    let y = structure_elements(&mut g, deaths, centres, sharpness);
    let loss = weighted_loss(&mut g, y, fixed(n * k, 1.0));
    let grads = g.backward(loss, &[centres, sharpness]).unwrap();
    let h = Harness::new(g, &[y, grads[0], grads[1]]);
    let unit = |v: Vec<f32>| v.iter().map(|x| 0.5 + 0.5 * x).collect::<Vec<_>>();
    let d = unit(fixed(n * b, 0.0));
    let c = unit(fixed(2 * k, 0.5));
    let s: Vec<f32> = fixed(2 * k, 2.0).iter().map(|x| 3.0 + x).collect();
    let out = h.run(
        &[(deaths, &d), (centres, &c), (sharpness, &s)],
        &[y, grads[0], grads[1]],
    );
    insta::assert_snapshot!("structure_elements", rounded(&out[0], 4, 3));
    insta::assert_snapshot!("structure_elements_grad_centres", rounded(&out[1], 4, 2));
    insta::assert_snapshot!("structure_elements_grad_sharpness", rounded(&out[2], 4, 2));
}
