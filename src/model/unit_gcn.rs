//! CTR-GCN's graph-convolution unit (`unit_gcn` with three CTRGC branches), composed from ops:
//!
//! - branch i: x1, x2 = conv1, conv2 of mean_T(x) (pooling first: the convs are linear),
//!   x3 = conv3(x), E = tanh(x1[u] − x2[v]), Q = alpha·conv4(E) + PA[i],
//!   Z_i[t, u] = Σ_v Q[u, v]·x3[t, v];
//! - y = ReLU(BN(Z_0 + Z_1 + Z_2) + down(x)), down a 1×1 conv + BN when C_in ≠ C_out, else the
//!   identity.
//!
//! Parameters carry the state-dict keys below a prefix (`l1.gcn1`), in PyTorch order.

use std::collections::HashMap;

use super::init::Init;
use super::layers::Conv;
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, DEFAULT_EPS, DEFAULT_MOMENTUM, Mode};
use crate::ops::{
    add::add_relu, aggregate::aggregate_branches, conv1x1::conv1x1_grouped, reduce::mean,
    refine::refine_branches, tanh_diff::tanh_diff_stacked,
};

/// Number of CTRGC branches, one per adjacency subset.
pub const BRANCHES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitGcnConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub joints: usize,
}

impl UnitGcnConfig {
    /// CTRGC's relation width R: 8 for the 3- or 9-channel inputs of a first layer, else C_in/8.
    pub fn relation_width(&self) -> usize {
        match self.in_channels {
            3 | 9 => 8,
            c => c / 8,
        }
    }
}

/// One CTRGC branch: relation convs 1 and 2, value conv 3, relation-to-channel conv 4.
#[derive(Debug, Clone, Copy)]
pub struct Ctrgc {
    pub conv1: Conv,
    pub conv2: Conv,
    pub conv3: Conv,
    pub conv4: Conv,
}

/// The residual path when the channel count changes.
#[derive(Debug, Clone, Copy)]
pub struct Down {
    pub conv: Conv,
    pub bn: BatchNorm,
}

impl Down {
    /// `{prefix}.down.0` (a 1×1 conv, kaiming_normal fan out, zero bias) and `{prefix}.down.1`
    /// (BN) where the width changes; none, the identity, where it holds.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        init: &mut Init,
    ) -> Option<Self> {
        (cin != cout).then(|| Self {
            conv: Conv::kaiming(g, &format!("{prefix}.down.0"), [cout, cin, 1, 1], init),
            bn: BatchNorm::new(g, &format!("{prefix}.down.1"), cout),
        })
    }
}

/// The end of every graph unit: ReLU(BN(y) + down(x)), x itself where there is no down.
pub fn normalise_add_down(
    g: &mut Graph,
    x: TensorId,
    y: TensorId,
    bn: &BatchNorm,
    down: Option<&Down>,
    mode: Mode,
) -> TensorId {
    let y = bn.apply(g, y, mode);
    let residual = match down {
        Some(down) => {
            let h = down.conv.apply_1x1(g, x);
            down.bn.apply(g, h, mode)
        }
        None => {
            assert_eq!(
                g.shape(x),
                g.shape(y),
                "an identity `down` needs C_in = C_out"
            );
            x
        }
    };
    add_relu(g, y, residual)
}

/// The tensors of one unit.
#[derive(Debug, Clone, Copy)]
pub struct UnitGcn {
    /// (3, V, V) learnable adjacency.
    pub pa: TensorId,
    /// (1) scale of the refinement, shared by the branches.
    pub alpha: TensorId,
    /// conv1 and conv2 of each branch, in that order, packed: one product of the pooled input.
    pub relations: Conv,
    /// The branches' conv3s packed: one product of the input.
    pub values: Conv,
    /// The branches' conv4s packed: one grouped product of their relation maps.
    pub conv4s: Conv,
    pub down: Option<Down>,
    pub bn: BatchNorm,
}

/// Declares a module's tensors: initial values come from the seeded initialiser, except where
/// `overrides` names the tensor. Every default is drawn either way, so overriding one tensor
/// leaves the others' values unchanged.
struct Declare<'a> {
    g: &'a mut Graph,
    prefix: &'a str,
    init: &'a mut Init,
    overrides: &'a HashMap<String, Vec<f32>>,
}

