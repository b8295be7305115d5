//! Benchmarks measured on the adapter in use (never timed tests).

mod kernels;
mod step;

pub use kernels::{KernelTiming, ctrgcn_gemm_cases, peak_gflops, report_kernels, time_gemm};
pub use step::{KernelProfile, StepTiming, time_step};
