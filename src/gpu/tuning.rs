//! Kernel variants chosen per adapter: what suits a GPU (workgroup-memory tiles) slows a CPU
//! driver, where every barrier switches between all invocations of a workgroup.

use super::Kernel;

/// Environment variable that forces the kernel variants: `gpu` (workgroup-memory tiles, parallel
/// trees) or `cpu` (direct loads, serial trees).
pub const KERNELS_ENV: &str = "SFHEAD_KERNELS";

/// How the GEMM reads its operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmVariant {
    /// k-tiles staged in workgroup memory between barriers.
    Tiled,
    /// Straight from storage, no workgroup memory.
    Direct,
}

/// The variants of the kernels that have more than one. Every variant adds in the same order,
/// so the choice never changes a result, only its speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    pub gemm: GemmVariant,
    /// Reduction trees summed by one invocation after a single barrier.
    pub serial_trees: bool,
    /// Invocations of a tree reduction's workgroup, each playing 256 / `tree_lanes` of the
    /// tree's 256 lanes (`shaders/lib/tree_sum.wgsl`): 256 on GPUs; on CPU drivers one SIMD
    /// group, so that a barrier does not switch between 32 of them.
    pub tree_lanes: u32,
    /// SGD updates up to [`SGD_GROUP`] parameters per dispatch (needs 3·SGD_GROUP + 1 storage
    /// buffers per shader stage) instead of one per dispatch.
    pub grouped_sgd: bool,
    /// A training BatchNorm of short channels is one dispatch each way (needs
    /// [`SINGLE_DISPATCH_BN_BUFFERS`] storage buffers per shader stage) instead of two or more.
    pub single_dispatch_bn: bool,
    /// Broadcasts (`expand`, `broadcast_mul`), permutations and the temporal max-pool and
    /// subsampling write a contiguous row per invocation, its source index found once per row,
    /// instead of one element per invocation:
    /// an integer division per element is costly on CPU drivers, while GPUs want neighbouring
    /// lanes on neighbouring elements.
    pub row_invocations: bool,
    /// Elements per invocation of the elementwise kernels (`shaders/lib/elementwise.wgsl`): 1
    /// on GPUs; 8 on CPU drivers, where every workgroup costs a fixed setup and eight elements
    /// per invocation halve the time of a product or a sum.
    pub elementwise_span: u32,
}

/// Storage buffers of the single-dispatch BatchNorm kernels (`shaders/batch_norm_stats.wgsl`).
pub const SINGLE_DISPATCH_BN_BUFFERS: u32 = 9;

/// Parameters one grouped SGD dispatch updates; 8 needs 25 storage buffers per stage, which
/// Vulkan, Metal (31) and DX12 adapters offer.
pub const SGD_GROUP: usize = 8;

impl Tuning {
    /// For GPUs: tiles in workgroup memory and parallel trees.
    pub const GPU: Self = Self {
        gemm: GemmVariant::Tiled,
        serial_trees: false,
        tree_lanes: 256,
        grouped_sgd: true,
        single_dispatch_bn: true,
        row_invocations: false,
        elementwise_span: 1,
    };
    /// For CPU drivers: direct loads and serial trees.
    pub const CPU: Self = Self {
        gemm: GemmVariant::Direct,
        serial_trees: true,
        tree_lanes: 8,
        grouped_sgd: true,
        single_dispatch_bn: true,
        row_invocations: true,
        elementwise_span: 8,
    };

    /// `kernel`, a tree reduction entry with `@workgroup_size(TREE_LANES)`, with the tree's
    /// constants.
    pub fn tree(&self, kernel: Kernel) -> Kernel {
        kernel
            .with("SERIAL_TREE", self.serial_trees)
            .with("TREE_LANES", self.tree_lanes)
    }

    /// The CPU variants on CPU adapters, the GPU ones elsewhere; `SFHEAD_KERNELS` overrides.
    /// Grouped SGD and single-dispatch BatchNorm where the adapter binds enough storage buffers
    /// per stage.
    pub fn for_adapter(device_type: wgpu::DeviceType, storage_buffers_per_stage: u32) -> Self {
        let base = match std::env::var(KERNELS_ENV).as_deref() {
            Ok("gpu") => Self::GPU,
            Ok("cpu") => Self::CPU,
            _ if device_type == wgpu::DeviceType::Cpu => Self::CPU,
            _ => Self::GPU,
        };
        Self {
            grouped_sgd: storage_buffers_per_stage as usize > 3 * SGD_GROUP,
            single_dispatch_bn: storage_buffers_per_stage >= SINGLE_DISPATCH_BN_BUFFERS,
            ..base
        }
    }
}