impl Declare<'_> {
    fn value(&self, name: &str, default: Vec<f32>) -> Vec<f32> {
        self.overrides.get(name).cloned().unwrap_or(default)
    }

    fn parameter(&mut self, key: &str, shape: &[usize], default: Vec<f32>) -> TensorId {
        let name = format!("{}.{key}", self.prefix);
        let values = self.value(&name, default);
        self.g.parameter(&name, shape, values)
    }

    fn state(&mut self, key: &str, shape: &[usize], default: Vec<f32>) -> TensorId {
        let name = format!("{}.{key}", self.prefix);
        let values = self.value(&name, default);
        self.g.state(&name, shape, values)
    }

    /// Kaiming-normal (fan out) weight and zero bias.
    fn conv(&mut self, key: &str, cout: usize, cin: usize) -> Conv {
        let shape = [cout, cin, 1, 1];
        let w = self.init.kaiming_normal_fan_out(&shape);
        Conv {
            weight: self.parameter(&format!("{key}.weight"), &shape, w),
            bias: self.parameter(&format!("{key}.bias"), &[cout], vec![0.0; cout]),
        }
    }

    fn batch_norm(&mut self, key: &str, c: usize, gamma: f32) -> BatchNorm {
        BatchNorm {
            weight: self.parameter(&format!("{key}.weight"), &[c], vec![gamma; c]),
            bias: self.parameter(&format!("{key}.bias"), &[c], vec![0.0; c]),
            running_mean: self.state(&format!("{key}.running_mean"), &[c], vec![0.0; c]),
            running_var: self.state(&format!("{key}.running_var"), &[c], vec![1.0; c]),
            num_batches_tracked: self.state(&format!("{key}.num_batches_tracked"), &[1], vec![0.0]),
            eps: DEFAULT_EPS,
            momentum: DEFAULT_MOMENTUM,
        }
    }
}

impl UnitGcn {
    /// A unit initialised as CTR-GCN does: PA = `adjacency` (3·V·V values), alpha = 0,
    /// Kaiming-normal (fan out) conv weights with zero biases, `down` BN γ = 1 and output BN
    /// γ = 1e-6.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        cfg: &UnitGcnConfig,
        adjacency: &[f32],
        init: &mut Init,
    ) -> Self {
        Self::with_overrides(g, prefix, cfg, adjacency, init, &HashMap::new())
    }

    /// As [`UnitGcn::new`], with the initial values of the tensors named (full key, prefix
    /// included) in `overrides` replaced; other keys are ignored, so one map can serve a model.
    pub fn with_overrides(
        g: &mut Graph,
        prefix: &str,
        cfg: &UnitGcnConfig,
        adjacency: &[f32],
        init: &mut Init,
        overrides: &HashMap<String, Vec<f32>>,
    ) -> Self {
        let (cin, cout, v) = (cfg.in_channels, cfg.out_channels, cfg.joints);
        let r = cfg.relation_width();
        assert!(r > 0, "C_in = {cin} gives a relation width of 0");
        assert_eq!(
            adjacency.len(),
            BRANCHES * v * v,
            "the adjacency must hold 3·V·V values for V = {v}"
        );
        let mut d = Declare {
            g,
            prefix,
            init,
            overrides,
        };
        let pa = d.parameter("PA", &[BRANCHES, v, v], adjacency.to_vec());
        let alpha = d.parameter("alpha", &[1], vec![0.0]);
        let convs: [Ctrgc; BRANCHES] = std::array::from_fn(|k| Ctrgc {
            conv1: d.conv(&format!("convs.{k}.conv1"), r, cin),
            conv2: d.conv(&format!("convs.{k}.conv2"), r, cin),
            conv3: d.conv(&format!("convs.{k}.conv3"), cout, cin),
            conv4: d.conv(&format!("convs.{k}.conv4"), cout, r),
        });
        let down = (cin != cout).then(|| Down {
            conv: d.conv("down.0", cout, cin),
            bn: d.batch_norm("down.1", cout, 1.0),
        });
        let bn = d.batch_norm("bn", cout, 1e-6);
        let mut pack = |kind: &str, of: &dyn Fn(&Ctrgc) -> Vec<Conv>| {
            let members: Vec<Conv> = convs.iter().flat_map(of).collect();
            Conv::pack(d.g, &format!("{prefix}.convs.{kind}"), &members)
        };
        let relations = pack("conv1+conv2", &|b| vec![b.conv1, b.conv2]);
        let values = pack("conv3", &|b| vec![b.conv3]);
        let conv4s = pack("conv4", &|b| vec![b.conv4]);
        Self {
            pa,
            alpha,
            relations,
            values,
            conv4s,
            down,
            bn,
        }
    }

    /// y (B, C_out, T, V) of x (B, C_in, T, V). The three branches run as one: their relation
    /// convs as one product of the pooled input, their value convs as one product of x, and
    /// their relation maps, conv4s, refinements and aggregations each as one op on the
    /// branches' stack, the aggregation summing the branches as it goes.
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let pooled = mean(g, x, &[2]);
        let relations = self.relations.apply_1x1(g, pooled);
        let values = self.values.apply_1x1(g, x);
        let e = tanh_diff_stacked(g, relations, BRANCHES);
        let (w4, b4) = (self.conv4s.weight, Some(self.conv4s.bias));
        let c = conv1x1_grouped(g, e, w4, b4, BRANCHES);
        let q = refine_branches(g, c, self.alpha, self.pa);
        let sum = aggregate_branches(g, q, values, BRANCHES);
        normalise_add_down(g, x, sum, &self.bn, self.down.as_ref(), mode)
    }
}

