//! PKU-MMD (phase 1) text files: skeletons (one 150-value row per frame), labels (one action
//! instance per line) and split lists; trimming into NTU-style instances.

mod instances;
mod labels;
mod skeleton;
mod split;

pub use instances::{Cut, Instance, cut_instances, translate};
pub use labels::{LabelRow, parse_labels};
pub use skeleton::parse_skeleton;
pub use split::{SplitLists, parse_split};

/// Kinect v2 joints, in NTU RGB+D order.
pub const JOINTS: usize = 25;
/// Persons per row.
pub const PERSONS: usize = 2;
/// Action classes (labels 1–51 in the files).
pub const CLASSES: usize = 51;
