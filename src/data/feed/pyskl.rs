//! ProtoGCN's pyskl pipeline (`configs/ntu120_xsub/j.py`): PreNormalize3D (align_spine = False),
//! RandomRot(θ = 0.2), Spatial_Flip(p = 0.5) and UniformSampleDecode(clip_len = 100) for training;
//! PreNormalize3D and UniformSampleDecode(100, num_clips = 10) for testing, whose clips the
//! evaluator averages. The deterministic steps follow pyskl's arithmetic exactly; the training
//! draws come from the sample key.

use super::{Feeder, SampleKey, SampleShape};
use crate::data::Sequence;
use rand::{Rng, RngExt};

/// UniformSampleDecode's `clip_len`.
pub const CLIP_LEN: usize = 100;
/// Clips of the test pipeline.
pub const TEST_CLIPS: usize = 10;
/// RandomRot's θ: each angle is drawn from U(−θ, θ).
pub const ROTATION: f64 = 0.2;
/// Spatial_Flip's probability.
pub const FLIP_PROBABILITY: f64 = 0.5;
/// The seed UniformSampleDecode gives numpy's global generator at test time.
const TEST_SEED: u32 = 255;
/// FormatGCNInput's `num_person`.
const PERSONS: usize = 2;

/// The float type pyskl computed a clip's PreNormalize3D in: the dtype of its `keypoint` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Half,
    Single,
    Double,
}

impl Precision {
    /// `a − b` as numpy computes it in this dtype (float16 through float32, as numpy's loops).
    fn sub(self, a: f64, b: f64) -> f64 {
        match self {
            Precision::Half => f64::from(round_to_half(a as f32 - b as f32)),
            Precision::Single => f64::from(a as f32 - b as f32),
            Precision::Double => a - b,
        }
    }
}

/// The float16 nearest to `x` (ties to even, as numpy's `npy_float_to_half`), as f32.
pub fn round_to_half(x: f32) -> f32 {
    half_to_f32(f32_to_half(x))
}

/// IEEE binary16 bits of `x`, rounded to nearest, ties to even.
pub fn f32_to_half(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 { 0x0200 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    let e = exp - 112;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (base, rem, half) = if e <= 0 {
        let shift = (14 - e) as u32;
        if shift > 24 {
            return sign;
        }
        let m = man | 0x80_0000;
        (m >> shift, m & ((1 << shift) - 1), 1u32 << (shift - 1))
    } else {
        (((e as u32) << 10) | (man >> 13), man & 0x1fff, 0x1000)
    };
    let rounded = if rem > half || (rem == half && base & 1 == 1) {
        base + 1
    } else {
        base
    };
    sign | rounded as u16
}

/// The value of binary16 bits `h`.
pub fn half_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let magnitude = match exp {
        0 => man as f32 / 16_777_216.0,
        0x1f if man == 0 => f32::INFINITY,
        0x1f => f32::NAN,
        _ => f32::from_bits(((exp + 112) << 23) | (man << 13)),
    };
    if negative { -magnitude } else { magnitude }
}

/// A clip in pyskl's layout, `(persons, frames, joints, xyz)` row-major, each value held exactly
/// as f64 whatever the dtype it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Pose {
    pub persons: usize,
    pub frames: usize,
    pub joints: usize,
    pub values: Vec<f64>,
}

impl Pose {
    /// The engine's `(frames, persons, joints, xyz)` clip in pyskl's layout.
    pub fn from_sequence(clip: &Sequence) -> Self {
        let (m, t, v) = (clip.persons, clip.frames, clip.joints);
        let mut values = vec![0.0; clip.data.len()];
        for frame in 0..t {
            for person in 0..m {
                let from = (frame * m + person) * v * 3;
                let to = (person * t + frame) * v * 3;
                for (dst, &src) in values[to..to + v * 3]
                    .iter_mut()
                    .zip(&clip.data[from..from + v * 3])
                {
                    *dst = f64::from(src);
                }
            }
        }
        Self {
            persons: m,
            frames: t,
            joints: v,
            values,
        }
    }

    /// Back to the engine's layout, rounded to f32.
    pub fn to_sequence(&self) -> Sequence {
        let (m, t, v) = (self.persons, self.frames, self.joints);
        let mut data = vec![0.0; self.values.len()];
        for person in 0..m {
            for frame in 0..t {
                let from = (person * t + frame) * v * 3;
                let to = (frame * m + person) * v * 3;
                for (dst, &src) in data[to..to + v * 3]
                    .iter_mut()
                    .zip(&self.values[from..from + v * 3])
                {
                    *dst = src as f32;
                }
            }
        }
        Sequence::new(t, m, v, data)
    }

