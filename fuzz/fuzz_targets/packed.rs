//! Any bytes as a packed `.sfpk` file: opening either side, then reading every clip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfhead::data::{ClipSet, PackedClips, Part};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for part in [Part::Train, Part::Test] {
        if let Ok(clips) = PackedClips::from_bytes(data.to_vec(), Path::new("fuzz.sfpk"), part) {
            for i in 0..clips.len() {
                let _ = (clips.name(i), clips.label(i), clips.clip(i));
            }
        }
    }
});
