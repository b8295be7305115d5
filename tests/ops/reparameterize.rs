//! InfoGCN's reparameterisation against its f64 reference: forward and logvar gradient on odd
//! shapes with the clamp active on part of the elements, PyTorch's tie rule at the bound, the
//! reference's own gradient against f64 finite differences, the GPU gradients of mu and logvar
//! by finite differences mid-graph, the refusal to differentiate the noise, and a snapshot.

use sfhead::engine::{AutodiffError, Graph, TensorId};
use sfhead::ops::reparameterize::{self, CAP, RATIO};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

/// `Σ gz ⊙ z` with the constant `gz`: its gradient with respect to z is `gz`.
fn weighted_loss(g: &mut Graph, z: TensorId, gz: Vec<f32>) -> TensorId {
    let shape = g.shape(z).to_vec();
    let gz = g.constant("gz", &shape, gz);
    let weighted = mul::mul(g, z, gz);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, weighted, &axes)
}

/// Seeded log-variances in [lo, hi), each moved off the kink of the clamp at `cap` by at least
/// `margin` in ratio·logvar, where f32 and f64 could decide the clamp differently.
fn logvars(seed: u64, n: usize, (lo, hi): (f32, f32), cap: f32, margin: f32) -> Vec<f32> {
    let kink = cap.ln() / RATIO;
    uniform(seed, n, lo, hi)
        .into_iter()
        .map(|l| {
            if (RATIO * (l - kink)).abs() < margin {
                kink + 2.0 * margin / RATIO
            } else {
                l
            }
        })
        .collect()
}

/// Largest |got − want| relative to |eps·std| + |mu| per element: the size of the terms of
/// eps·std + mu, whose sum may cancel to almost nothing.
fn sample_error(got: &[f32], mu: &[f64], logvar: &[f64], eps: &[f64], want: &[f64]) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..got.len() {
        let s = (f64::from(RATIO) * logvar[i]).exp().min(f64::from(CAP));
        let scale = (eps[i] * s).abs() + mu[i].abs();
        let e = (f64::from(got[i]) - want[i]).abs() / scale.max(1e-30);
        if e.is_nan() {
            return e;
        }
        worst = worst.max(e);
    }
    worst
}

