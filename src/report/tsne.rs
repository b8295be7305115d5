//! Exact t-SNE (van der Maaten & Hinton, 2008) in f64, deterministic for a seed.
//!
//! The points are centred and reduced to their first principal components, then each point's
//! Gaussian bandwidth is searched so that its neighbourhood has the requested perplexity, and a
//! 2-D Student-t embedding is fitted by gradient descent on the KL divergence, with the
//! optimiser settings of scikit-learn's exact method: early exaggeration 12 for the first 250
//! iterations, momentum 0.5 then 0.8, per-coordinate gains, learning rate max(n / 48, 50).
//! Every sum runs in a fixed order, so the threads change nothing in the result.

use rand::SeedableRng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub struct TsneOptions {
    /// The effective number of neighbours; lowered to (n − 1) / 3 for small sets.
    pub perplexity: f64,
    pub iterations: usize,
    /// Principal components kept before the embedding.
    pub components: usize,
    /// Seeds the initial positions (normal, standard deviation 1e-4).
    pub seed: u64,
}

impl Default for TsneOptions {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            components: 50,
            seed: 0,
        }
    }
}

const EXAGGERATION: f64 = 12.0;
const EXAGGERATED_ITERATIONS: usize = 250;
const MIN_GAIN: f64 = 0.01;

/// Embeds the rows of `data` (`data.len() / width` points of `width` values) in the plane.
pub fn tsne(data: &[f64], width: usize, options: &TsneOptions) -> Vec<[f64; 2]> {
    assert!(
        width > 0 && data.len().is_multiple_of(width),
        "rows of {width} values"
    );
    let n = data.len() / width;
    if n < 2 {
        return vec![[0.0; 2]; n];
    }
    let (points, dims) = principal_components(data, n, width, options.components);
    let p = affinities(&squared_distances(&points, n, dims), n, options.perplexity);
    descend(&p, n, options)
}

/// `count` distinct indices below `n` (all of them when `n <= count`), drawn with a seeded
/// generator and sorted.
pub fn subsample(n: usize, count: usize, seed: u64) -> Vec<usize> {
    if n <= count {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked = index::sample(&mut rng, n, count).into_vec();
    picked.sort_unstable();
    picked
}

/// The centred rows projected on the `k` leading principal axes (or just centred when they
/// have no more than `k` columns), and the width of the result.
fn principal_components(data: &[f64], n: usize, d: usize, k: usize) -> (Vec<f64>, usize) {
    let mut mean = vec![0.0; d];
    for row in data.chunks(d) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred: Vec<f64> = data
        .chunks(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(x, m)| x - m))
        .collect();
    if d <= k {
        return (centred, d);
    }
    // The covariance, one row per thread.
    let mut covariance = vec![0.0; d * d];
    covariance
        .par_chunks_mut(d)
        .enumerate()
        .for_each(|(a, out)| {
            for row in centred.chunks(d) {
                let x = row[a];
                for (o, &y) in out.iter_mut().zip(row) {
                    *o += x * y;
                }
            }
        });
    let (values, vectors) = symmetric_eigen(covariance, d);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let axes: Vec<Vec<f64>> = order[..k]
        .iter()
        .map(|&c| {
            let axis: Vec<f64> = (0..d).map(|r| vectors[r * d + c]).collect();
            // An eigenvector's sign is arbitrary; fix it by its largest component.
            let largest = axis
                .iter()
                .copied()
                .fold(0.0f64, |a, x| if x.abs() > a.abs() { x } else { a });
            let sign = if largest < 0.0 { -1.0 } else { 1.0 };
            axis.into_iter().map(|x| sign * x).collect()
        })
        .collect();
    let projected = centred
        .chunks(d)
        .flat_map(|row| {
            axes.iter()
                .map(|a| a.iter().zip(row).map(|(a, x)| a * x).sum::<f64>())
                .collect::<Vec<_>>()
        })
        .collect();
    (projected, k)
}

/// Eigenvalues and eigenvectors (the columns of the row-major matrix) of the symmetric `a`
/// (n × n), by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (kp, kq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * kp - s * kq;
                    a[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * pk - s * qk;
                    a[q * n + k] = s * pk + c * qk;
                }
                for k in 0..n {
                    let (kp, kq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * kp - s * kq;
                    v[k * n + q] = s * kp + c * kq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

fn squared_distances(points: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    out.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let a = &points[i * d..(i + 1) * d];
        for (j, o) in row.iter_mut().enumerate() {
            let b = &points[j * d..(j + 1) * d];
            *o = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        }
    });
    out
}

/// The perplexity used for `n` points: the requested one, at most (n − 1)/3 as small sets need.
pub fn effective_perplexity(requested: f64, n: usize) -> f64 {
    requested.min(n.saturating_sub(1) as f64 / 3.0).max(1.0)
}

