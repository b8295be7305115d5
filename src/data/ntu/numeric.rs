//! The float32 reductions of CTR-GCN's preprocessing, in numpy's exact order of operations.
//!
//! Bit-exact output needs the same rounding sequence as numpy, not just the same formula:
//! numpy sums a contiguous axis pairwise (blocks of 8 accumulators), but reduces a
//! non-contiguous axis (`axis=0` of a row-major matrix) one row after another.

/// Rows of at most this many elements are summed with 8 accumulators; longer ones are split.
const PAIRWISE_BLOCK: usize = 128;

/// `a.sum()` of a contiguous float32 array, as numpy computes it (pairwise summation).
pub fn pairwise_sum(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |sum, &x| sum + x)
    } else if n <= PAIRWISE_BLOCK {
        let mut r: [f32; 8] = a[..8].try_into().expect("8 elements");
        let blocked = n - n % 8;
        for block in a[8..blocked].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(block) {
                *acc += x;
            }
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[blocked..] {
            sum += x;
        }
        sum
    } else {
        let half = n / 2;
        let split = half - half % 8;
        pairwise_sum(&a[..split]) + pairwise_sum(&a[split..])
    }
}

/// `np.sum(np.var(rows, axis=0))` for float32 `(n, 3)` rows, as CTR-GCN's motion measure.
///
/// The column means and the squared-deviation sums run over the rows in order (numpy's
/// `axis=0` reduction of a row-major array), each step rounded to float32; the three
/// variances are then added left to right. Returns NaN for no rows, as numpy does.
pub fn variance_sum(rows: &[[f32; 3]]) -> f32 {
    let count = rows.len() as f32;
    let mut mean = [0.0f32; 3];
    for row in rows {
        for c in 0..3 {
            mean[c] += row[c];
        }
    }
    mean = mean.map(|s| s / count);
    let mut squares = [0.0f32; 3];
    for row in rows {
        for c in 0..3 {
            let d = row[c] - mean[c];
            squares[c] += d * d;
        }
    }
    let var = squares.map(|s| s / count);
    (var[0] + var[1]) + var[2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_differs_from_sequential_where_numpy_does() {
        // 1e8 swallows each following 1.0 when added in sequence; pairwise groups the ones first.
        let mut a = vec![1.0f32; 16];
        a[0] = 1e8;
        let sequential = a.iter().fold(0.0f32, |s, &x| s + x);
        assert_eq!(sequential, 1e8);
        // r[0] = 1e8 + 1 = 1e8 and the other 7 accumulators hold 2 each; numpy gives 1e8 + 8.
        assert_eq!(pairwise_sum(&a), 100_000_008.0);
    }

    #[test]
    fn short_rows_sum_in_order() {
        assert_eq!(pairwise_sum(&[]), 0.0);
        assert_eq!(pairwise_sum(&[1e8, 1.0, 1.0, 1.0]), 1e8);
    }

    #[test]
    fn variance_of_constant_rows_is_zero() {
        assert_eq!(variance_sum(&[[1.5, -2.0, 3.0]; 7]), 0.0);
        assert!(variance_sum(&[]).is_nan());
    }
}
