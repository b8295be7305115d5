//! Code shared by integration tests: the CTR-GCN and SF-Head fixture decoders, the formula-weight
//! fixtures of ST-GCN and MS-AAGCN, the state-dict listing, and the committed NTU samples and
//! goldens. Each test binary uses a part of it.
#![allow(dead_code)]

pub mod ctrgcn_fixture;
pub mod formula_fixture;
pub mod parity;
pub mod sfhead_fixture;
pub mod state_dict_listing;

use flate2::read::GzDecoder;
use sfhead::data::npz::NpzArchive;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `tests/data/ntu`.
pub fn ntu_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ntu")
}

pub fn gunzip(path: &Path) -> Vec<u8> {
    let gz = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    GzDecoder::new(&gz[..]).read_to_end(&mut bytes).unwrap();
    bytes
}

/// The 18 raw `.skeleton` files as `(file name, bytes)`, sorted by name.
pub fn raw_files() -> Vec<(String, Vec<u8>)> {
    let dir = ntu_dir().join("raw");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            (name.strip_suffix(".gz").unwrap().to_string(), gunzip(&p))
        })
        .collect();
    files.sort();
    files
}

/// One raw file by sample name.
pub fn raw_file(name: &str) -> Vec<u8> {
    gunzip(&ntu_dir().join(format!("raw/{name}.skeleton.gz")))
}

/// The golden runs of CTR-GCN's NTU60 scripts.
pub const RUNS: [&str; 2] = ["run-s017-a050-a060", "run-s001-p003-p004"];

/// A golden `.npz` of a run, e.g. `golden("run-s017-a050-a060", "NTU60_CS.npz")`.
pub fn golden(run: &str, file: &str) -> NpzArchive {
    let path = ntu_dir().join(format!("golden/{run}/{file}.gz"));
    NpzArchive::from_bytes(
        gunzip(&path),
        &ntu_dir().join(format!("golden/{run}/{file}")),
    )
}

/// The sample names a golden run processed, in its order.
pub fn golden_names(run: &str) -> Vec<String> {
    std::fs::read_to_string(ntu_dir().join(format!("golden/{run}/skes_available_name.txt")))
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A whole golden array of `T` and its shape.
pub fn array<T: npyz::Deserialize>(archive: &NpzArchive, key: &str) -> (Vec<u64>, Vec<T>) {
    let a = archive.array(key).unwrap_or_else(|e| panic!("{e}"));
    (a.shape.clone(), archive.read(&a).unwrap())
}

/// Float32 bit patterns, so that comparisons are exact (and NaN equals the same NaN).
pub fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}
