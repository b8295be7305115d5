//! Static buffer plan. Activations are written once per step, so each has a lifetime from the
//! node that writes it to the last node that reads it. Walking the nodes in order, each output
//! takes the best-fitting free slot (the smallest one large enough, else the largest free slot,
//! grown), and a slot returns to the free list once the last reader of its tensor has run. A
//! node's outputs never share a slot with its own inputs, because inputs are released only after
//! the node. Kept tensors (read back by the host) are never released.

use super::graph::{Graph, Role, TensorId};

/// Which nodes run, and which buffer slot each activation lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indices of the nodes that run, in order: nodes whose outputs nothing needs are pruned
    /// unless they have side effects.
    pub live_nodes: Vec<usize>,
    /// Slot of each tensor, indexed by tensor id; `None` for non-activations and dead tensors.
    pub slot_of: Vec<Option<usize>>,
    /// The tensor whose memory each tensor uses: itself, or for a view the tensor it views.
    pub root_of: Vec<TensorId>,
    /// Size in bytes of each slot: the largest tensor it ever holds.
    pub slot_bytes: Vec<u64>,
    /// Bytes the activations would take with one buffer each.
    pub unshared_bytes: u64,
}

impl Plan {
    /// Bytes of all activation slots together: the activation memory of a step.
    pub fn peak_bytes(&self) -> u64 {
        self.slot_bytes.iter().sum()
    }
}

fn live_nodes(graph: &Graph, keep: &[TensorId]) -> Vec<usize> {
    let tensor_count = graph.tensors().count();
    let mut needed = vec![false; tensor_count];
    for t in keep {
        needed[t.index()] = true;
    }
    let mut live = Vec::new();
    for (i, node) in graph.nodes().iter().enumerate().rev() {
        if node.op.has_side_effects() || node.outputs.iter().any(|t| needed[t.index()]) {
            live.push(i);
            for t in &node.inputs {
                needed[t.index()] = true;
            }
        }
    }
    live.reverse();
    live
}

/// Plans the activation buffers of `graph` so that the tensors in `keep` survive the step.
pub fn plan_activations(graph: &Graph, keep: &[TensorId]) -> Plan {
    let live = live_nodes(graph, keep);
    let tensor_count = graph.tensors().count();
    let mut root_of: Vec<TensorId> = (0..tensor_count).map(TensorId).collect();
    for &i in &live {
        let node = &graph.nodes()[i];
        if let Some(k) = node.op.view_of() {
            root_of[node.outputs[0].index()] = root_of[node.inputs[k].index()];
        }
    }
    let is_planned =
        |t: TensorId| graph.tensor(t).role == Role::Activation && root_of[t.index()] == t;

    // Position (in `live`) of the last node using each buffer, through any view of it; kept
    // tensors never die.
    let mut last_use = vec![0usize; tensor_count];
    for (pos, &i) in live.iter().enumerate() {
        let node = &graph.nodes()[i];
        for &t in node.inputs.iter().chain(&node.outputs) {
            let root = root_of[t.index()].index();
            last_use[root] = last_use[root].max(pos);
        }
    }
    for t in keep {
        last_use[root_of[t.index()].index()] = usize::MAX;
    }
    let mut dying_after: Vec<Vec<TensorId>> = vec![Vec::new(); live.len()];
    for (id, _) in graph.tensors().filter(|&(id, _)| is_planned(id)) {
        if let Some(list) = dying_after.get_mut(last_use[id.index()]) {
            list.push(id);
        }
    }

    let mut slot_of = vec![None; tensor_count];
    let mut slot_bytes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut unshared_bytes = 0;
    for (pos, &i) in live.iter().enumerate() {
        for &t in graph.nodes()[i].outputs.iter().filter(|&&t| is_planned(t)) {
            let bytes = graph.tensor(t).bytes();
            unshared_bytes += bytes;
            let fitting = free
                .iter()
                .enumerate()
                .filter(|&(_, &s)| slot_bytes[s] >= bytes)
                .min_by_key(|&(_, &s)| slot_bytes[s]);
            let largest = free.iter().enumerate().max_by_key(|&(_, &s)| slot_bytes[s]);
            let slot = match fitting.or(largest) {
                Some((k, &s)) => {
                    free.swap_remove(k);
                    slot_bytes[s] = slot_bytes[s].max(bytes);
                    s
                }
                None => {
                    slot_bytes.push(bytes);
                    slot_bytes.len() - 1
                }
            };
            slot_of[t.index()] = Some(slot);
        }
        for t in &dying_after[pos] {
            if let Some(s) = slot_of[t.index()] {
                free.push(s);
            }
        }
    }
    for t in 0..tensor_count {
        slot_of[t] = slot_of[root_of[t].index()];
    }
    Plan {
        live_nodes: live,
        slot_of,
        root_of,
        slot_bytes,
        unshared_bytes,
    }
}
