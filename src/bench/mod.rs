//! Benchmarks measured on the adapter in use (never timed tests).

mod kernels;

pub use kernels::{KernelTiming, ctrgcn_gemm_cases, peak_gflops, time_gemm};
