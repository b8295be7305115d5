//! The design's boundaries, checked on the source tree: `src/gpu/` is the only code that calls
//! wgpu, and `src/model/` does not depend on `src/data/`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn offending(dir: &str, skip: &str, patterns: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join(dir), &mut files);
    let mut found = Vec::new();
    for file in files {
        if !skip.is_empty() && file.starts_with(root.join(skip)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if patterns.iter().any(|p| line.contains(p)) {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn only_src_gpu_calls_wgpu() {
    let found = offending("src", "src/gpu", &["wgpu::", "use wgpu"]);
    assert!(
        found.is_empty(),
        "wgpu used outside src/gpu:\n{}",
        found.join("\n")
    );
}

#[test]
fn models_do_not_depend_on_the_data_layer() {
    let found = offending("src/model", "", &["crate::data"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}
