//! The engine: a graph of tensors and ops, autodiff that appends gradient nodes to the same graph,
//! a planner that shares activation buffers by lifetime, and an executor that records a whole
//! step into one submission.
//!
//! Layout convention: every tensor is contiguous row-major in the order of its shape; activations
//! of skeleton models are (B, C, T, V) with B = N·M (person m of sample n is row n·M + m).

mod autodiff;
mod executor;
mod graph;
mod op;
mod planner;
mod recorder;
mod store;

pub use autodiff::AutodiffError;
pub use executor::{CompileError, Executor, MemoryReport, PendingValues};
pub use graph::{DType, Data, Graph, Node, Role, TensorId, TensorInfo};
pub use op::{GradContext, Op};
pub use planner::{Plan, plan_activations};
pub use recorder::{Arg, DispatchSpec, Recorder};
pub use store::{Store, StoreError};
