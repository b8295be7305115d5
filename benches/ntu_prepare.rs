//! Throughput of the NTU pipeline (parse and stages 1–3, single-threaded) on the committed raw
//! samples: `cargo bench --bench ntu_prepare`. Prints files/s and MB/s.

use flate2::read::GzDecoder;
use sfhead::data::ntu::{SingleActor, parse_skeleton, process_file};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn raw_samples() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ntu/raw");
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("tests/data/ntu/raw")
        .map(|entry| {
            let gz_path = entry.expect("a directory entry").path();
            let mut bytes = Vec::new();
            GzDecoder::new(std::fs::File::open(&gz_path).expect("a sample"))
                .read_to_end(&mut bytes)
                .expect("gzip");
            (gz_path.with_extension(""), bytes)
        })
        .collect();
    files.sort();
    files
}

/// Runs `work` over all files until `budget` has passed; returns (files, bytes, seconds).
fn measure(
    files: &[(PathBuf, Vec<u8>)],
    budget: Duration,
    work: impl Fn(&Path, &[u8]),
) -> (usize, usize, f64) {
    let started = Instant::now();
    let (mut count, mut bytes) = (0, 0);
    while started.elapsed() < budget {
        for (path, data) in files {
            work(path, data);
            count += 1;
            bytes += data.len();
        }
    }
    (count, bytes, started.elapsed().as_secs_f64())
}

fn main() {
    let files = raw_samples();
    let budget = Duration::from_secs(3);
    let report = |what: &str, (count, bytes, seconds): (usize, usize, f64)| {
        println!(
            "{what:<24} {:>8.1} files/s {:>8.1} MB/s ({count} files in {seconds:.2} s)",
            count as f64 / seconds,
            bytes as f64 / seconds / 1e6
        );
    };
    println!(
        "{} raw NTU samples, {} bytes",
        files.len(),
        files.iter().map(|f| f.1.len()).sum::<usize>()
    );
    report(
        "parse",
        measure(&files, budget, |path, data| {
            parse_skeleton(data, path).expect("a valid sample");
        }),
    );
    report(
        "parse + stages 1-3",
        measure(&files, budget, |path, data| {
            process_file(data, path, SingleActor::Zeros).expect("a valid sample");
        }),
    );
}
