//! The tiled GEMM kernel (`shaders/gemm.wgsl`) as an op of the graph. Matmul, 1×1 convolution
//! and Linear describe their forward and backward products with [`Gemm`]; the NN, NT and TN
//! layouts are the `trans` flags of the operands.

use bytemuck::{Pod, Zeroable};

use super::arg;
use super::reduce::record_split_sum;
use crate::engine::{Arg, Graph, Op, Recorder, TensorId};
use crate::gpu::{GemmVariant, Kernel, MAX_WORKGROUPS_PER_DIM, Shader};
use crate::shader;

/// Rows and columns of C computed by one workgroup.
const TILE: usize = 64;
/// Depth of one k-tile.
pub(super) const K_TILE: usize = 16;
/// Enough workgroups to fill a large GPU; below this a single product is split along k.
const TARGET_WORKGROUPS: usize = 512;
/// Least k-tiles per split, so a split does real work.
const MIN_TILES_PER_SPLIT: usize = 4;
/// Iterations (summed product, k-tile) from which one of several products is split along k.
const DEEP_PRODUCT: usize = 32;
/// Ceiling on the scratch of split-K partial products.
const MAX_PARTIAL_BYTES: usize = 64 << 20;

/// How one operand is laid out in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operand {
    /// Stored transposed: A as k×m, B as n×k.
    pub trans: bool,
    /// Leading dimension (elements between consecutive stored rows).
    pub ld: usize,
    /// Elements between consecutive independent products at each nesting level (see
    /// [`Gemm::nest`]).
    pub batch: [usize; 3],
    /// Elements between consecutive summed products.
    pub kb_stride: usize,
}

impl Operand {
    /// One matrix shared by every product.
    pub fn rows(trans: bool, ld: usize) -> Self {
        Self::batched(trans, ld, 0)
    }

    /// Consecutive products `stride` elements apart.
    pub fn batched(trans: bool, ld: usize, stride: usize) -> Self {
        Self {
            trans,
            ld,
            batch: [stride, 0, 0],
            kb_stride: 0,
        }
    }
}

/// [`Gemm::nest`] of products that are simply consecutive: every z is at level 0.
pub const FLAT: [usize; 2] = [u32::MAX as usize, 1];

/// [`Gemm::nest`] of products in two levels, `inner` of level 0 to each of level 1:
/// z = z1·inner + z0.
pub const fn nested_by(inner: usize) -> [usize; 2] {
    [inner, u32::MAX as usize]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bias {
    None,
    /// bias[i] added to row i of C (an output channel of a 1×1 conv).
    PerRow,
    /// bias[j] added to column j of C (an output feature of Linear).
    PerColumn,
}

/// C[z] = Σ_kb A[z, kb]·B[z, kb] (+ bias) for `products` independent products z.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Products summed into each C (the batch axis of a weight gradient); at least 1.
    pub kb: usize,
    /// Independent products (grid z); at least 1.
    pub products: usize,
    /// Sizes n0, n1 of the two inner nesting levels of the products: z = (z2·n1 + z1)·n0 + z0,
    /// each operand stepping `batch[l]` per unit of level l. [`FLAT`] where they do not nest.
    pub nest: [usize; 2],
    pub a: Operand,
    pub b: Operand,
    pub ldc: usize,
    /// Strides of C over the nesting levels.
    pub c_batch: [usize; 3],
    pub bias: Bias,
    /// Elements between the biases of consecutive z0 (a grouped convolution's groups).
    pub bias_batch: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    kb: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    splits: u32,
    iters_per_split: u32,
    a_kb: u32,
    b_kb: u32,
    n0: u32,
    n1: u32,
    a_s: [u32; 3],
    b_s: [u32; 3],
    c_s: [u32; 3],
    bias_s0: u32,
    fold: u32,
    y_tiles: u32,
    z_count: u32,
    split_stride: u32,
    _pad: [u32; 2],
}

fn strides(s: [usize; 3]) -> [u32; 3] {
    s.map(|v| v as u32)
}

