//! NW-UCLA (Northwestern-UCLA Multiview Action3D) in CTR-GCN's `all_sqe` JSON form: one file per
//! clip, `aAA_sSS_eEE_vVV.json`, holding `skeletons` (frames × 20 joints × xyz).

mod clip;
mod name;
mod source;
mod split;

pub use clip::{UclaClip, parse_clip};
pub use name::{ACTION_IDS, ClipName};
pub use source::read_clips;
pub use split::{UclaSplits, bundled_archive};

/// Kinect v1 joints per skeleton.
pub const JOINTS: usize = 20;
/// Action classes.
pub const CLASSES: usize = 10;