fn reference_case(shape: &[usize], seed: u64) {
    let n = shape.iter().product();
    let mut g = Graph::new();
    let (mu, logvar, eps) = (
        g.input("mu", shape),
        g.input("logvar", shape),
        g.input("eps", shape),
    );
    let z = reparameterize::reparameterize(&mut g, mu, logvar, eps, RATIO, CAP);
    let gz = uniform(seed + 3, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, z, gz.clone());
    let grads = g.backward(loss, &[mu, logvar]).unwrap();
    let h = Harness::new(g, &[z, grads[0], grads[1]]);
    // ratio·logvar in [−3, 7): the clamp at ln 100 ≈ 4.6 is active on about a quarter.
    let dmu = uniform(seed, n, -2.0, 2.0);
    let dlv = logvars(seed + 1, n, (-6.0, 14.0), CAP, 1e-3);
    let deps = uniform(seed + 2, n, -2.5, 2.5);
    let clamped = dlv.iter().filter(|&&l| RATIO * l > CAP.ln()).count();
    assert!(
        clamped > n / 8,
        "only {clamped} of {n} elements are clamped"
    );
    let out = h.run(
        &[(mu, &dmu), (logvar, &dlv), (eps, &deps)],
        &[z, grads[0], grads[1]],
    );
    let (m, l, e) = (to_f64(&dmu), to_f64(&dlv), to_f64(&deps));
    let (r, cap) = (f64::from(RATIO), f64::from(CAP));
    let what = format!("reparameterize {shape:?}");
    let want = reparameterize::cpu::forward(&m, &l, &e, r, cap);
    check(
        &what,
        sample_error(&out[0], &m, &l, &e, &want),
        ELEMENTWISE_TOL,
    );
    assert_eq!(
        out[1], gz,
        "{what}: the gradient of mu is the incoming gradient"
    );
    // A product of three factors: no cancellation, and exact zeros where the clamp is active.
    let want = reparameterize::cpu::logvar_grad(&l, &e, &to_f64(&gz), r, cap);
    check(
        &format!("{what} logvar grad"),
        elementwise_error(&out[2], &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn reparameterize_matches_reference() {
    reference_case(&[3, 7, 13], 1200);
    // More than one workgroup, with a partial last one.
    reference_case(&[5, 257], 1210);
    // InfoGCN's latent is (N, 256): here an odd batch of 3.
    reference_case(&[3, 256], 1220);
}

#[test]
fn clamp_passes_no_gradient_at_its_bound() {
    // PyTorch 2.15's clamp(x, max=cap) backward passes the gradient where x < cap only:
    // torch.clamp(tensor([99., 100., 101.]), max=100) gives the gradients (1, 0, 0). With
    // logvar = 0 the exponential is exactly 1, so cap = 1 puts every element on the bound.
    let n = 37;
    let mut g = Graph::new();
    let (mu, logvar, eps) = (
        g.input("mu", &[n]),
        g.input("logvar", &[n]),
        g.input("eps", &[n]),
    );
    let z = reparameterize::reparameterize(&mut g, mu, logvar, eps, RATIO, 1.0);
    let gz = uniform(1231, n, -1.0, 1.0);
    let loss = weighted_loss(&mut g, z, gz);
    let glv = g.backward(loss, &[logvar]).unwrap()[0];
    let h = Harness::new(g, &[z, glv]);
    let dmu = uniform(1232, n, -1.0, 1.0);
    let deps = uniform(1233, n, -1.0, 1.0);
    let out = h.run(
        &[(mu, &dmu), (logvar, &vec![0.0; n]), (eps, &deps)],
        &[z, glv],
    );
    for i in 0..n {
        assert_eq!(out[0][i], deps[i] + dmu[i], "element {i}: z = eps·1 + mu");
        assert_eq!(out[1][i], 0.0, "element {i}: gradient at the bound");
    }
}

#[test]
fn reparameterize_reference_gradient_matches_finite_differences() {
    let n = 40;
    let (r, cap) = (f64::from(RATIO), f64::from(CAP));
    let mu = to_f64(&uniform(1240, n, -1.0, 1.0));
    let lv = to_f64(&logvars(1241, n, (-6.0, 14.0), CAP, 1e-2));
    let eps = to_f64(&uniform(1242, n, -2.0, 2.0));
    let gz = to_f64(&uniform(1243, n, -1.0, 1.0));
    let loss = |l: &[f64]| -> f64 {
        let z = reparameterize::cpu::forward(&mu, l, &eps, r, cap);
        z.iter().zip(&gz).map(|(z, g)| z * g).sum()
    };
    let analytic = reparameterize::cpu::logvar_grad(&lv, &eps, &gz, r, cap);
    let h = 1e-6;
    for (i, want) in analytic.iter().enumerate() {
        let mut plus = lv.clone();
        let mut minus = lv.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
        assert!(
            (fd - want).abs() <= 1e-7 * want.abs().max(1.0),
            "element {i}: finite difference {fd} vs reference {want}"
        );
    }
}

#[test]
fn reparameterize_gradient_passes_finite_differences() {
    // A cap of 4 (active above logvar = 2.77) keeps |z| small, so that the loss's f32 rounding
    // stays far below the differences the steps make; the rule is the same at any cap.
    let cap = 4.0;
    for (shape, seed) in [(vec![3, 5, 7], 1250), (vec![2, 19], 1260)] {
        let n: usize = shape.iter().product();
        // ratio·logvar at least 0.1 from the kink: a step of 1e-2 never crosses it.
        let lv = logvars(seed + 1, n, (-4.0, 6.0), cap, 0.1);
        let eps = uniform(seed + 2, n, -2.0, 2.0);
        let eps_shape = shape.clone();
        let r = gradcheck(
            &[
                (shape.clone(), uniform(seed, n, -1.0, 1.0)),
                (shape.clone(), lv),
            ],
            |g, x| {
                let eps = g.constant("eps", &eps_shape, eps);
                reparameterize::reparameterize(g, x[0], x[1], eps, RATIO, cap)
            },
            1e-2,
            seed + 3,
        );
        check(
            &format!("reparameterize {shape:?} gradcheck"),
            r.worst,
            1e-2,
        );
    }
}

#[test]
fn the_noise_has_no_gradient() {
    let mut g = Graph::new();
    let (mu, logvar, eps) = (
        g.input("mu", &[4]),
        g.input("logvar", &[4]),
        g.input("eps", &[4]),
    );
    let z = reparameterize::reparameterize(&mut g, mu, logvar, eps, RATIO, CAP);
    let loss = weighted_loss(&mut g, z, vec![1.0; 4]);
    let err = g.backward(loss, &[mu, eps]).unwrap_err();
    assert!(
        matches!(err, AutodiffError::NotDifferentiable(name) if name.contains("eps")),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "mu, logvar and eps of one shape")]
fn reparameterize_rejects_mismatched_shapes() {
    let mut g = Graph::new();
    let (mu, logvar, eps) = (
        g.input("mu", &[4, 3]),
        g.input("logvar", &[4, 3]),
        g.input("eps", &[3, 4]),
    );
    reparameterize::reparameterize(&mut g, mu, logvar, eps, RATIO, CAP);
}

#[test]
fn reparameterize_snapshots() {
    let shape = [4, 15];
    let n = 60;
    let mut g = Graph::new();
    let (mu, logvar, eps) = (
        g.input("mu", &shape),
        g.input("logvar", &shape),
        g.input("eps", &shape),
    );
    let z = reparameterize::reparameterize(&mut g, mu, logvar, eps, RATIO, CAP);
    let loss = weighted_loss(&mut g, z, fixed(n, 1.0));
    let glv = g.backward(loss, &[logvar]).unwrap()[0];
    let h = Harness::new(g, &[z, glv]);
    // logvar in about [−1, 11]: the clamp (logvar > 9.21) is active where the sine is high.
    let dlv: Vec<f32> = fixed(n, 0.3).iter().map(|v| 6.0 * v + 5.0).collect();
    let out = h.run(
        &[(mu, &fixed(n, 0.0)), (logvar, &dlv), (eps, &fixed(n, 2.0))],
        &[z, glv],
    );
    insta::assert_snapshot!("reparameterize", rounded(&out[0], 4, 5));
    insta::assert_snapshot!("reparameterize_grad", rounded(&out[1], 4, 5));
}