/// The symmetric joint probabilities p_ij (summing to 1) of the Gaussian neighbourhoods.
fn affinities(distances: &[f64], n: usize, perplexity: f64) -> Vec<f64> {
    let target = effective_perplexity(perplexity, n).ln();
    let mut conditional = vec![0.0; n * n];
    conditional
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(i, out)| {
            neighbourhood(&distances[i * n..(i + 1) * n], i, target, out);
        });
    let mut joint = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            joint[i * n + j] =
                ((conditional[i * n + j] + conditional[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
        joint[i * n + i] = 0.0;
    }
    joint
}

/// The conditional probabilities p_j|i of point `i` from its squared distances `row`, with the
/// bandwidth found by bisection so that their entropy is `entropy` (nats).
fn neighbourhood(row: &[f64], i: usize, entropy: f64, out: &mut [f64]) {
    // Shifting by the nearest distance changes no probability but keeps exp() in range.
    let nearest = (0..row.len())
        .filter(|&j| j != i)
        .map(|j| row[j])
        .fold(f64::INFINITY, f64::min);
    let (mut beta, mut lo, mut hi) = (1.0, 0.0, f64::INFINITY);
    for _ in 0..100 {
        let (mut sum, mut weighted) = (0.0, 0.0);
        for j in (0..row.len()).filter(|&j| j != i) {
            let shifted = row[j] - nearest;
            let w = (-beta * shifted).exp();
            out[j] = w;
            sum += w;
            weighted += shifted * w;
        }
        out[i] = 0.0;
        out.iter_mut().for_each(|w| *w /= sum);
        let reached = sum.ln() + beta * weighted / sum;
        if (reached - entropy).abs() < 1e-5 {
            break;
        }
        if reached > entropy {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
    }
}

fn descend(p: &[f64], n: usize, options: &TsneOptions) -> Vec<[f64; 2]> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let normal = Normal::new(0.0, 1e-4).expect("a valid deviation");
    let mut y: Vec<[f64; 2]> = (0..n)
        .map(|_| [normal.sample(&mut rng), normal.sample(&mut rng)])
        .collect();
    let mut update = vec![[0.0; 2]; n];
    let mut gains = vec![[1.0f64; 2]; n];
    let rate = (n as f64 / EXAGGERATION / 4.0).max(50.0);
    let mut kernel = vec![0.0; n * n];
    let mut gradient = vec![[0.0; 2]; n];
    for iteration in 0..options.iterations {
        let early = iteration < EXAGGERATED_ITERATIONS;
        let exaggeration = if early { EXAGGERATION } else { 1.0 };
        let momentum = if early { 0.5 } else { 0.8 };
        kernel.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for (j, k) in row.iter_mut().enumerate() {
                let (dx, dy) = (y[i][0] - y[j][0], y[i][1] - y[j][1]);
                *k = if i == j {
                    0.0
                } else {
                    1.0 / (1.0 + dx * dx + dy * dy)
                };
            }
        });
        let row_sums: Vec<f64> = kernel.par_chunks(n).map(|r| r.iter().sum()).collect();
        let z: f64 = row_sums.iter().sum();
        gradient.par_iter_mut().enumerate().for_each(|(i, g)| {
            let (mut gx, mut gy) = (0.0, 0.0);
            for j in 0..n {
                let k = kernel[i * n + j];
                let f = (exaggeration * p[i * n + j] - k / z) * k;
                gx += f * (y[i][0] - y[j][0]);
                gy += f * (y[i][1] - y[j][1]);
            }
            *g = [4.0 * gx, 4.0 * gy];
        });
        for i in 0..n {
            for a in 0..2 {
                let g = gradient[i][a];
                gains[i][a] = if (g > 0.0) != (update[i][a] > 0.0) {
                    gains[i][a] + 0.2
                } else {
                    (gains[i][a] * 0.8).max(MIN_GAIN)
                };
                update[i][a] = momentum * update[i][a] - rate * gains[i][a] * g;
                y[i][a] += update[i][a];
            }
        }
        let mean = [0, 1].map(|a| y.iter().map(|p| p[a]).sum::<f64>() / n as f64);
        y.iter_mut().for_each(|p| {
            p[0] -= mean[0];
            p[1] -= mean[1];
        });
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let n = 6;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] =
                    1.0 / (1.0 + i as f64 + j as f64) + if i == j { i as f64 } else { 0.0 };
            }
        }
        let (values, v) = symmetric_eigen(a.clone(), n);
        // A v_c = λ_c v_c for every column.
        for c in 0..n {
            for r in 0..n {
                let av: f64 = (0..n).map(|k| a[r * n + k] * v[k * n + c]).sum();
                assert!(
                    (av - values[c] * v[r * n + c]).abs() < 1e-10,
                    "column {c}, row {r}"
                );
            }
        }
    }

    #[test]
    fn neighbourhoods_reach_the_perplexity() {
        let n = 40;
        let points: Vec<f64> = (0..n * 3)
            .map(|i| ((i * 7919) % 101) as f64 / 10.0)
            .collect();
        let d = squared_distances(&points, n, 3);
        for i in [0, 17, 39] {
            let mut row = vec![0.0; n];
            neighbourhood(&d[i * n..(i + 1) * n], i, 5f64.ln(), &mut row);
            let entropy: f64 = row.iter().filter(|&&p| p > 0.0).map(|p| -p * p.ln()).sum();
            assert!(
                (entropy.exp() - 5.0).abs() < 1e-3,
                "point {i}: perplexity {}",
                entropy.exp()
            );
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let p = affinities(&d, n, 5.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-8);
        assert!((0..n).all(|i| (0..n).all(|j| p[i * n + j] == p[j * n + i])));
    }

    #[test]
    fn subsamples_are_seeded_sorted_and_distinct() {
        let a = subsample(1000, 50, 3);
        assert_eq!(a, subsample(1000, 50, 3));
        assert_ne!(a, subsample(1000, 50, 4));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(subsample(10, 50, 3), (0..10).collect::<Vec<_>>());
    }
}
