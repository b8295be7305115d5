//! GFLOP/s of the GEMM at CTR-GCN's 1×1-conv shapes: `cargo bench --bench gemm`.
//! `SFHEAD_BENCH_BATCH` sets the person-stream batch (default 128 = 64 samples × 2 persons).

use std::sync::Arc;

use sfhead::bench::{ctrgcn_gemm_cases, peak_gflops, time_gemm};
use sfhead::gpu::Gpu;

fn main() {
    let batch = std::env::var("SFHEAD_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let gpu = Arc::new(Gpu::new(None).expect("a GPU adapter"));
    let adapter = gpu.report().info.name.clone();
    println!("adapter: {adapter}; batch {batch} × 64 frames × 25 joints");
    let peak = peak_gflops(&adapter);
    for (name, layout, gemm) in ctrgcn_gemm_cases(batch) {
        match time_gemm(&gpu, &name, layout, &gemm, 5) {
            Ok(t) => println!(
                "{:<18} {layout}  m {:>4} n {:>7} k {:>7}  {:>9.3} ms  {:>9.1} GFLOP/s{}",
                t.name,
                t.m,
                t.n,
                t.k,
                t.milliseconds,
                t.gflops,
                peak.map_or(String::new(), |p| format!(
                    "  {:.1} % of peak",
                    100.0 * t.gflops / p
                ))
            ),
            Err(e) => println!("{name:<18} {layout}  skipped: {e}"),
        }
    }
}
