//! k nearest neighbours in feature space, HD-GCN's `EdgeConv.knn`: for x (B, C, V), the indices
//! (B, V, k) u32 of the k nodes w with the largest −‖x_u − x_w‖², computed as the official code does
//! (2·Σ_c x_u·x_w − Σ_c x_u² − Σ_c x_w²), in descending order of that value. A tie goes to the
//! lower index (PyTorch's `topk` leaves the order of ties unspecified). u itself is at distance 0,
//! so it is usually its own first neighbour. No gradient flows through indices; x gets its
//! gradient through what reads them (`edge_feature`).

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// The most nodes per sample: each invocation keeps one score per node in private memory.
pub const MAX_NODES: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    nodes: u32,
    k: u32,
}

#[derive(Debug)]
struct Knn {
    k: usize,
}

/// Indices (B, V, k) u32 of the `k` nearest nodes of every node of `x` (B, C, V), nearest first.
pub fn knn(g: &mut Graph, x: TensorId, k: usize) -> TensorId {
    let xs = g.shape(x).to_vec();
    assert_eq!(xs.len(), 3, "knn input must be (B, C, V), got {xs:?}");
    assert!(
        xs[2] <= MAX_NODES,
        "knn supports at most {MAX_NODES} nodes, got {xs:?}"
    );
    assert!(
        (1..=xs[2]).contains(&k),
        "knn needs 1 ≤ k ≤ V, got k = {k} for {xs:?}"
    );
    let idx = g.activation_u32("knn", &[xs[0], xs[2], k]);
    g.push(Knn { k }, &[x], &[idx]);
    idx
}

impl Op for Knn {
    fn name(&self) -> &'static str {
        "knn"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let xs = rec.shape(inputs[0]);
        let params = Params {
            rows: (xs[0] * xs[2]) as u32,
            channels: xs[1] as u32,
            nodes: xs[2] as u32,
            k: self.k as u32,
        };
        rec.dispatch(
            Kernel::new(shader!("knn"), "knn_forward"),
            &params,
            vec![arg(inputs[0]), arg(outputs[0])],
            elementwise_grid(params.rows as usize),
        );
    }

    /// Indices are piecewise constant in x: no gradient.
    fn backward(
        &self,
        _g: &mut Graph,
        _ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        Ok(vec![None])
    }
}

pub mod cpu {
    /// `x` is (B, C, V) flattened; returns (B, V, k): per (b, u) the nodes w sorted by
    /// ‖x_u − x_w‖² ascending, ties by index, the first `k` kept.
    pub fn knn(x: &[f64], (batch, channels, nodes): (usize, usize, usize), k: usize) -> Vec<u32> {
        assert_eq!(x.len(), batch * channels * nodes, "knn: x is not (B, C, V)");
        let at = |b: usize, c: usize, v: usize| x[(b * channels + c) * nodes + v];
        let mut idx = Vec::with_capacity(batch * nodes * k);
        for b in 0..batch {
            for u in 0..nodes {
                let dist: Vec<f64> = (0..nodes)
                    .map(|w| {
                        (0..channels)
                            .map(|c| (at(b, c, u) - at(b, c, w)).powi(2))
                            .sum()
                    })
                    .collect();
                let mut order: Vec<usize> = (0..nodes).collect();
                // A stable sort keeps equal distances in ascending index.
                order.sort_by(|&a, &b| dist[a].total_cmp(&dist[b]));
                idx.extend(order[..k].iter().map(|&w| w as u32));
            }
        }
        idx
    }
}
