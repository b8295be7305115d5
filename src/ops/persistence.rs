//! BlockGCN's persistent-homology input (`Topo` in `model/BlockGCN.py`): per sample, the joints
//! averaged over persons and frames, the V×V matrix D of distances between those mean joints
//! divided by its batch-global max (its min is the diagonal's 0), and the 0-dimensional
//! Vietoris–Rips persistence of the V rows of D as points in R^V. Every bar is born at 0 and dies
//! at an edge length of the Euclidean minimum spanning tree of the rows, so the result is the
//! V − 1 deaths, sorted ascending; the infinite bar is dropped, as pytorch-topological's
//! `VietorisRipsComplex` does by default.
//!
//! One invocation per sample builds D and runs Prim's algorithm serially (V ≤ 32 keeps D in
//! private memory), a second pass divides by the batch max. The input is data: the op has no
//! backward.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
use crate::shader;

/// The most joints per sample: the shader keeps a sample's MAX_JOINTS² distances in private
/// memory.
pub const MAX_JOINTS: usize = 32;

/// Invocations per workgroup of `ph_sample`, one sample each.
const SAMPLE_WG: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    samples: u32,
    channels: u32,
    frames: u32,
    joints: u32,
    persons: u32,
}

#[derive(Debug)]
struct MstDeaths;

/// The sorted MST deaths (N, V − 1) of the joints `x` (N, C, T, V, M), persons last as the
/// engine's batches hold them; 2 ≤ V ≤ [`MAX_JOINTS`].
pub fn mst_deaths(g: &mut Graph, x: TensorId) -> TensorId {
    let shape = g.shape(x).to_vec();
    assert!(
        shape.len() == 5 && shape.iter().all(|&d| d > 0),
        "mst_deaths needs non-empty (N, C, T, V, M) joints, got shape {shape:?}"
    );
    let (n, v) = (shape[0], shape[3]);
    assert!(
        (2..=MAX_JOINTS).contains(&v),
        "mst_deaths needs 2 to {MAX_JOINTS} joints, got V = {v} in shape {shape:?}"
    );
    assert!(
        u32::try_from(g.numel(x)).is_ok(),
        "mst_deaths: shape {shape:?} has too many elements for u32 indices"
    );
    let deaths = g.activation("mst_deaths", &[n, v - 1]);
    g.push(MstDeaths, &[x], &[deaths]);
    deaths
}

impl Op for MstDeaths {
    fn name(&self) -> &'static str {
        "mst_deaths"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let &[n, c, t, v, m] = rec.shape(inputs[0]) else {
            unreachable!("mst_deaths checked the shape")
        };
        let params = Params {
            samples: n as u32,
            channels: c as u32,
            frames: t as u32,
            joints: v as u32,
            persons: m as u32,
        };
        let raw = Arg::Scratch {
            slot: 1,
            bytes: 4 * (n * (v - 1)) as u64,
        };
        let maxima = Arg::Scratch {
            slot: 2,
            bytes: 4 * n as u64,
        };
        let kernel = |entry| Kernel::new(shader!("persistence"), entry);
        rec.dispatch(
            kernel("ph_sample"),
            &params,
            vec![arg(inputs[0]), raw.clone(), maxima.clone()],
            grid_1d(n.div_ceil(SAMPLE_WG) as u32),
        );
        rec.dispatch(
            kernel("ph_normalise"),
            &params,
            vec![raw, maxima, arg(outputs[0])],
            elementwise_grid(n * (v - 1)),
        );
    }

    fn backward(
        &self,
        _: &mut Graph,
        _: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        Err(AutodiffError::NotDifferentiable(
            "mst_deaths (its joints are data)",
        ))
    }
}

pub mod cpu {
    //! f64 reference following BlockGCN's `Topo.forward` step by step on (N, C, T, V, M) joints.

    /// Sorted MST deaths (N rows of V − 1) of the row points of each sample's normalised D.
    pub fn mst_deaths(x: &[f64], shape: [usize; 5]) -> Vec<Vec<f64>> {
        let [n_len, c_len, t_len, v_len, m_len] = shape;
        let at = |n, c, t, v, m| (((n * c_len + c) * t_len + t) * v_len + v) * m_len + m;
        // x.mean(1) over persons, then x.unsqueeze(-1) − x.unsqueeze(-2) and its mean over
        // frames, then the norm over channels.
        let d: Vec<Vec<f64>> = (0..n_len)
            .map(|n| {
                let person_mean =
                    |c, t, v| (0..m_len).map(|m| x[at(n, c, t, v, m)]).sum::<f64>() / m_len as f64;
                let mut d = vec![0.0; v_len * v_len];
                for a in 0..v_len {
                    for b in 0..v_len {
                        let squares: f64 = (0..c_len)
                            .map(|c| {
                                let diff = (0..t_len)
                                    .map(|t| person_mean(c, t, a) - person_mean(c, t, b))
                                    .sum::<f64>()
                                    / t_len as f64;
                                diff * diff
                            })
                            .sum();
                        d[a * v_len + b] = squares.sqrt();
                    }
                }
                d
            })
            .collect();
        let all = || d.iter().flatten().copied();
        let (lo, hi) = (
            all().fold(f64::INFINITY, f64::min),
            all().fold(0.0, f64::max),
        );
        d.iter()
            .map(|d| {
                let rows: Vec<Vec<f64>> = d
                    .chunks(v_len)
                    .map(|row| row.iter().map(|&e| (e - lo) / (hi - lo)).collect())
                    .collect();
                let mut deaths = prim(&rows);
                deaths.sort_by(f64::total_cmp);
                deaths
            })
            .collect()
    }

    /// Edge lengths of the Euclidean minimum spanning tree of `points`, in the order Prim's
    /// algorithm adds them from point 0.
    fn prim(points: &[Vec<f64>]) -> Vec<f64> {
        let dist = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                .sqrt()
        };
        let mut key: Vec<f64> = points.iter().map(|p| dist(&points[0], p)).collect();
        let mut in_tree = vec![false; points.len()];
        in_tree[0] = true;
        let mut edges = Vec::with_capacity(points.len() - 1);
        for _ in 1..points.len() {
            let next = (0..points.len())
                .filter(|&v| !in_tree[v])
                .min_by(|&a, &b| key[a].total_cmp(&key[b]))
                .expect("a point is left outside the tree");
            in_tree[next] = true;
            edges.push(key[next]);
            for v in 0..points.len() {
                if !in_tree[v] {
                    key[v] = key[v].min(dist(&points[next], &points[v]));
                }
            }
        }
        edges
    }
}
