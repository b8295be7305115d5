//! The GEMM at CTR-GCN's 1×1-convolution shapes, in the three layouts a training step uses.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::engine::{CompileError, Executor, Graph, Store};
use crate::gpu::Gpu;
use crate::ops::conv1x1::{Dims, forward_gemm, grad_input_gemm, grad_weight_gemm};
use crate::ops::gemm::Gemm;

/// Frames and joints of CTR-GCN's NTU input: each sample is a C×(T·V) matrix.
const FRAMES: usize = 64;
const JOINTS: usize = 25;

/// (C_out, C_in) of the 1×1 convolutions of CTR-GCN, from the first block to the widest.
const CHANNELS: [(usize, usize); 6] = [
    (64, 3),
    (64, 64),
    (128, 64),
    (128, 128),
    (256, 128),
    (256, 256),
];

#[derive(Debug, Clone, Serialize)]
pub struct KernelTiming {
    pub name: String,
    pub layout: &'static str,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub milliseconds: f64,
    pub gflops: f64,
}

/// Forward (NN), data-gradient (TN) and weight-gradient (NT) products of every 1×1 conv shape
/// for a batch of `batch` person-streams of 64 frames × 25 joints.
pub fn ctrgcn_gemm_cases(batch: usize) -> Vec<(String, &'static str, Gemm)> {
    let points = FRAMES * JOINTS;
    CHANNELS
        .iter()
        .flat_map(|&(cout, cin)| {
            let name = format!("conv1x1 {cin}->{cout}");
            let dims = Dims {
                groups: 1,
                cin,
                cout,
                points,
            };
            [
                (name.clone(), "NN", forward_gemm(batch, dims, true)),
                (name.clone(), "TN", grad_input_gemm(batch, dims)),
                (name, "NT", grad_weight_gemm(batch, dims)),
            ]
        })
        .collect()
}

/// Mean wall-clock time of one product over `repeats` submissions after a warm-up, and its
/// rate counting a multiply and an add as two operations.
pub fn time_gemm(
    gpu: &Arc<Gpu>,
    name: &str,
    layout: &'static str,
    gemm: &Gemm,
    repeats: usize,
) -> Result<KernelTiming, CompileError> {
    let (a_len, b_len, c_len) = gemm.extents();
    let mut g = Graph::new();
    let a = g.input("a", &[a_len]);
    let b = g.input("b", &[b_len]);
    let bias = (gemm.bias != crate::ops::gemm::Bias::None).then(|| {
        let len = gemm.m.max(gemm.n);
        g.constant("bias", &[len], vec![0.0; len])
    });
    let c = gemm.clone().push(&mut g, "gemm", a, b, bias, &[c_len]);
    let exe = Executor::compile(gpu, &g, &mut Store::new(), &[c])?;
    exe.write(a, &vec![0.5; a_len])?;
    exe.write(b, &vec![0.25; b_len])?;
    for _ in 0..2 {
        exe.run();
    }
    gpu.wait_idle();
    let start = Instant::now();
    for _ in 0..repeats {
        exe.run();
    }
    gpu.wait_idle();
    let seconds = start.elapsed().as_secs_f64() / repeats as f64;
    Ok(KernelTiming {
        name: name.to_string(),
        layout,
        m: gemm.m,
        n: gemm.n * gemm.products,
        k: gemm.k * gemm.kb,
        milliseconds: seconds * 1e3,
        gflops: 2.0 * gemm.macs() as f64 / seconds / 1e9,
    })
}

/// Published fp32 (non-tensor-core) peak of well-known adapters, in GFLOP/s.
pub fn peak_gflops(adapter_name: &str) -> Option<f64> {
    let name = adapter_name.to_lowercase();
    [("h200", 67_000.0), ("h100", 67_000.0), ("a100", 19_500.0)]
        .into_iter()
        .find(|(key, _)| name.contains(key))
        .map(|(_, peak)| peak)
}

/// Times every case of [`ctrgcn_gemm_cases`] and writes a table (or one JSON object per line).
pub fn report_kernels(
    gpu: &Arc<Gpu>,
    batch: usize,
    repeats: usize,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let peak = peak_gflops(&gpu.report().info.name);
    if !json {
        writeln!(
            out,
            "{}; batch {batch} × 64 frames × 25 joints",
            gpu.report().summary()
        )?;
    }
    for (case, layout, gemm) in ctrgcn_gemm_cases(batch) {
        let t = time_gemm(gpu, &case, layout, &gemm, repeats.max(1))?;
        if json {
            writeln!(out, "{}", serde_json::to_string(&t)?)?;
            continue;
        }
        let share = peak.map_or(String::new(), |p| {
            format!("  {:5.1} % of {p:.0} GFLOP/s", 100.0 * t.gflops / p)
        });
        writeln!(
            out,
            "{:<18} {layout}  m {:>4}  n {:>7}  k {:>7}  {:>9.3} ms  {:>9.1} GFLOP/s{share}",
            t.name, t.m, t.n, t.k, t.milliseconds, t.gflops
        )?;
    }
    Ok(())
}
