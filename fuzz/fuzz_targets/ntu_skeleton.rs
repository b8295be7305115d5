//! Any bytes as a `.skeleton` file, through the parser and all three stages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfhead::data::ntu::{SingleActor, process_file};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("S001C001P001R001A050.skeleton");
    for rule in [SingleActor::Zeros, SingleActor::Duplicate] {
        let _ = process_file(data, path, rule);
    }
});
