use super::streams::{NTU_BONE_PAIRS, bones, kth_mode, motion};
use super::{
    Crop, Feeder, SampleKey, SampleShape, Stream, random_rotation, resize_into, valid_frames,
};
use crate::data::Sequence;

/// CTR-GCN's NTU feeder (`feeder_ntu.Feeder`) for 25-joint Kinect v2 clips (NTU RGB+D, PKU-MMD):
/// valid-frame crop and resize to `window` frames, random rotation, then the stream (bone or k-th
/// mode) and motion. A clip with no valid frame gives an all-zero sample.
#[derive(Debug, Clone, PartialEq)]
pub struct NtuFeeder {
    pub window: usize,
    pub crop: Crop,
    pub rotate: bool,
    pub stream: Stream,
    pub motion: bool,
    /// Output persons M; clips with fewer are zero-padded.
    pub persons: usize,
}

const JOINTS: usize = 25;

impl NtuFeeder {
    /// CTR-GCN's training settings: 64 frames, p ∈ [0.5, 1) crop, random rotation, 2 persons.
    pub fn train(stream: Stream, motion: bool) -> Self {
        Self {
            window: 64,
            crop: Crop::TRAIN,
            rotate: true,
            stream,
            motion,
            persons: 2,
        }
    }

    /// CTR-GCN's test settings: 64 frames, the central 95 %, no rotation, 2 persons.
    pub fn test(stream: Stream, motion: bool) -> Self {
        Self {
            crop: Crop::TEST,
            rotate: false,
            ..Self::train(stream, motion)
        }
    }
}

impl Feeder for NtuFeeder {
    fn shape(&self) -> SampleShape {
        SampleShape {
            channels: 3,
            frames: self.window,
            joints: JOINTS,
            persons: self.persons,
        }
    }

    fn feed(&self, clip: &Sequence, key: SampleKey, out: &mut [f32]) -> Result<(), String> {
        let shape = self.shape();
        if clip.joints != JOINTS {
            return Err(format!(
                "the NTU feeder takes 25 joints, the clip has {}",
                clip.joints
            ));
        }
        if clip.persons > self.persons {
            return Err(format!(
                "the clip has {} persons, the feeder emits {}",
                clip.persons, self.persons
            ));
        }
        if self.window == 0 {
            return Err("the window must be at least one frame".into());
        }
        if self.stream == Stream::KthMode(0) {
            return Err("k-th mode needs k ≥ 1".into());
        }
        if out.len() != shape.len() {
            return Err(format!(
                "output holds {} values, not {}",
                out.len(),
                shape.len()
            ));
        }
        let valid = valid_frames(clip);
        if valid == 0 {
            out.fill(0.0);
            return Ok(());
        }
        let mut rng = key.rng();
        let frames = self.crop.frames(valid, &mut rng);
        resize_into(clip, frames, shape, out);
        if self.rotate {
            random_rotation(out, shape, &mut rng);
        }
        match self.stream {
            Stream::Joint => {}
            Stream::Bone => {
                let joints = out.to_vec();
                bones(&joints, shape, &NTU_BONE_PAIRS, out);
            }
            Stream::KthMode(k) => {
                let joints = out.to_vec();
                kth_mode(&joints, shape, k, out);
            }
        }
        if self.motion {
            motion(out, shape);
        }
        Ok(())
    }
}
