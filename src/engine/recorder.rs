use bytemuck::NoUninit;

use super::graph::{Graph, TensorId};
use crate::gpu::{Kernel, Tuning};

/// A buffer bound to a dispatch.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A tensor of the graph, bound over exactly its bytes.
    Tensor(TensorId),
    /// Temporary memory private to one node (reduction partials). Slot `k` of every node shares
    /// one buffer, sized for the largest request.
    Scratch { slot: usize, bytes: u64 },
}

/// One dispatch of a step, as data: which kernel, its uniform parameters, its buffers and grid.
/// Binding 0 is the uniform parameter block; the args follow at bindings 1, 2, ...
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchSpec {
    pub label: String,
    pub kernel: Kernel,
    pub params: Vec<u8>,
    pub args: Vec<Arg>,
    pub workgroups: [u32; 3],
}

/// Collects the dispatches of the nodes of a graph.
pub struct Recorder<'a> {
    graph: &'a Graph,
    tuning: Tuning,
    label: String,
    specs: Vec<DispatchSpec>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(graph: &'a Graph, tuning: Tuning) -> Self {
        Self {
            graph,
            tuning,
            label: String::new(),
            specs: Vec::new(),
        }
    }

    pub(crate) fn set_node(&mut self, label: String) {
        self.label = label;
    }

    pub(crate) fn finish(self) -> Vec<DispatchSpec> {
        self.specs
    }

    pub fn graph(&self) -> &Graph {
        self.graph
    }

    /// The kernel variants of the adapter the step is recorded for.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        self.graph.shape(t)
    }

    pub fn numel(&self, t: TensorId) -> usize {
        self.graph.numel(t)
    }

    pub fn dispatch(
        &mut self,
        kernel: Kernel,
        params: &impl NoUninit,
        args: Vec<Arg>,
        workgroups: [u32; 3],
    ) {
        self.specs.push(DispatchSpec {
            label: format!("{}:{}", self.label, kernel.entry),
            kernel,
            params: bytemuck::bytes_of(params).to_vec(),
            args,
            workgroups,
        });
    }
}
