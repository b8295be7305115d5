//! CTR-GCN's NTU random rotation (`tools.random_rot`).

use super::SampleShape;
use rand::{Rng, RngExt};

/// The largest rotation angle about each axis, in radians.
pub const MAX_ANGLE: f32 = 0.3;

/// `R = Rz·Ry·Rx` for angles (θx, θy, θz), in f32 as CTR-GCN builds it.
pub fn rotation_matrix([ax, ay, az]: [f32; 3]) -> [[f32; 3]; 3] {
    let (sx, cx) = ax.sin_cos();
    let (sy, cy) = ay.sin_cos();
    let (sz, cz) = az.sin_cos();
    let rx = [[1.0, 0.0, 0.0], [0.0, cx, sx], [0.0, -sx, cx]];
    let ry = [[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]];
    let rz = [[cz, sz, 0.0], [-sz, cz, 0.0], [0.0, 0.0, 1.0]];
    matmul(&matmul(&rz, &ry), &rx)
}

fn matmul(a: &[[f32; 3]; 3], b: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, value) in row.iter_mut().enumerate() {
            *value = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// Draws θx, θy, θz ~ U(−0.3, 0.3) once for the sample and rotates every joint of every frame
/// and person, `p′ = R·p` (zero points stay zero).
pub fn random_rotation(x: &mut [f32], shape: SampleShape, rng: &mut impl Rng) {
    let angles = [0; 3].map(|_| rng.random_range(-MAX_ANGLE..MAX_ANGLE));
    rotate(x, shape, &rotation_matrix(angles));
}

/// `p′ = R·p` for every `(t, v, m)` point of a `(3, T, V, M)` sample.
pub fn rotate(x: &mut [f32], shape: SampleShape, r: &[[f32; 3]; 3]) {
    let stride = shape.channel_stride();
    for i in 0..stride {
        let p = [x[i], x[i + stride], x[i + 2 * stride]];
        for (c, row) in r.iter().enumerate() {
            x[i + c * stride] = row[0] * p[0] + row[1] * p[1] + row[2] * p[2];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_axis_rotations_match_the_hand_written_matrices() {
        let (s, c) = 0.25f32.sin_cos();
        let r = rotation_matrix([0.25, 0.0, 0.0]);
        assert_eq!(r, [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]]);
        let r = rotation_matrix([0.0, 0.0, 0.25]);
        assert_eq!(r, [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]);
    }

    #[test]
    fn composition_order_is_z_then_y_then_x() {
        // R·e_x = Rz·Ry·Rx·e_x = Rz·Ry·e_x = Rz·(cy, 0, sy).
        let (sy, cy) = 0.2f32.sin_cos();
        let (sz, cz) = 0.1f32.sin_cos();
        let r = rotation_matrix([0.3, 0.2, 0.1]);
        let first_column = [r[0][0], r[1][0], r[2][0]];
        let expected = [cz * cy, -sz * cy, sy];
        for (a, b) in first_column.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{first_column:?} vs {expected:?}");
        }
    }

    #[test]
    fn rotation_preserves_norms_and_zero_points() {
        use rand::SeedableRng;
        let shape = SampleShape {
            channels: 3,
            frames: 4,
            joints: 3,
            persons: 2,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut x: Vec<f32> = (0..shape.len())
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        for t in 0..4 {
            for v in 0..3 {
                for c in 0..3 {
                    x[shape.at(c, t, v, 1)] = 0.0;
                }
            }
        }
        let norms = |x: &[f32]| -> Vec<f32> {
            let s = shape.channel_stride();
            (0..s)
                .map(|i| (x[i].powi(2) + x[i + s].powi(2) + x[i + 2 * s].powi(2)).sqrt())
                .collect()
        };
        let before = norms(&x);
        let original = x.clone();
        random_rotation(&mut x, shape, &mut rng);
        assert_ne!(x, original);
        for (a, b) in norms(&x).iter().zip(&before) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        for t in 0..4 {
            for v in 0..3 {
                assert!((0..3).all(|c| x[shape.at(c, t, v, 1)] == 0.0));
            }
        }
    }
}
