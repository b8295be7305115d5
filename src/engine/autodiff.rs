//! Reverse-mode differentiation by graph rewriting: `backward` walks the forward nodes in reverse
//! and appends each op's gradient nodes to the same graph, so one planner and one executor serve
//! both passes. Gradients arriving at a tensor from several consumers are summed by one `sum`
//! node, in the order they arrive, once the tensor's producer is reached (or at the end).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::graph::{Graph, TensorId};
use super::op::GradContext;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AutodiffError {
    #[error("op `{0}` has no backward rule")]
    NotDifferentiable(&'static str),
    #[error("the loss `{0}` does not depend on any differentiated tensor")]
    LossUnreachable(String),
    #[error("the loss does not depend on `{0}`")]
    NoGradient(String),
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Graph {
    /// Appends the nodes computing d`loss`/d`t` for each `t` in `wrt`; returns those gradients in
    /// the same order. A tensor that `loss` does not depend on is an error.
    pub fn backward(
        &mut self,
        loss: TensorId,
        wrt: &[TensorId],
    ) -> Result<Vec<TensorId>, AutodiffError> {
        let grads = self.backward_partial(loss, wrt)?;
        wrt.iter()
            .zip(grads)
            .map(|(t, grad)| {
                grad.ok_or_else(|| AutodiffError::NoGradient(self.tensor(*t).name.clone()))
            })
            .collect()
    }

    /// As [`Graph::backward`], with `None` for the tensors `loss` does not depend on (a
    /// declared but unused parameter, which PyTorch's optimisers also leave untouched). A
    /// packed parameter's gradient is its part of its pack's.
    pub fn backward_partial(
        &mut self,
        loss: TensorId,
        wrt: &[TensorId],
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let forward_nodes = self.nodes().len();
        let mut requires = vec![false; self.tensors().count()];
        for &t in wrt {
            requires[self.memory_of(t).index()] = true;
        }
        for node in self.nodes() {
            if node.inputs.iter().any(|t| requires[t.index()]) {
                for t in &node.outputs {
                    requires[t.index()] = true;
                }
            }
        }
        if !requires[loss.index()] {
            return Err(AutodiffError::LossUnreachable(
                self.tensor(loss).name.clone(),
            ));
        }

        let seed_shape = self.shape(loss).to_vec();
        let seed = self.constant("autodiff.seed", &seed_shape, vec![1.0; self.numel(loss)]);
        let mut grads: HashMap<TensorId, Vec<TensorId>> = HashMap::from([(loss, vec![seed])]);

        for index in (0..forward_nodes).rev() {
            let node = self.nodes()[index].clone();
            let out_grads: Vec<_> = node
                .outputs
                .iter()
                .map(|t| self.summed_grad(&mut grads, *t))
                .collect();
            let needs: Vec<_> = node.inputs.iter().map(|t| requires[t.index()]).collect();
            if out_grads.iter().all(Option::is_none) || !needs.contains(&true) {
                continue;
            }
            let ctx = GradContext {
                inputs: &node.inputs,
                outputs: &node.outputs,
                grads: &out_grads,
                needs: &needs,
            };
            let in_grads = node.op.backward(self, &ctx)?;
            assert_eq!(
                in_grads.len(),
                node.inputs.len(),
                "backward of `{}` returned the wrong number of gradients",
                node.op.name()
            );
            for ((&input, grad), need) in node.inputs.iter().zip(in_grads).zip(needs) {
                let Some(grad) = grad.filter(|_| need) else {
                    continue;
                };
                assert_eq!(
                    self.shape(grad),
                    self.shape(input),
                    "backward of `{}` gave a gradient of the wrong shape for `{}`",
                    node.op.name(),
                    self.tensor(input).name
                );
                grads.entry(input).or_default().push(grad);
            }
        }
        // Each pack's gradient is cut into its members' parts once, for all of them.
        let mut member_grads: HashMap<TensorId, HashMap<TensorId, TensorId>> = HashMap::new();
        Ok(wrt
            .iter()
            .map(|&t| match self.tensor(t).packed {
                None => self.summed_grad(&mut grads, t),
                Some(packed) => {
                    let parts = match member_grads.entry(packed.pack) {
                        Entry::Occupied(parts) => parts.into_mut(),
                        Entry::Vacant(slot) => {
                            let whole = self.summed_grad(&mut grads, packed.pack)?;
                            let members = self.members(packed.pack);
                            let parts = self.unpack(whole, &members);
                            slot.insert(members.into_iter().zip(parts).collect())
                        }
                    };
                    Some(parts[&t])
                }
            })
            .collect())
    }

    /// The tensor whose memory holds `t`: its pack where it is packed.
    fn memory_of(&self, t: TensorId) -> TensorId {
        self.tensor(t).packed.map_or(t, |p| p.pack)
    }

    /// The members of `pack` in their order in it.
    pub fn members(&self, pack: TensorId) -> Vec<TensorId> {
        let mut members: Vec<(usize, TensorId)> = self
            .tensors()
            .filter_map(|(id, t)| t.packed.filter(|p| p.pack == pack).map(|p| (p.offset, id)))
            .collect();
        members.sort_unstable();
        members.into_iter().map(|(_, id)| id).collect()
    }

    /// `whole` (a pack's gradient) cut into tensors shaped as the pack's `members`: one split
    /// of rows as long as the members' sizes allow.
    pub fn unpack(&mut self, whole: TensorId, members: &[TensorId]) -> Vec<TensorId> {
        use crate::ops::{concat::split, reshape::reshape};
        let sizes: Vec<usize> = members.iter().map(|&m| self.numel(m)).collect();
        let row = sizes.iter().fold(0, |a, &b| gcd(a, b));
        let rows = reshape(self, whole, &[1, self.numel(whole) / row, row]);
        let widths: Vec<usize> = sizes.iter().map(|n| n / row).collect();
        let parts = split(self, rows, &widths);
        parts
            .into_iter()
            .zip(members)
            .map(|(part, &m)| {
                let shape = self.shape(m).to_vec();
                reshape(self, part, &shape)
            })
            .collect()
    }

    /// The gradient of `t`: its contributions summed, and kept as the single one.
    fn summed_grad(
        &mut self,
        grads: &mut HashMap<TensorId, Vec<TensorId>>,
        t: TensorId,
    ) -> Option<TensorId> {
        let terms = grads.get_mut(&t)?;
        if terms.len() > 1 {
            let total = crate::ops::add::sum_of(self, terms);
            *terms = vec![total];
        }
        Some(terms[0])
    }
}
