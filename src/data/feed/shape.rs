/// The shape of one feeder output, `(C, T, V, M)` row-major: CTR-GCN's per-sample layout,
/// channel-major, persons innermost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleShape {
    pub channels: usize,
    pub frames: usize,
    pub joints: usize,
    pub persons: usize,
}

impl SampleShape {
    pub fn len(&self) -> usize {
        self.channels * self.frames * self.joints * self.persons
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flat index of `(c, t, v, m)`.
    #[inline]
    pub fn at(&self, c: usize, t: usize, v: usize, m: usize) -> usize {
        ((c * self.frames + t) * self.joints + v) * self.persons + m
    }

    /// The distance between consecutive channels of one `(t, v, m)` point.
    pub fn channel_stride(&self) -> usize {
        self.frames * self.joints * self.persons
    }

    /// The distance between consecutive frames.
    pub fn frame_stride(&self) -> usize {
        self.joints * self.persons
    }
}
