use std::fmt::Debug;

use super::autodiff::AutodiffError;
use super::graph::{Graph, TensorId};
use super::recorder::Recorder;

/// What an op's backward rule sees: the node's tensors, the gradients arriving at its outputs,
/// and which inputs need a gradient at all.
pub struct GradContext<'a> {
    pub inputs: &'a [TensorId],
    pub outputs: &'a [TensorId],
    /// Gradient of the loss with respect to each output (`None`: the output does not reach it).
    pub grads: &'a [Option<TensorId>],
    /// Whether each input needs a gradient; rules skip the work for the others.
    pub needs: &'a [bool],
}

/// An operation of the graph: how to record its GPU dispatches and how to differentiate it.
///
/// Contract of `backward`: it appends to the graph the nodes that compute the gradient of every
/// needed input, and **every returned gradient is multiplied by the incoming gradient** of the
/// outputs, also for losses (a loss is often scaled or summed with others). A rule that is not
/// exact returns an error instead of an approximation.
pub trait Op: Debug {
    /// Short name used in plans, labels and profiles.
    fn name(&self) -> &'static str;

    /// Appends this node's dispatches to the step.
    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]);

    /// Appends the gradient nodes and returns one gradient per input (`None` where not needed).
    fn backward(
        &self,
        graph: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let _ = (graph, ctx);
        Err(AutodiffError::NotDifferentiable(self.name()))
    }

    /// Whether the node writes persistent tensors in place (it then always runs, even when
    /// none of its outputs is used).
    fn has_side_effects(&self) -> bool {
        false
    }

    /// `Some(k)` if the node's single output is a view of input `k`: the same memory under
    /// another shape. The planner gives it the input's buffer and records no dispatch for it.
    fn view_of(&self) -> Option<usize> {
        None
    }
}