impl Gemm {
    /// One product op(A)·op(B) of contiguous matrices, m×k by k×n, without bias; a transposed
    /// operand is stored the other way round (A as k×m, B as n×k).
    pub fn matrices(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Self {
            m,
            n,
            k,
            kb: 1,
            products: 1,
            nest: FLAT,
            a: Operand::rows(trans_a, if trans_a { m } else { k }),
            b: Operand::rows(trans_b, if trans_b { k } else { n }),
            ldc: n,
            c_batch: [0; 3],
            bias: Bias::None,
            bias_batch: 0,
        }
    }

    /// Where product z starts in an operand with `strides` over the nesting levels.
    pub fn offset(&self, z: usize, strides: [usize; 3]) -> usize {
        let outer = z / self.nest[0];
        (z % self.nest[0]) * strides[0]
            + (outer % self.nest[1]) * strides[1]
            + (outer / self.nest[1]) * strides[2]
    }

    /// Elements that operands A, B and C span in memory.
    pub fn extents(&self) -> (usize, usize, usize) {
        let last = |strides: [usize; 3]| {
            (0..self.products)
                .map(|z| self.offset(z, strides))
                .max()
                .unwrap_or(0)
        };
        let span = |op: &Operand, rows: usize| {
            last(op.batch) + (self.kb - 1) * op.kb_stride + rows * op.ld
        };
        (
            span(&self.a, if self.a.trans { self.k } else { self.m }),
            span(&self.b, if self.b.trans { self.n } else { self.k }),
            last(self.c_batch) + (self.m - 1) * self.ldc + self.n,
        )
    }

    /// Multiply-adds of the whole product.
    pub fn macs(&self) -> u64 {
        (self.m * self.n * self.k * self.kb * self.products) as u64
    }

    /// Whether the products' Cs lie one after the other, m×n each, as split-K partials do.
    fn contiguous_c(&self) -> bool {
        self.ldc == self.n
            && (0..self.products).all(|z| self.offset(z, self.c_batch) == z * self.m * self.n)
    }

    /// Splits of the k iterations and iterations per split (1 split: none). A bias would be
    /// added to every partial, so biased products are not split; several products only where
    /// each is a deep sum (a grouped weight gradient), the sum of the splits' partials then
    /// costing little beside the product.
    fn split(&self) -> (usize, usize) {
        let iterations = self.kb * self.k.div_ceil(K_TILE);
        let shallow = self.products > 1 && iterations < DEEP_PRODUCT;
        if self.bias != Bias::None || !self.contiguous_c() || shallow {
            return (1, iterations);
        }
        split_k(self.m, self.n, self.products, iterations)
    }

    /// Appends this product to the graph: inputs A, B (and the bias), output C of `shape`.
    pub fn push(
        self,
        g: &mut Graph,
        name: &str,
        a: TensorId,
        b: TensorId,
        bias: Option<TensorId>,
        shape: &[usize],
    ) -> TensorId {
        assert_eq!(
            bias.is_some(),
            self.bias != Bias::None,
            "a bias tensor goes with a bias mode"
        );
        let c = g.activation(name, shape);
        let inputs: Vec<TensorId> = [a, b].into_iter().chain(bias).collect();
        g.push(self, &inputs, &[c]);
        c
    }

    /// Records the product of `a` and `b` into `c`; split-K partials use scratch slots 0 and 1.
    pub fn record(&self, rec: &mut Recorder<'_>, a: Arg, b: Arg, bias: Option<Arg>, c: Arg) {
        let (splits, per_split) = self.split();
        let outputs = self.products * self.m * self.n;
        let partial = Arg::Scratch {
            slot: 0,
            bytes: (splits * outputs * 4) as u64,
        };
        let target = if splits > 1 {
            partial.clone()
        } else {
            c.clone()
        };
        let layout = TileLayout::new(rec.tuning().gemm, self.m, self.n);
        let tiles = layout.grid(1);
        let z_count = self.products * splits;
        let (grid, fold) = folded_grid(tiles, z_count);
        let params = Params {
            m: self.m as u32,
            n: self.n as u32,
            k: self.k as u32,
            kb: self.kb as u32,
            lda: self.a.ld as u32,
            ldb: self.b.ld as u32,
            ldc: self.ldc as u32,
            splits: splits as u32,
            iters_per_split: per_split as u32,
            a_kb: self.a.kb_stride as u32,
            b_kb: self.b.kb_stride as u32,
            n0: self.nest[0] as u32,
            n1: self.nest[1] as u32,
            a_s: strides(self.a.batch),
            b_s: strides(self.b.batch),
            c_s: strides(self.c_batch),
            bias_s0: self.bias_batch as u32,
            fold: fold as u32,
            y_tiles: tiles[1],
            z_count: z_count as u32,
            split_stride: outputs as u32,
            _pad: [0; 2],
        };
        let kernel = layout
            .kernel(shader!("gemm"), ["gemm", "gemm_direct"])
            .with("TRANS_A", self.a.trans)
            .with("TRANS_B", self.b.trans)
            .with("BIAS", self.bias as u32);
        let unused_bias = a.clone();
        rec.dispatch(
            kernel,
            &params,
            vec![a, b, bias.unwrap_or(unused_bias), target],
            grid,
        );
        if splits > 1 {
            record_split_sum(rec, outputs, splits, partial, c);
        }
    }
}