    fn frame(&self, person: usize, frame: usize) -> &[f64] {
        let width = self.joints * 3;
        let start = (person * self.frames + frame) * width;
        &self.values[start..start + width]
    }
}

/// `np.isclose(x, 0)` with its default tolerances.
fn near_zero(x: f64) -> bool {
    x.abs() <= 1e-8
}

/// PreNormalize3D with `align_spine=False`, in the arithmetic of `precision`:
///
/// 1. a clip whose values are all zero is returned unchanged;
/// 2. the frames where person 0 is not all (close to) zero are kept; with two persons, if
///    person 1 has more such frames, its frames are kept instead and the persons swap;
/// 3. joint 1 (0-based) of person 0 in the first kept frame (for 25 joints; the last joint
///    otherwise) is subtracted from every joint, and joints that were exactly zero stay zero.
///
/// Where no frame is kept (every value within 1e-8 of zero but not all zero; pyskl fails on
/// an empty index array), the clip is returned unchanged.
pub fn pre_normalize(pose: &Pose, precision: Precision) -> Pose {
    if pose.values.iter().all(|&x| x == 0.0) {
        return pose.clone();
    }
    let valid = |person: usize| -> Vec<usize> {
        (0..pose.frames)
            .filter(|&t| !pose.frame(person, t).iter().all(|&x| near_zero(x)))
            .collect()
    };
    let first = valid(0);
    let (order, kept): (Vec<usize>, Vec<usize>) = if pose.persons == 2 {
        let second = valid(1);
        if first.len() < second.len() {
            (vec![1, 0], second)
        } else {
            (vec![0, 1], first)
        }
    } else {
        ((0..pose.persons).collect(), first)
    };
    if kept.is_empty() {
        return pose.clone();
    }
    let v = pose.joints;
    let centre_joint = if v == 25 { 1 } else { v - 1 };
    let c0 = pose.frame(order[0], kept[0]);
    let centre = [
        c0[centre_joint * 3],
        c0[centre_joint * 3 + 1],
        c0[centre_joint * 3 + 2],
    ];
    let mut values = Vec::with_capacity(order.len() * kept.len() * v * 3);
    for &person in &order {
        for &t in &kept {
            for point in pose.frame(person, t).chunks_exact(3) {
                let mask = if point.iter().any(|&x| x != 0.0) {
                    1.0
                } else {
                    0.0
                };
                for c in 0..3 {
                    values.push(precision.sub(point[c], centre[c]) * mask);
                }
            }
        }
    }
    Pose {
        persons: order.len(),
        frames: kept.len(),
        joints: v,
        values,
    }
}

/// RandomRot's `_rot3d`: `Rz·(Ry·Rx)` for angles θ = (θx, θy, θz), in f64.
pub fn rot3d(theta: [f64; 3]) -> [[f64; 3]; 3] {
    let (s, c) = (theta.map(f64::sin), theta.map(f64::cos));
    let rx = [[1.0, 0.0, 0.0], [0.0, c[0], s[0]], [0.0, -s[0], c[0]]];
    let ry = [[c[1], 0.0, -s[1]], [0.0, 1.0, 0.0], [s[1], 0.0, c[1]]];
    let rz = [[c[2], s[2], 0.0], [-s[2], c[2], 0.0], [0.0, 0.0, 1.0]];
    matmul(&rz, &matmul(&ry, &rx))
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| {
        std::array::from_fn(|j| a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j])
    })
}

/// `p′ = R·p` for every point, in f64 (`np.einsum('ab,mtvb->mtva', R, x)`).
pub fn rotate_pose(pose: &mut Pose, r: &[[f64; 3]; 3]) {
    for p in pose.values.chunks_exact_mut(3) {
        let q = [p[0], p[1], p[2]];
        for (a, row) in r.iter().enumerate() {
            p[a] = row[0] * q[0] + row[1] * q[1] + row[2] * q[2];
        }
    }
}

/// Spatial_Flip: joint v takes the coordinates of joint `permutation[v]`.
pub fn flip_joints(pose: &mut Pose, permutation: &[usize]) {
    let v = pose.joints;
    for frame in pose.values.chunks_exact_mut(v * 3) {
        let original = frame.to_vec();
        for (dst, &src) in permutation.iter().enumerate() {
            frame[dst * 3..dst * 3 + 3].copy_from_slice(&original[src * 3..src * 3 + 3]);
        }
    }
}