pub mod cpu {
    //! The unit in f64, training mode, following PyTorch's order of operations literally
    //! (conv1/conv2 on x, then the mean over T), with its backward written out by hand.
    //! Tensors are looked up by their key relative to the unit (`PA`, `convs.0.conv1.weight`,
    //! `bn.weight`, …); gradients come back under the same keys, `x` for the input.

    use std::collections::HashMap;

    use super::BRANCHES;
    use crate::ops::{aggregate, batch_norm, conv1x1, refine, relu, tanh_diff};

    /// (B, C_in, C_out, T, V).
    pub type Dims = (usize, usize, usize, usize, usize);

    const EPS: f64 = 1e-5;

    /// Gradients (x, w, bias) of a 1×1 conv over `points` positions per channel.
    fn conv_grad(
        x: &[f64],
        w: &[f64],
        gy: &[f64],
        (batch, cin, cout, points): (usize, usize, usize, usize),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut gx = vec![0.0; x.len()];
        let mut gw = vec![0.0; w.len()];
        let mut gb = vec![0.0; cout];
        for b in 0..batch {
            for o in 0..cout {
                for p in 0..points {
                    let g = gy[(b * cout + o) * points + p];
                    gb[o] += g;
                    for i in 0..cin {
                        gx[(b * cin + i) * points + p] += w[o * cin + i] * g;
                        gw[o * cin + i] += g * x[(b * cin + i) * points + p];
                    }
                }
            }
        }
        (gx, gw, gb)
    }

    /// Mean over T of (B, C, T, V).
    fn mean_t(x: &[f64], (rows, t, v): (usize, usize, usize)) -> Vec<f64> {
        let mut m = vec![0.0; rows * v];
        for r in 0..rows {
            for f in 0..t {
                for j in 0..v {
                    m[r * v + j] += x[(r * t + f) * v + j] / t as f64;
                }
            }
        }
        m
    }

    /// Transpose of [`mean_t`]: g/T spread over T.
    fn spread_t(g: &[f64], (rows, t, v): (usize, usize, usize)) -> Vec<f64> {
        (0..rows * t * v)
            .map(|i| g[(i / (t * v)) * v + i % v] / t as f64)
            .collect()
    }

    fn add_into(acc: &mut [f64], x: &[f64]) {
        acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
    }

