#![no_main]

//! A PKU-MMD split file.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = sfhead::data::pku::parse_split(Path::new("cross-subject.txt"), bytes);
});