/// The random numbers UniformSampleDecode draws.
trait Draws {
    /// `np.random.rand()`.
    fn unit(&mut self) -> f64;
    /// `np.random.randint(n)`, n ≥ 1.
    fn below(&mut self, n: usize) -> usize;
    /// `np.random.choice(n, k, replace=False)`.
    fn subset(&mut self, n: usize, k: usize) -> Vec<usize>;
}

/// `_get_clips`' frame indices of one clip (p_interval = 1, so the whole clip and no offset).
fn clip_indices(frames: usize, clip_len: usize, draws: &mut impl Draws) -> Vec<usize> {
    // ratio = rand()·0 + 1 and off = randint(1) = 0; the first still advances the generator.
    draws.unit();
    if frames < clip_len {
        let start = draws.below(frames);
        (start..start + clip_len).map(|i| i % frames).collect()
    } else if frames < 2 * clip_len {
        let mut offset = vec![0usize; clip_len + 1];
        for i in draws.subset(clip_len + 1, frames - clip_len) {
            offset[i] = 1;
        }
        let mut sum = 0;
        (0..clip_len)
            .map(|i| {
                sum += offset[i];
                i + sum
            })
            .collect()
    } else {
        let bound = |i: usize| i * frames / clip_len;
        (0..clip_len)
            .map(|i| bound(i) + draws.below(bound(i + 1) - bound(i)))
            .collect()
    }
}

/// The frame indices of the `clips` test clips of a `frames`-frame clip, as pyskl draws them
/// from numpy's generator seeded with 255.
pub fn test_indices(frames: usize, clip_len: usize, clips: usize) -> Vec<Vec<usize>> {
    let mut mt = numpy::RandomState::new(TEST_SEED);
    (0..clips)
        .map(|_| clip_indices(frames, clip_len, &mut mt))
        .collect()
}

/// The frame indices of one training clip, drawn from `rng` with pyskl's distributions.
pub fn train_indices(frames: usize, clip_len: usize, rng: &mut impl Rng) -> Vec<usize> {
    clip_indices(frames, clip_len, &mut KeyDraws(rng))
}

struct KeyDraws<'a, R>(&'a mut R);

impl<R: Rng> Draws for KeyDraws<'_, R> {
    fn unit(&mut self) -> f64 {
        0.0
    }

    fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    fn subset(&mut self, n: usize, k: usize) -> Vec<usize> {
        rand::seq::index::sample(self.0, n, k).into_vec()
    }
}

/// FormatGCNInput: frames `indices` of `pose` into a `(3, T, V, M)` sample, persons beyond the
/// pose's zero.
pub fn write_sample(pose: &Pose, indices: &[usize], shape: SampleShape, out: &mut [f32]) {
    out.fill(0.0);
    for person in 0..pose.persons.min(shape.persons) {
        for (t, &frame) in indices.iter().enumerate() {
            for (v, p) in pose.frame(person, frame).chunks_exact(3).enumerate() {
                for (c, &x) in p.iter().enumerate() {
                    out[shape.at(c, t, v, person)] = x as f32;
                }
            }
        }
    }
}

/// ProtoGCN's pyskl feeder: `(3, clip_len, V, 2)` samples. Training draws the rotation, the
/// flip and the frames from the sample key; testing has `clips` deterministic clips, of which
/// [`Feeder::feed`] writes the first (the validation pipeline's one clip) and
/// [`Feeder::feed_clips`] all.
#[derive(Debug, Clone, PartialEq)]
pub struct PysklFeeder {
    pub joints: usize,
    /// M: persons per sample, the first two of the clip's, zero-padded (FormatGCNInput's 2).
    pub persons: usize,
    pub clip_len: usize,
    /// Test clips per sample; training makes one.
    pub clips: usize,
    pub train: bool,
    /// RandomRot's θ (training).
    pub rotation: f64,
    /// Spatial_Flip's joint permutation (training), taken with `flip_probability`.
    pub flip: Option<Vec<usize>>,
    pub flip_probability: f64,
}