    /// The unit's output y and the gradients of x and of every parameter for the incoming
    /// gradient `gy`. `p` holds every parameter of the unit; without `down.0.weight` the
    /// residual is the identity.
    pub fn forward_backward(
        x: &[f64],
        p: &HashMap<String, Vec<f64>>,
        dims: Dims,
        gy: &[f64],
    ) -> (Vec<f64>, HashMap<String, Vec<f64>>) {
        let (b, cin, cout, t, v) = dims;
        let r = p["convs.0.conv1.bias"].len();
        let (vv, tv) = (v * v, t * v);
        let alpha = p["alpha"][0];
        let conv = |input: &[f64], key: &str, ci: usize, co: usize, points: usize| {
            let (w, bias) = (&p[&format!("{key}.weight")], &p[&format!("{key}.bias")]);
            conv1x1::cpu::conv1x1(input, w, Some(bias), (b, ci, co, points))
        };

        struct Branch {
            x3: Vec<f64>,
            e: Vec<f64>,
            c: Vec<f64>,
            q: Vec<f64>,
        }
        let mut branches = Vec::new();
        let mut s = vec![0.0; b * cout * tv];
        for i in 0..BRANCHES {
            let key = |n: usize| format!("convs.{i}.conv{n}");
            let x1 = mean_t(&conv(x, &key(1), cin, r, tv), (b * r, t, v));
            let x2 = mean_t(&conv(x, &key(2), cin, r, tv), (b * r, t, v));
            let x3 = conv(x, &key(3), cin, cout, tv);
            let e = tanh_diff::cpu::tanh_diff(&x1, &x2, v);
            let c = conv(&e, &key(4), r, cout, vv);
            let q = refine::cpu::refine(&c, alpha, &p["PA"], i, vv);
            let maps = aggregate::Dims::maps(b * cout, t, v);
            add_into(&mut s, &aggregate::cpu::aggregate(&q, &x3, maps));
            branches.push(Branch { x3, e, c, q });
        }
        let (gamma, beta) = (&p["bn.weight"], &p["bn.bias"]);
        let out = batch_norm::cpu::train(&s, cout, tv, gamma, beta, EPS);
        let down = p.contains_key("down.0.weight").then(|| {
            let h = conv(x, "down.0", cin, cout, tv);
            let (dg, db) = (&p["down.1.weight"], &p["down.1.bias"]);
            let y = batch_norm::cpu::train(&h, cout, tv, dg, db, EPS);
            (h, y)
        });
        let pre: Vec<f64> = match &down {
            Some((_, res)) => out.iter().zip(res).map(|(a, b)| a + b).collect(),
            None => out.iter().zip(x).map(|(a, b)| a + b).collect(),
        };
        let y = relu::cpu::relu(&pre);

        let mut grads: HashMap<String, Vec<f64>> = HashMap::new();
        let gpre = relu::cpu::relu_grad(&y, gy);
        let (gs, gg, gb) = batch_norm::cpu::backward(&s, cout, tv, gamma, &gpre, EPS);
        grads.insert("bn.weight".into(), gg);
        grads.insert("bn.bias".into(), gb);
        let mut gx = match &down {
            Some((h, _)) => {
                let dg = &p["down.1.weight"];
                let (gh, gdg, gdb) = batch_norm::cpu::backward(h, cout, tv, dg, &gpre, EPS);
                grads.insert("down.1.weight".into(), gdg);
                grads.insert("down.1.bias".into(), gdb);
                let (gx, gw, gbias) = conv_grad(x, &p["down.0.weight"], &gh, (b, cin, cout, tv));
                grads.insert("down.0.weight".into(), gw);
                grads.insert("down.0.bias".into(), gbias);
                gx
            }
            None => gpre.clone(),
        };
        let mut galpha = 0.0;
        let mut gpa = vec![0.0; BRANCHES * vv];
        for (i, br) in branches.iter().enumerate() {
            let key = |n: usize| format!("convs.{i}.conv{n}");
            let mut put = |n: usize, gw: Vec<f64>, gbias: Vec<f64>| {
                grads.insert(format!("{}.weight", key(n)), gw);
                grads.insert(format!("{}.bias", key(n)), gbias);
            };
            // Every branch sees the same gradient of its output: that of the sum.
            let maps = aggregate::Dims::maps(b * cout, t, v);
            let (gq, gx3) = aggregate::cpu::aggregate_grad(&br.q, &br.x3, &gs, maps);
            let (gc, ga, gp) = refine::cpu::refine_grad(&gq, &br.c, alpha, BRANCHES * vv, i, vv);
            galpha += ga;
            add_into(&mut gpa, &gp);
            let w4 = &p[&format!("{}.weight", key(4))];
            let (ge, gw4, gb4) = conv_grad(&br.e, w4, &gc, (b, r, cout, vv));
            put(4, gw4, gb4);
            let (gx1, gx2) = tanh_diff::cpu::tanh_diff_grad(&br.e, &ge, v);
            for (n, g) in [(1, gx1), (2, gx2)] {
                let w = &p[&format!("{}.weight", key(n))];
                let g_conv = spread_t(&g, (b * r, t, v));
                let (gxn, gw, gbias) = conv_grad(x, w, &g_conv, (b, cin, r, tv));
                add_into(&mut gx, &gxn);
                put(n, gw, gbias);
            }
            let w3 = &p[&format!("{}.weight", key(3))];
            let (gx3_in, gw3, gb3) = conv_grad(x, w3, &gx3, (b, cin, cout, tv));
            add_into(&mut gx, &gx3_in);
            put(3, gw3, gb3);
        }
        grads.insert("alpha".into(), vec![galpha]);
        grads.insert("PA".into(), gpa);
        grads.insert("x".into(), gx);
        (y, grads)
    }
}
