//! The pooling step of SF-Head's AC-FA gates: x (R, Q, T, V) reduced along one axis to the
//! two-channel map Z (R, 2, H, W) = [max, mean] over that axis, laid out as the plane the gate's
//! 7×7 convolution sees. The backward recomputes each line's argmax (first index on ties) and
//! gathers, so no index tensor is stored: g_x = (g_Z[0] at the argmax, else 0) + g_Z[1] / L.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// The axis of x (R, Q, T, V) that a gate pools, which fixes the plane (H, W) of Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PooledAxis {
    /// Pools the channels k: plane (T, V) indexed [t, v] (gate `tv`).
    Channel,
    /// Pools the frames t: plane (Q, V) indexed [k, v] (gate `cv`).
    Time,
    /// Pools the joints v: plane (T, Q) indexed [t, k], rows frames and columns channels
    /// (gate `tc`).
    Joint,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    item: u32,
    height: u32,
    width: u32,
    length: u32,
    h_stride: u32,
    w_stride: u32,
    l_stride: u32,
}

impl Params {
    /// For x of `shape`; `total` is the invocation count of the entry.
    fn new(shape: &[usize], axis: PooledAxis, total: usize) -> Self {
        let [_, q, t, v] = shape.try_into().expect("(R, Q, T, V)");
        // (size, stride in x) of the plane's rows, its columns and the pooled line.
        let (rows, cols, line) = match axis {
            PooledAxis::Channel => ((t, v), (v, 1), (q, t * v)),
            PooledAxis::Time => ((q, t * v), (v, 1), (t, v)),
            PooledAxis::Joint => ((t, v), (q, t * v), (v, 1)),
        };
        Self {
            total: total as u32,
            item: (q * t * v) as u32,
            height: rows.0 as u32,
            width: cols.0 as u32,
            length: line.0 as u32,
            h_stride: rows.1 as u32,
            w_stride: cols.1 as u32,
            l_stride: line.1 as u32,
        }
    }
}

#[derive(Debug)]
struct PlanePool {
    axis: PooledAxis,
}

#[derive(Debug)]
struct PlanePoolGrad {
    axis: PooledAxis,
}

/// Z (R, 2, H, W): channel 0 the max and channel 1 the mean of `x` (R, Q, T, V) over `axis`,
/// on the plane that [`PooledAxis`] names.
pub fn plane_pool(g: &mut Graph, x: TensorId, axis: PooledAxis) -> TensorId {
    let xs = g.shape(x).to_vec();
    assert_eq!(
        xs.len(),
        4,
        "plane pool input must be (R, Q, T, V), got {xs:?}"
    );
    assert!(
        xs.iter().all(|&d| d > 0),
        "plane pool input has an empty axis: {xs:?}"
    );
    let p = Params::new(&xs, axis, 0);
    let z = g.activation(
        "plane_pool",
        &[xs[0], 2, p.height as usize, p.width as usize],
    );
    g.push(PlanePool { axis }, &[x], &[z]);
    z
}

impl Op for PlanePool {
    fn name(&self) -> &'static str {
        "plane_pool"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let planes = rec.numel(outputs[0]) / 2;
        let params = Params::new(rec.shape(inputs[0]), self.axis, planes);
        rec.dispatch(
            Kernel::new(shader!("plane_pool"), "pool_forward"),
            &params,
            vec![arg(inputs[0]), arg(outputs[0])],
            elementwise_grid(planes),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gz = ctx.grads[0].expect("plane pool has one output");
        let x = ctx.inputs[0];
        let gx = g.activation_like("plane_pool_grad", x);
        g.push(PlanePoolGrad { axis: self.axis }, &[x, gz], &[gx]);
        Ok(vec![Some(gx)])
    }
}

impl Op for PlanePoolGrad {
    fn name(&self) -> &'static str {
        "plane_pool_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        // One invocation per line: the plane elements of the pooled map.
        let lines = rec.numel(inputs[1]) / 2;
        let params = Params::new(rec.shape(inputs[0]), self.axis, lines);
        rec.dispatch(
            Kernel::new(shader!("plane_pool"), "pool_backward"),
            &params,
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(lines),
        );
    }
}

pub mod cpu {
    //! f64 references on x (R, Q, T, V) flattened. The backward scatters each plane element's
    //! gradients to its line, the definition, independently of the GPU's gather.

    use super::PooledAxis;

    /// Plane (H, W) of `axis` for (Q, T, V).
    fn plane(axis: PooledAxis, (q, t, v): (usize, usize, usize)) -> (usize, usize) {
        match axis {
            PooledAxis::Channel => (t, v),
            PooledAxis::Time => (q, v),
            PooledAxis::Joint => (t, q),
        }
    }

    /// Plane position (h, w) and line index l of x[·, k, t, v].
    fn locate(axis: PooledAxis, k: usize, t: usize, v: usize) -> ((usize, usize), usize) {
        match axis {
            PooledAxis::Channel => ((t, v), k),
            PooledAxis::Time => ((k, v), t),
            PooledAxis::Joint => ((t, k), v),
        }
    }

    /// The lines of each item: for every plane element (row-major), the offsets in x of its
    /// line in pooled-axis order.
    fn lines(shape: [usize; 4], axis: PooledAxis) -> Vec<Vec<usize>> {
        let [_, q, t, v] = shape;
        let (rows, width) = plane(axis, (q, t, v));
        let mut lines = vec![Vec::new(); rows * width];
        for k in 0..q {
            for f in 0..t {
                for j in 0..v {
                    let ((h, w), _) = locate(axis, k, f, j);
                    lines[h * width + w].push((k * t + f) * v + j);
                }
            }
        }
        lines
    }

    /// Z (R, 2, H, W) = [max, mean] over `axis`.
    pub fn forward(x: &[f64], shape: [usize; 4], axis: PooledAxis) -> Vec<f64> {
        let item = shape[1] * shape[2] * shape[3];
        let lines = lines(shape, axis);
        let mut z = Vec::with_capacity(shape[0] * 2 * lines.len());
        for r in 0..shape[0] {
            let values =
                |line: &Vec<usize>| line.iter().map(|&o| x[r * item + o]).collect::<Vec<_>>();
            z.extend(
                lines
                    .iter()
                    .map(|l| values(l).into_iter().fold(f64::MIN, f64::max)),
            );
            z.extend(
                lines
                    .iter()
                    .map(|l| values(l).iter().sum::<f64>() / l.len() as f64),
            );
        }
        z
    }

    /// Gradient of `forward` at `x` for the gradient `gz` of Z.
    pub fn backward(x: &[f64], gz: &[f64], shape: [usize; 4], axis: PooledAxis) -> Vec<f64> {
        let item = shape[1] * shape[2] * shape[3];
        let lines = lines(shape, axis);
        let plane = lines.len();
        let mut gx = vec![0.0; x.len()];
        for r in 0..shape[0] {
            for (at, line) in lines.iter().enumerate() {
                let max = line
                    .iter()
                    .map(|&o| x[r * item + o])
                    .fold(f64::MIN, f64::max);
                let first = line
                    .iter()
                    .find(|&&o| x[r * item + o] == max)
                    .expect("a line");
                gx[r * item + first] += gz[2 * r * plane + at];
                for &o in line {
                    gx[r * item + o] += gz[(2 * r + 1) * plane + at] / line.len() as f64;
                }
            }
        }
        gx
    }
}
