#![no_main]

//! An MSR Daily Activity 3D skeleton file.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = sfhead::data::other::parse_msr(Path::new("a01_s01_e01_skeleton.txt"), bytes);
});
