#![no_main]

//! A PKU-MMD label file.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = sfhead::data::pku::parse_labels(Path::new("0002-L.txt"), bytes);
});
