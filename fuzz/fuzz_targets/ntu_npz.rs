//! Any bytes as a CTR-GCN `.npz`: opening either side, then reading every clip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfhead::data::ntu::npz::NpzClips;
use sfhead::data::{ClipSet, Part};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for part in [Part::Train, Part::Test] {
        if let Ok(clips) = NpzClips::from_bytes(data.to_vec(), Path::new("fuzz.npz"), part) {
            for i in 0..clips.len() {
                let _ = (clips.name(i), clips.label(i), clips.clip(i));
            }
        }
    }
});
