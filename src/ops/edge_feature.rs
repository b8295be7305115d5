//! HD-GCN's EdgeConv feature (`get_graph_feature`), already in the (B, 2C, V, k) layout its 1×1
//! convolution reads: for x (B, C, V) and neighbour indices idx (B, V, k) u32 (from `knn` or a
//! fixed table), out[b, c, u, j] = x[b, c, idx[b,u,j]] − x[b, c, u] and out[b, C + c, u, j] =
//! x[b, c, u]. The gradient to x is a gather per element over the V·k index entries of its
//! sample, so it needs no atomics; the indices get none.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, DType, Data, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    channels: u32,
    nodes: u32,
    k: u32,
}

#[derive(Debug)]
struct EdgeFeature;

#[derive(Debug)]
struct EdgeFeatureGrad;

/// [x_nbr − x_ctr, x_ctr] (B, 2C, V, k) of `x` (B, C, V) over the neighbours `idx` (B, V, k).
pub fn edge_feature(g: &mut Graph, x: TensorId, idx: TensorId) -> TensorId {
    let (xs, is) = (g.shape(x).to_vec(), g.shape(idx).to_vec());
    assert_eq!(xs.len(), 3, "edge_feature: x must be (B, C, V), got {xs:?}");
    assert!(
        is.len() == 3 && is[0] == xs[0] && is[1] == xs[2],
        "edge_feature: idx must be (B, V, k) for x {xs:?}, got {is:?}"
    );
    let info = g.tensor(idx);
    assert_eq!(
        info.dtype,
        DType::U32,
        "edge_feature: idx `{}` must be u32",
        info.name
    );
    // A fixed table can be checked now; computed indices (`knn`) are < V by construction.
    if let Some(Data::U32(table)) = &info.init
        && let Some(at) = table.iter().position(|&w| w as usize >= xs[2])
    {
        panic!(
            "edge_feature: index {} at entry {at} of `{}` is not below V = {}",
            table[at], info.name, xs[2]
        );
    }
    let y = g.activation("edge_feature", &[xs[0], 2 * xs[1], xs[2], is[2]]);
    g.push(EdgeFeature, &[x, idx], &[y]);
    y
}

/// The uniform block for a dispatch writing `output`, with the sizes of x and idx.
fn params(rec: &Recorder<'_>, x: TensorId, idx: TensorId, output: TensorId) -> Params {
    let (xs, is) = (rec.shape(x), rec.shape(idx));
    Params {
        total: rec.numel(output) as u32,
        channels: xs[1] as u32,
        nodes: xs[2] as u32,
        k: is[2] as u32,
    }
}

impl Op for EdgeFeature {
    fn name(&self) -> &'static str {
        "edge_feature"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = params(rec, inputs[0], inputs[1], outputs[0]);
        rec.dispatch(
            Kernel::new(shader!("edge_feature"), "edge_forward"),
            &params,
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(params.total as usize),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        if !ctx.needs[0] {
            return Ok(vec![None, None]);
        }
        let gy = ctx.grads[0].expect("edge_feature has one output");
        let (x, idx) = (ctx.inputs[0], ctx.inputs[1]);
        let gx = g.activation_like("edge_feature_grad", x);
        g.push(EdgeFeatureGrad, &[idx, gy], &[gx]);
        Ok(vec![Some(gx), None])
    }
}

impl Op for EdgeFeatureGrad {
    fn name(&self) -> &'static str {
        "edge_feature_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        // g_x has the shape of x.
        let params = params(rec, outputs[0], inputs[0], outputs[0]);
        rec.dispatch(
            Kernel::new(shader!("edge_feature"), "edge_backward"),
            &params,
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(params.total as usize),
        );
    }
}

pub mod cpu {
    //! f64 references. x is (B, C, V) and idx (B, V, k) flattened; `dims` = (B, C, V, k).

    pub fn edge_feature(x: &[f64], idx: &[u32], dims: (usize, usize, usize, usize)) -> Vec<f64> {
        let (batch, channels, nodes, k) = dims;
        let xi = |b: usize, c: usize, v: usize| x[(b * channels + c) * nodes + v];
        let mut out = Vec::with_capacity(batch * 2 * channels * nodes * k);
        for b in 0..batch {
            for c2 in 0..2 * channels {
                for u in 0..nodes {
                    for j in 0..k {
                        let w = idx[(b * nodes + u) * k + j] as usize;
                        out.push(if c2 < channels {
                            xi(b, c2, w) - xi(b, c2, u)
                        } else {
                            xi(b, c2 - channels, u)
                        });
                    }
                }
            }
        }
        out
    }

    /// Gradient with respect to x for the output gradient `gy` (B, 2C, V, k): each output
    /// element scatters its gradient to the x entries it was made from.
    pub fn edge_feature_grad(
        idx: &[u32],
        gy: &[f64],
        dims: (usize, usize, usize, usize),
    ) -> Vec<f64> {
        let (batch, channels, nodes, k) = dims;
        let mut gx = vec![0.0; batch * channels * nodes];
        for b in 0..batch {
            for c in 0..channels {
                for u in 0..nodes {
                    for j in 0..k {
                        let w = idx[(b * nodes + u) * k + j] as usize;
                        let diff = gy[((b * 2 * channels + c) * nodes + u) * k + j];
                        let centre = gy[((b * 2 * channels + channels + c) * nodes + u) * k + j];
                        let row = (b * channels + c) * nodes;
                        gx[row + w] += diff;
                        gx[row + u] += centre - diff;
                    }
                }
            }
        }
        gx
    }
}
