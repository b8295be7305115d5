//! The correctness harness every op's tests use: a shared device, seeded inputs, tolerance
//! checks against f64 references, a runner for small graphs, a finite-difference gradient check
//! with the op placed mid-graph, and rounded output for snapshots.

use std::sync::{Arc, OnceLock};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::{Executor, Graph, Store, TensorId};
use crate::gpu::Gpu;
use crate::ops::{mul::mul, reduce::sum};

/// The device shared by a test binary. Without an adapter this panics with the reason, so GPU
/// tests fail loudly instead of being skipped.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(None) {
        Ok(gpu) => Arc::new(gpu),
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    })
    .clone()
}

/// `n` values uniform in [lo, hi), the same for the same seed.
pub fn uniform(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// `n` values uniform in ±[lo, hi): bounded away from zero, for ops with a kink at 0.
pub fn away_from_zero(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v = rng.random_range(lo..hi);
            if rng.random_bool(0.5) { v } else { -v }
        })
        .collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// The largest of `errors`, NaN if any is (`f64::max` would drop it, and a NaN result would pass).
fn worst(errors: impl Iterator<Item = f64>) -> f64 {
    errors.fold(0.0, |m: f64, e| {
        if m.is_nan() || e.is_nan() {
            f64::NAN
        } else {
            m.max(e)
        }
    })
}

/// Largest |got − want| relative to |want| per element, for elementwise results (a floor of
/// 1e-30 keeps exact zeros comparable). NaN when any result is NaN.
pub fn elementwise_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "result lengths differ");
    worst(
        got.iter()
            .zip(want)
            .map(|(&g, &w)| (f64::from(g) - w).abs() / w.abs().max(1e-30)),
    )
}

/// max |got − want| / max |want|: the norm-wise error of reductions and products, where single
/// results may cancel to almost nothing. NaN when any result is NaN.
pub fn normwise_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "result lengths differ");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs())).max(1e-30);
    worst(
        got.iter()
            .zip(want)
            .map(|(&g, &w)| (f64::from(g) - w).abs()),
    ) / scale
}

/// Tolerance for elementwise ops in fp32.
pub const ELEMENTWISE_TOL: f64 = 1e-5;
/// Tolerance for reductions and GEMMs in fp32.
pub const REDUCTION_TOL: f64 = 1e-4;

/// Panics with the error and `what` unless `error <= tol`.
pub fn check(what: &str, error: f64, tol: f64) {
    assert!(
        error <= tol,
        "{what}: relative error {error:.3e} exceeds {tol:.0e}"
    );
}

