#![no_main]

//! An NW-UCLA `all_sqe` JSON clip.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = sfhead::data::ucla::parse_clip(Path::new("all_sqe/a01_s01_e00_v01.json"), bytes);
});
