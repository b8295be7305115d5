/// One skeleton clip of `frames × persons × joints` xyz points, stored row-major as
/// `(frames, persons, joints, 3)` f32: the frame-vector order of CTR-GCN's NTU files
/// (`[person][joint][x, y, z]` per frame).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub frames: usize,
    pub persons: usize,
    pub joints: usize,
    pub data: Vec<f32>,
}

impl Sequence {
    /// Wraps `data`; panics if its length is not `frames · persons · joints · 3`.
    pub fn new(frames: usize, persons: usize, joints: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            frames * persons * joints * 3,
            "sequence data does not match {frames}×{persons}×{joints}×3"
        );
        Self {
            frames,
            persons,
            joints,
            data,
        }
    }

    /// The `persons · joints · 3` values of frame `t`.
    pub fn frame(&self, t: usize) -> &[f32] {
        let width = self.persons * self.joints * 3;
        &self.data[t * width..(t + 1) * width]
    }
}

/// A labelled set of clips in a fixed order (a split's order, which is also the order of saved
/// scores). Feeders and the trainer read every dataset through this one trait.
pub trait ClipSet: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The clip's sample name (for NTU `SsssCcccPpppRrrrAaaa`, for NW-UCLA `aAA_sSS_eEE_vVV`).
    fn name(&self, index: usize) -> &str;
    /// The 0-based class label.
    fn label(&self, index: usize) -> u32;
    fn clip(&self, index: usize) -> Sequence;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_slices_follow_the_row_major_layout() {
        let s = Sequence::new(2, 1, 2, (0..12).map(|i| i as f32).collect());
        assert_eq!(s.frame(1), &[6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn wrong_length_is_rejected() {
        Sequence::new(2, 1, 2, vec![0.0; 11]);
    }
}