/// The grid for `z` products or splits of `tiles` (grid z = 1), and how many of them each grid
/// z holds: past WebGPU's 65,535 workgroups along z, they fold into grid y.
fn folded_grid(tiles: [u32; 3], z: usize) -> ([u32; 3], usize) {
    let fold = z.div_ceil(MAX_WORKGROUPS_PER_DIM as usize);
    let grid = [tiles[0], tiles[1] * fold as u32, z.div_ceil(fold) as u32];
    assert!(
        grid[1] <= MAX_WORKGROUPS_PER_DIM,
        "{z} products of {} tile rows exceed the grid",
        tiles[1]
    );
    (grid, fold)
}

/// Splits along k of `products` products C (m×n each) of `iterations` (summed product, k-tile) pairs,
/// and iterations per split: enough workgroups to fill a large GPU, each doing real work, within
/// the scratch ceiling. The same on every adapter, so the sums' order is too.
pub(super) fn split_k(m: usize, n: usize, products: usize, iterations: usize) -> (usize, usize) {
    let tiles = products * m.div_ceil(TILE) * n.div_ceil(TILE);
    let splits = (TARGET_WORKGROUPS / tiles)
        .min(iterations.div_ceil(MIN_TILES_PER_SPLIT))
        .min(MAX_PARTIAL_BYTES / (4 * products * m * n))
        .max(1);
    let per_split = iterations.div_ceil(splits);
    (iterations.div_ceil(per_split).max(1), per_split)
}

/// How C (m×n) is cut over workgroups, for the GEMM and the temporal convolution, which share
/// their kernel bodies (`shaders/lib/direct_gemm.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TileLayout {
    /// 64×64 tiles of 16×16 invocations.
    Tiled { m: usize, n: usize },
    /// Direct loads: 16 outputs along the uniform axis by 8·`lanes` along the lane axis per
    /// workgroup of `lanes` invocations, the lanes along C's rows or its columns.
    Direct {
        lanes_on_rows: bool,
        lanes: usize,
        uniform: usize,
        along_lanes: usize,
    },
}

/// Outputs along the direct body's uniform axis per workgroup, and per invocation along its lane
/// axis.
const DIRECT_UNIFORM: usize = 16;
const DIRECT_PER_LANE: usize = 8;

impl TileLayout {
    /// The tiles for C of m×n under `variant`. For the direct body, the axes and the workgroup
    /// width that pad C least (small products such as the graph aggregations' V × V would
    /// otherwise run mostly on padding); among equals, wider workgroups.
    pub(super) fn new(variant: GemmVariant, m: usize, n: usize) -> Self {
        if variant == GemmVariant::Tiled {
            return Self::Tiled { m, n };
        }
        let axes = |lanes_on_rows: bool| if lanes_on_rows { (n, m) } else { (m, n) };
        let (lanes_on_rows, lanes) = [false, true]
            .into_iter()
            .flat_map(|lanes_on_rows| [64, 32, 16, 8].map(|lanes| (lanes_on_rows, lanes)))
            .min_by_key(|&(lanes_on_rows, lanes)| {
                let (uniform, along) = axes(lanes_on_rows);
                uniform.next_multiple_of(DIRECT_UNIFORM)
                    * along.next_multiple_of(DIRECT_PER_LANE * lanes)
            })
            .expect("layouts to choose from");
        let (uniform, along_lanes) = axes(lanes_on_rows);
        Self::Direct {
            lanes_on_rows,
            lanes,
            uniform,
            along_lanes,
        }
    }

