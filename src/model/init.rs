//! Seeded parameter initialisers with PyTorch's definitions.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// A seeded source of initial values: the same seed gives the same model.
pub struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn normal(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let d = Normal::new(mean, std).expect("a finite, non-negative std");
        (0..n).map(|_| d.sample(&mut self.rng)).collect()
    }

    pub fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        let d = Uniform::new(lo, hi).expect("lo < hi");
        (0..n).map(|_| d.sample(&mut self.rng)).collect()
    }

    /// `kaiming_normal_(mode="fan_out")` for a ReLU network: N(0, √(2/fan_out)) with
    /// fan_out = shape[0]·(kernel size), the shape being PyTorch's (C_out, C_in, kh, kw).
    pub fn kaiming_normal_fan_out(&mut self, shape: &[usize]) -> Vec<f32> {
        let fan_out: usize = shape[0] * shape[2..].iter().product::<usize>();
        let n = shape.iter().product();
        self.normal(n, 0.0, (2.0 / fan_out as f32).sqrt())
    }

    /// `orthogonal_(gain)` for a (rows, cols) matrix, row-major: orthonormal rows when
    /// rows < cols, orthonormal columns otherwise, times `gain`. As PyTorch, it draws a standard
    /// normal (rows, cols) matrix A (transposed when rows < cols) and keeps the Q of its reduced
    /// QR decomposition with R's diagonal positive, the sign fix that makes Q unique. Modified
    /// Gram–Schmidt in f64 gives that Q directly: its R_jj are the norms of the residuals.
    pub fn orthogonal(&mut self, rows: usize, cols: usize, gain: f32) -> Vec<f32> {
        assert!(
            rows > 0 && cols > 0 && gain.is_finite(),
            "orthogonal needs a non-empty matrix and a finite gain, got ({rows}, {cols}) and {gain}"
        );
        let a = self.normal(rows * cols, 0.0, 1.0);
        let wide = rows < cols;
        let (k, m) = if wide { (rows, cols) } else { (cols, rows) };
        // The k vectors of length m to orthonormalise: A's rows when wide, its columns otherwise.
        let at = |v: usize, i: usize| {
            let (r, c) = if wide { (v, i) } else { (i, v) };
            f64::from(a[r * cols + c])
        };
        let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
        for v in 0..k {
            let mut x: Vec<f64> = (0..m).map(|i| at(v, i)).collect();
            for done in &q {
                let d: f64 = done.iter().zip(&x).map(|(a, b)| a * b).sum();
                x.iter_mut().zip(done).for_each(|(x, u)| *x -= d * u);
            }
            let norm = x.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!(norm > 0.0, "orthogonal: the normal draw is rank-deficient");
            x.iter_mut().for_each(|x| *x /= norm);
            q.push(x);
        }
        let gain = f64::from(gain);
        let mut w = vec![0.0; rows * cols];
        for (v, u) in q.iter().enumerate() {
            for (i, x) in u.iter().enumerate() {
                let (r, c) = if wide { (v, i) } else { (i, v) };
                w[r * cols + c] = (x * gain) as f32;
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaiming_fan_out_has_the_right_spread() {
        let w = Init::new(1).kaiming_normal_fan_out(&[50, 40, 5, 1]);
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!(
            (var - 2.0 / 250.0).abs() < 0.1 * 2.0 / 250.0,
            "variance {var}"
        );
    }

    /// Largest |(M·Mᵀ)_ij − gain²·δ_ij| over the rows of the row-major (rows, cols) `w`, or over
    /// its columns with `columns`.
    fn gram_error(w: &[f32], rows: usize, cols: usize, columns: bool, gain: f64) -> f64 {
        let (k, m) = if columns { (cols, rows) } else { (rows, cols) };
        let at = |v: usize, i: usize| {
            f64::from(if columns {
                w[i * cols + v]
            } else {
                w[v * cols + i]
            })
        };
        let mut worst = 0.0f64;
        for u in 0..k {
            for v in 0..k {
                let dot: f64 = (0..m).map(|i| at(u, i) * at(v, i)).sum();
                let want = if u == v { gain * gain } else { 0.0 };
                worst = worst.max((dot - want).abs());
            }
        }
        worst
    }

    #[test]
    fn orthogonal_has_orthonormal_rows_when_wide() {
        for (rows, cols, gain) in [(120, 256, 1.0), (10, 256, 1.5)] {
            let w = Init::new(3).orthogonal(rows, cols, gain);
            let e = gram_error(&w, rows, cols, false, f64::from(gain));
            assert!(e < 1e-5, "({rows}, {cols}): W·Wᵀ is {e:.2e} from gain²·I");
        }
    }

    #[test]
    fn orthogonal_has_orthonormal_columns_when_tall_or_square() {
        for (rows, cols) in [(300, 40), (64, 64)] {
            let w = Init::new(4).orthogonal(rows, cols, 2.0);
            let e = gram_error(&w, rows, cols, true, 2.0);
            assert!(e < 1e-5, "({rows}, {cols}): Wᵀ·W is {e:.2e} from 4·I");
        }
    }

    /// PyTorch's Q is the QR factor of the normal draw A with R's diagonal positive: for a
    /// wide matrix Aᵀ = Q·R, so A·Wᵀ/gain = Rᵀ is lower triangular with a positive diagonal; for
    /// a tall one A = Q·R and Wᵀ·A/gain = R is upper triangular with a positive diagonal.
    #[test]
    fn orthogonal_is_the_sign_fixed_qr_factor_of_the_normal_draw() {
        for (rows, cols) in [(7, 30), (30, 7), (9, 9)] {
            let a = Init::new(5).normal(rows * cols, 0.0, 1.0);
            let w = Init::new(5).orthogonal(rows, cols, 0.5);
            let (k, m) = (rows.min(cols), rows.max(cols));
            // Element i of vector v: of a row when wide, of a column otherwise.
            let at = |x: &[f32], v: usize, i: usize| {
                f64::from(if rows < cols {
                    x[v * cols + i]
                } else {
                    x[i * cols + v]
                })
            };
            for u in 0..k {
                for v in 0..k {
                    // r_uv = q_u·a_v: R's entry (u, v), the u-th vector of Q against the v-th of A.
                    let r: f64 = (0..m).map(|i| at(&w, u, i) * at(&a, v, i)).sum::<f64>() / 0.5;
                    if u > v {
                        assert!(r.abs() < 1e-5, "({rows}, {cols}): R[{u}, {v}] = {r}");
                    } else if u == v {
                        assert!(r > 0.1, "({rows}, {cols}): R[{u}, {u}] = {r}");
                    }
                }
            }
        }
    }

    #[test]
    fn orthogonal_is_seeded() {
        assert_eq!(
            Init::new(9).orthogonal(12, 20, 1.0),
            Init::new(9).orthogonal(12, 20, 1.0)
        );
        assert_ne!(
            Init::new(9).orthogonal(12, 20, 1.0),
            Init::new(10).orthogonal(12, 20, 1.0)
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        assert_eq!(
            Init::new(7).normal(5, 0.0, 1.0),
            Init::new(7).normal(5, 0.0, 1.0)
        );
        assert_ne!(
            Init::new(7).normal(5, 0.0, 1.0),
            Init::new(8).normal(5, 0.0, 1.0)
        );
    }
}
