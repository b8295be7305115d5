//! GFLOP/s of the GEMM at CTR-GCN's 1×1-conv shapes: `cargo bench --bench gemm`, the same
//! measurement as `sfhead bench kernels`. `SFHEAD_BENCH_BATCH` sets the person-stream batch
//! (default 128 = 64 samples × 2 persons); `SFHEAD_ADAPTER` picks the adapter.

use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let batch = std::env::var("SFHEAD_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let gpu = Arc::new(sfhead::gpu::Gpu::new(None)?);
    sfhead::bench::report_kernels(&gpu, batch, 5, false, &mut std::io::stdout())
}
