//! The only module that talks to wgpu: adapter choice, the device with the adapter's own limits,
//! shaders and the pipeline cache, buffers, readback and submission.

mod adapter;
mod context;
mod shader;
mod tuning;

pub use adapter::{AdapterReport, describe_adapters};
pub use context::{Gpu, GpuError};
pub use shader::{Kernel, Shader, expand_includes, grid_1d};
pub use tuning::{GemmVariant, KERNELS_ENV, Tuning};

/// Environment variable that picks an adapter by a substring of its name or backend.
pub const ADAPTER_ENV: &str = "SFHEAD_ADAPTER";
