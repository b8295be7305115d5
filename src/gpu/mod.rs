//! The only module that talks to wgpu: adapter choice, the device with the adapter's own limits,
//! shaders and the pipeline cache, buffers, readback and submission.

mod adapter;
mod context;
mod dispatch;
mod shader;
mod tuning;

pub use adapter::{AdapterReport, describe_adapters};
pub use context::{AllocationScope, Gpu, GpuError};
pub use dispatch::{Binding, Dispatch, Readback, StagingPool};
pub use shader::{
    Kernel, MAX_WORKGROUPS_PER_DIM, ParamsLayout, Shader, expand_includes, grid_1d, params_layouts,
};
pub use tuning::{GemmVariant, KERNELS_ENV, SGD_GROUP, Tuning};
/// Buffers and submissions are handed around above `src/gpu`, never created or used there.
pub use wgpu::{Buffer, SubmissionIndex};

/// Environment variable that picks an adapter by a substring of its name or backend.
pub const ADAPTER_ENV: &str = "SFHEAD_ADAPTER";