    /// The kernel of `shader` at its tiled or direct entry, with the layout's constants.
    pub(super) fn kernel(&self, shader: Shader, [tiled, direct]: [&'static str; 2]) -> Kernel {
        match *self {
            Self::Tiled { .. } => Kernel::new(shader, tiled),
            Self::Direct {
                lanes_on_rows,
                lanes,
                ..
            } => Kernel::new(shader, direct)
                .with("LANES_ON_ROWS", lanes_on_rows)
                .with("LANES", lanes as u32),
        }
    }

    /// The grid for `z` products or splits.
    pub(super) fn grid(&self, z: u32) -> [u32; 3] {
        let (x, y) = match *self {
            Self::Tiled { m, n } => (n.div_ceil(TILE), m.div_ceil(TILE)),
            Self::Direct {
                lanes,
                uniform,
                along_lanes,
                ..
            } => (
                along_lanes.div_ceil(DIRECT_PER_LANE * lanes),
                uniform.div_ceil(DIRECT_UNIFORM),
            ),
        };
        [x as u32, y as u32, z]
    }
}

impl Op for Gemm {
    fn name(&self) -> &'static str {
        "gemm"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        Gemm::record(
            self,
            rec,
            arg(inputs[0]),
            arg(inputs[1]),
            inputs.get(2).copied().map(arg),
            arg(outputs[0]),
        );
    }
}

pub mod cpu {
    use super::{Bias, Gemm};

    /// The product `g` describes, in f64, straight from its definition.
    pub fn gemm(g: &Gemm, a: &[f64], b: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
        let offset = |z: usize, s: [usize; 3]| g.offset(z, s);
        let mut c = vec![0.0; g.extents().2];
        for z in 0..g.products {
            let bias_base = (z % g.nest[0]) * g.bias_batch;
            for i in 0..g.m {
                for j in 0..g.n {
                    let mut acc = 0.0;
                    for kb in 0..g.kb {
                        let a0 = offset(z, g.a.batch) + kb * g.a.kb_stride;
                        let b0 = offset(z, g.b.batch) + kb * g.b.kb_stride;
                        for l in 0..g.k {
                            let av = if g.a.trans {
                                a[a0 + l * g.a.ld + i]
                            } else {
                                a[a0 + i * g.a.ld + l]
                            };
                            let bv = if g.b.trans {
                                b[b0 + j * g.b.ld + l]
                            } else {
                                b[b0 + l * g.b.ld + j]
                            };
                            acc += av * bv;
                        }
                    }
                    acc += match (g.bias, bias) {
                        (Bias::PerRow, Some(v)) => v[bias_base + i],
                        (Bias::PerColumn, Some(v)) => v[bias_base + j],
                        _ => 0.0,
                    };
                    c[offset(z, g.c_batch) + i * g.ldc + j] = acc;
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::{GemmVariant, TileLayout};

    fn direct(m: usize, n: usize) -> (bool, usize) {
        match TileLayout::new(GemmVariant::Direct, m, n) {
            TileLayout::Direct {
                lanes_on_rows,
                lanes,
                ..
            } => (lanes_on_rows, lanes),
            TileLayout::Tiled { .. } => panic!("a tiled layout for the direct variant"),
        }
    }

    #[test]
    fn direct_layout_pads_least() {
        // Few channels by frames × joints: lanes along the long columns, as wide as fits.
        assert_eq!(direct(16, 1024), (false, 64));
        assert_eq!(direct(16, 1040), (false, 8));
        // A graph aggregation, (C·T) × V: lanes along the rows.
        assert_eq!(direct(52, 20), (true, 8));
        assert_eq!(direct(1024, 25), (true, 64));
        // The grid covers C.
        let layout = TileLayout::new(GemmVariant::Direct, 150, 7);
        assert_eq!(layout.grid(3), [3, 1, 3]);
    }
}