impl PysklFeeder {
    /// The training pipeline for `joints`-joint clips; `flip` is the skeleton's left-right
    /// permutation (`Topology::flip`), `None` for no flip.
    pub fn train(joints: usize, flip: Option<Vec<usize>>) -> Self {
        Self {
            joints,
            persons: PERSONS,
            clip_len: CLIP_LEN,
            clips: 1,
            train: true,
            rotation: ROTATION,
            flip,
            flip_probability: FLIP_PROBABILITY,
        }
    }

    /// The test pipeline: 10 clips.
    pub fn test(joints: usize) -> Self {
        Self {
            clips: TEST_CLIPS,
            train: false,
            flip: None,
            ..Self::train(joints, None)
        }
    }

    /// Checks the clip, runs the steps before sampling and picks the frames of the first
    /// `clips` clips (training: one clip; the draws come from the key in the order θ, flip,
    /// frames).
    fn clips_of(
        &self,
        clip: &Sequence,
        key: SampleKey,
        clips: usize,
    ) -> Result<(Pose, Vec<Vec<usize>>), String> {
        if clip.joints != self.joints {
            return Err(format!(
                "the feeder takes {} joints, the clip has {}",
                self.joints, clip.joints
            ));
        }
        if !(1..=PERSONS).contains(&clip.persons) {
            return Err(format!(
                "pyskl clips hold 1 or 2 persons, this one {}",
                clip.persons
            ));
        }
        if clip.frames == 0 || self.clip_len == 0 {
            return Err("the clip and the sample need at least one frame".into());
        }
        let mut pose = pre_normalize(&Pose::from_sequence(clip), Precision::Single);
        if !self.train {
            let indices = test_indices(pose.frames, self.clip_len, clips);
            return Ok((pose, indices));
        }
        if let Some(flip) = &self.flip {
            check_permutation(flip, self.joints)?;
        }
        if !(self.rotation.is_finite() && self.rotation >= 0.0) {
            return Err(format!("the rotation θ is {}, not ≥ 0", self.rotation));
        }
        let mut rng = key.rng();
        // RandomRot leaves an all-zero clip alone; θ = 0 draws nothing.
        if self.rotation > 0.0 {
            let theta = [0; 3].map(|_| rng.random_range(-self.rotation..self.rotation));
            if !pose.values.iter().all(|&x| near_zero(x)) {
                rotate_pose(&mut pose, &rot3d(theta));
            }
        }
        let flip = rng.random::<f64>() < self.flip_probability;
        if let (true, Some(permutation)) = (flip, &self.flip) {
            flip_joints(&mut pose, permutation);
        }
        let indices = train_indices(pose.frames, self.clip_len, &mut rng);
        Ok((pose, vec![indices]))
    }
}

/// A flip must map the joints one to one.
fn check_permutation(permutation: &[usize], joints: usize) -> Result<(), String> {
    let mut seen = vec![false; joints];
    if permutation.len() != joints {
        return Err(format!(
            "the flip permutation has {} entries for {joints} joints",
            permutation.len()
        ));
    }
    for &j in permutation {
        if j >= joints || std::mem::replace(&mut seen[j], true) {
            return Err(format!(
                "the flip permutation is not one to one at joint {j}"
            ));
        }
    }
    Ok(())
}

impl Feeder for PysklFeeder {
    fn shape(&self) -> SampleShape {
        SampleShape {
            channels: 3,
            frames: self.clip_len,
            joints: self.joints,
            persons: self.persons,
        }
    }

    fn feed(&self, clip: &Sequence, key: SampleKey, out: &mut [f32]) -> Result<(), String> {
        let shape = self.shape();
        if out.len() != shape.len() {
            return Err(format!(
                "output holds {} values, not {}",
                out.len(),
                shape.len()
            ));
        }
        let (pose, indices) = self.clips_of(clip, key, 1)?;
        write_sample(&pose, &indices[0], shape, out);
        Ok(())
    }

    /// `clips` when testing, 1 when training.
    fn clips(&self) -> usize {
        if self.train { 1 } else { self.clips }
    }

    fn feed_clips(&self, clip: &Sequence, key: SampleKey, out: &mut [f32]) -> Result<(), String> {
        let shape = self.shape();
        let count = self.clips();
        if out.len() != count * shape.len() {
            return Err(format!(
                "output holds {} values, not {count} clips of {}",
                out.len(),
                shape.len()
            ));
        }
        let (pose, indices) = self.clips_of(clip, key, count)?;
        for (frames, sample) in indices.iter().zip(out.chunks_exact_mut(shape.len())) {
            write_sample(&pose, frames, shape, sample);
        }
        Ok(())
    }
}

