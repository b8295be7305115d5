#![no_main]

//! A UTD-MHAD skeleton CSV export.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = sfhead::data::other::parse_utd_csv(Path::new("a1_s1_t1_skeleton.csv"), bytes);
});