/// Values rounded to `digits` significant digits, one line of `per_line` values each, for
/// snapshots that stay stable across adapters.
pub fn rounded(values: &[f32], digits: usize, per_line: usize) -> String {
    values
        .chunks(per_line)
        .map(|row| {
            row.iter()
                .map(|&v| {
                    let s = format!("{:.*e}", digits - 1, v);
                    if s.starts_with("-0.") && s[1..].parse::<f64>() == Ok(0.0) {
                        s[1..].to_string()
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A compiled test graph with f32 inputs to set and tensors to read.
pub struct Harness {
    pub graph: Graph,
    pub exe: Executor,
}

impl Harness {
    /// Compiles `graph` keeping `keep` readable.
    pub fn new(graph: Graph, keep: &[TensorId]) -> Self {
        let mut store = Store::new();
        let exe = Executor::compile(&gpu(), &graph, &mut store, keep).expect("graph compiles");
        Self { graph, exe }
    }

    /// Sets the inputs, runs one step and reads `outputs`.
    pub fn run(&self, inputs: &[(TensorId, &[f32])], outputs: &[TensorId]) -> Vec<Vec<f32>> {
        for &(t, data) in inputs {
            self.exe.write(t, data).expect("input matches");
        }
        self.exe.run();
        outputs
            .iter()
            .map(|&t| self.exe.read(t).expect("output is readable"))
            .collect()
    }
}

fn feed<'a>(xs: &[TensorId], data: &'a [Vec<f32>]) -> Vec<(TensorId, &'a [f32])> {
    xs.iter()
        .copied()
        .zip(data.iter().map(Vec::as_slice))
        .collect()
}

/// Result of [`gradcheck`]: the analytic gradients and the worst disagreement found.
pub struct GradCheckReport {
    pub gradients: Vec<Vec<f32>>,
    /// Largest |finite difference − analytic| relative to the larger of the two and a floor.
    pub worst: f64,
}

/// Finite-difference check of an op's backward, with the op mid-graph. The loss is
/// `L = c·Σ r ⊙ op(x…) + Σ q ⊙ x₀` with random `r`, `q` and a coefficient `c`, so the op's
/// backward must multiply by a non-uniform incoming gradient and `x₀` gets a second,
/// accumulated gradient. Central differences of the GPU forward along random directions (and
/// along single coordinates) are compared with the GPU gradients.
pub fn gradcheck(
    inputs: &[(Vec<usize>, Vec<f32>)],
    build: impl FnOnce(&mut Graph, &[TensorId]) -> TensorId,
    eps: f32,
    seed: u64,
) -> GradCheckReport {
    let mut g = Graph::new();
    let xs: Vec<TensorId> = inputs
        .iter()
        .enumerate()
        .map(|(i, (shape, _))| g.input(&format!("x{i}"), shape))
        .collect();
    let y = build(&mut g, &xs);
    let r_shape = g.shape(y).to_vec();
    let r = g.constant("r", &r_shape, uniform(seed, g.numel(y), -1.0, 1.0));
    let coef = g.constant("c", &[1], vec![0.37]);
    let q_shape = g.shape(xs[0]).to_vec();
    let q = g.constant("q", &q_shape, uniform(seed + 1, g.numel(xs[0]), -1.0, 1.0));
    let all = |g: &Graph, t: TensorId| (0..g.shape(t).len()).collect::<Vec<_>>();
    let ry = mul(&mut g, y, r);
    let axes = all(&g, ry);
    let main = sum(&mut g, ry, &axes);
    let main = mul(&mut g, main, coef);
    let qx = mul(&mut g, xs[0], q);
    let axes = all(&g, qx);
    let extra = sum(&mut g, qx, &axes);
    let loss = crate::ops::add::add(&mut g, main, extra);
    let grads = g.backward(loss, &xs).expect("differentiable");
    let keep: Vec<TensorId> = grads.iter().copied().chain([loss]).collect();
    let h = Harness::new(g, &keep);

    let owned: Vec<Vec<f32>> = inputs.iter().map(|(_, d)| d.clone()).collect();
    let mut gradients = h.run(&feed(&xs, &owned), &keep);
    gradients.pop();

    let loss_at = |data: &[Vec<f32>]| f64::from(h.run(&feed(&xs, data), &[loss])[0][0]);
    let mut worst = 0.0f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 2);
    let mut compare = |direction: &[Vec<f32>]| {
        let shifted = |sign: f32| -> Vec<Vec<f32>> {
            owned
                .iter()
                .zip(direction)
                .map(|(x, d)| x.iter().zip(d).map(|(a, b)| a + sign * eps * b).collect())
                .collect()
        };
        let fd = (loss_at(&shifted(1.0)) - loss_at(&shifted(-1.0))) / (2.0 * f64::from(eps));
        let analytic: f64 = gradients
            .iter()
            .zip(direction)
            .flat_map(|(g, d)| g.iter().zip(d).map(|(a, b)| f64::from(*a) * f64::from(*b)))
            .sum();
        let error = (fd - analytic).abs() / fd.abs().max(analytic.abs()).max(1e-2);
        worst = worst.max(error);
    };
    for _ in 0..4 {
        let direction: Vec<Vec<f32>> = owned
            .iter()
            .map(|x| (0..x.len()).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        compare(&direction);
    }
    for (i, x) in owned.iter().enumerate() {
        for _ in 0..3 {
            let k = rng.random_range(0..x.len());
            let direction: Vec<Vec<f32>> = owned
                .iter()
                .enumerate()
                .map(|(j, y)| {
                    let mut d = vec![0.0; y.len()];
                    if j == i {
                        d[k] = 1.0;
                    }
                    d
                })
                .collect();
            compare(&direction);
        }
    }
    GradCheckReport { gradients, worst }
}