/// The parts of numpy's legacy `RandomState` (MT19937) that UniformSampleDecode uses.
mod numpy {
    const N: usize = 624;
    const M: usize = 397;

    pub struct RandomState {
        key: [u32; N],
        pos: usize,
    }

    impl RandomState {
        /// `np.random.seed(seed)`: MT19937's `init_genrand`.
        pub fn new(seed: u32) -> Self {
            let mut key = [0u32; N];
            key[0] = seed;
            for i in 1..N {
                let prev = key[i - 1];
                key[i] = 1_812_433_253u32
                    .wrapping_mul(prev ^ (prev >> 30))
                    .wrapping_add(i as u32);
            }
            Self { key, pos: N }
        }

        fn generate(&mut self) {
            let mix = |a: u32, b: u32| (a & 0x8000_0000) | (b & 0x7fff_ffff);
            for i in 0..N {
                let y = mix(self.key[i], self.key[(i + 1) % N]);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.key[i] = self.key[(i + M) % N] ^ (y >> 1) ^ mag;
            }
            self.pos = 0;
        }

        pub fn next_u32(&mut self) -> u32 {
            if self.pos == N {
                self.generate();
            }
            let mut y = self.key[self.pos];
            self.pos += 1;
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c_5680;
            y ^= (y << 15) & 0xefc6_0000;
            y ^ (y >> 18)
        }

        /// `random_sample()`: 53 bits from two draws.
        pub fn double(&mut self) -> f64 {
            let a = f64::from(self.next_u32() >> 5);
            let b = f64::from(self.next_u32() >> 6);
            (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
        }

        /// A value in [0, max] by masked rejection (numpy's legacy bounded integers and
        /// `random_interval`); no draw for max = 0. Every bound here is below 2³².
        pub fn masked(&mut self, max: u32) -> u32 {
            if max == 0 {
                return 0;
            }
            let mask = u32::MAX >> max.leading_zeros();
            loop {
                let value = self.next_u32() & mask;
                if value <= max {
                    return value;
                }
            }
        }
    }

    impl super::Draws for RandomState {
        fn unit(&mut self) -> f64 {
            self.double()
        }

        fn below(&mut self, n: usize) -> usize {
            self.masked(n as u32 - 1) as usize
        }

        /// `permutation(n)[:k]`: a Fisher–Yates shuffle of 0..n from the top.
        fn subset(&mut self, n: usize, k: usize) -> Vec<usize> {
            let mut items: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                let j = self.masked(i as u32) as usize;
                items.swap(i, j);
            }
            items.truncate(k);
            items
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn matches_the_reference_mt19937_output() {
            // The first outputs of init_genrand(5489), the reference implementation's default.
            let mut mt = RandomState::new(5489);
            let first: Vec<u32> = (0..3).map(|_| mt.next_u32()).collect();
            assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_rounding_matches_the_half_crate() {
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            if h.is_nan() {
                continue;
            }
            assert_eq!(
                half_to_f32(bits).to_bits(),
                h.to_f32().to_bits(),
                "{bits:#06x}"
            );
            assert_eq!(f32_to_half(h.to_f32()), bits, "{bits:#06x}");
        }
        let mut x = 1.0e-9f32;
        while x < 1.0e5 {
            for v in [x, -x, x * 1.000_123, f32::from_bits(x.to_bits() + 1)] {
                assert_eq!(f32_to_half(v), half::f16::from_f32(v).to_bits(), "{v:e}");
            }
            x *= 1.013;
        }
    }

    #[test]
    fn short_clips_loop_and_long_ones_take_one_frame_per_segment() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for frames in [1, 7, 99, 100, 101, 150, 199, 200, 201, 577] {
            let picks = train_indices(frames, CLIP_LEN, &mut rng);
            assert_eq!(picks.len(), CLIP_LEN);
            assert!(picks.iter().all(|&p| p < frames), "{frames}");
            if frames >= CLIP_LEN {
                assert!(picks.windows(2).all(|w| w[0] < w[1]), "{frames}: {picks:?}");
            } else {
                let start = picks[0];
                assert!(
                    picks
                        .iter()
                        .enumerate()
                        .all(|(i, &p)| p == (start + i) % frames)
                );
            }
            if frames >= 2 * CLIP_LEN {
                for (i, &p) in picks.iter().enumerate() {
                    assert!((i * frames / CLIP_LEN..(i + 1) * frames / CLIP_LEN).contains(&p));
                }
            }
        }
    }
}
