//! The MS-TCN and the `unit_tcn` residual as modules: GPU forward and gradients against an f64
//! reference composed from the ops' `cpu` functions, and their state-dict names.

use std::collections::HashMap;

use sfhead::engine::{Data, Executor, Graph, Store, TensorId};
use sfhead::model::init::Init;
use sfhead::model::ms_tcn::{BRANCHES, MsTcn, UnitTcn};
use sfhead::ops::batch_norm::{self, Mode};
use sfhead::ops::temporal_conv::{TemporalConvDims, cpu as tconv};
use sfhead::ops::{concat, mul, reduce, relu, temporal_max_pool as pool};
use sfhead::testing::*;

const EPS: f64 = 1e-5;

/// One layer of the f64 reference.
enum Layer {
    /// A convolution named by its prefix (`.weight`, `.bias`); a 1×1 conv has one tap.
    Conv(String, TemporalConvDims),
    /// A BatchNorm named by its prefix, over (channels, values per sample and channel).
    Norm(String, usize, usize),
    Relu,
    /// Max-pool (3, 1) over (frames, joints) at a stride.
    Pool(usize, usize, usize),
}

type Values = HashMap<String, Vec<f64>>;

fn forward(layer: &Layer, x: &[f64], p: &Values, mode: Mode) -> Vec<f64> {
    match layer {
        Layer::Conv(name, d) => {
            let (w, b) = (&p[&format!("{name}.weight")], &p[&format!("{name}.bias")]);
            tconv::forward(x, w, Some(b), d)
        }
        Layer::Norm(name, c, inner) => {
            let (gamma, beta) = (&p[&format!("{name}.weight")], &p[&format!("{name}.bias")]);
            match mode {
                Mode::Train => batch_norm::cpu::train(x, *c, *inner, gamma, beta, EPS),
                // A fresh layer's running statistics: mean 0, variance 1.
                Mode::Eval => {
                    let (mean, var) = (vec![0.0; *c], vec![1.0; *c]);
                    batch_norm::cpu::eval(x, *c, *inner, gamma, beta, &mean, &var, EPS)
                }
            }
        }
        Layer::Relu => relu::cpu::relu(x),
        &Layer::Pool(frames, joints, stride) => pool::cpu::forward(x, frames, joints, stride),
    }
}

/// Gradient at the layer's input `x` (output `y`); parameter gradients go into `grads`.
fn backward(
    layer: &Layer,
    x: &[f64],
    y: &[f64],
    gy: &[f64],
    p: &Values,
    grads: &mut Values,
) -> Vec<f64> {
    match layer {
        Layer::Conv(name, d) => {
            let w = &p[&format!("{name}.weight")];
            grads.insert(format!("{name}.weight"), tconv::grad_weight(gy, x, d));
            grads.insert(format!("{name}.bias"), tconv::grad_bias(gy, d));
            tconv::grad_input(gy, w, d)
        }
        Layer::Norm(name, c, inner) => {
            let gamma = &p[&format!("{name}.weight")];
            let (gx, gg, gb) = batch_norm::cpu::backward(x, *c, *inner, gamma, gy, EPS);
            grads.insert(format!("{name}.weight"), gg);
            grads.insert(format!("{name}.bias"), gb);
            gx
        }
        Layer::Relu => relu::cpu::relu_grad(y, gy),
        &Layer::Pool(frames, joints, stride) => pool::cpu::backward(x, gy, frames, joints, stride),
    }
}

/// Branches of layers applied to `x` and concatenated on the channel axis; with `gy`, also the
/// gradient of x (summed over branches) and of every parameter.
struct Reference {
    y: Vec<f64>,
    gx: Vec<f64>,
    grads: Values,
}

fn reference(
    branches: &[Vec<Layer>],
    x: &[f64],
    gy: &[f64],
    (batch, inner): (usize, usize),
    p: &Values,
    mode: Mode,
) -> Reference {
    let widths: Vec<usize> = branches
        .iter()
        .map(|layers| match layers.last() {
            Some(Layer::Norm(_, c, _)) => *c,
            _ => panic!("every branch ends with a BN"),
        })
        .collect();
    let acts: Vec<Vec<Vec<f64>>> = branches
        .iter()
        .map(|layers| {
            let mut acts = vec![x.to_vec()];
            for layer in layers {
                let next = forward(layer, acts.last().unwrap(), p, mode);
                acts.push(next);
            }
            acts
        })
        .collect();
    let parts: Vec<(&[f64], usize)> = acts
        .iter()
        .zip(&widths)
        .map(|(a, &c)| (a.last().unwrap().as_slice(), c))
        .collect();
    let y = concat::cpu::concat(&parts, batch, inner);
    let total: usize = widths.iter().sum();
    let mut gx = vec![0.0; x.len()];
    let mut grads = Values::new();
    let mut offset = 0;
    for ((layers, acts), &c) in branches.iter().zip(&acts).zip(&widths) {
        let mut g = concat::cpu::slice(gy, (total, offset, c), batch, inner);
        for (i, layer) in layers.iter().enumerate().rev() {
            g = backward(layer, &acts[i], &acts[i + 1], &g, p, &mut grads);
        }
        gx.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        offset += c;
    }
    Reference { y, gx, grads }
}

/// Sizes of a module case: (B, C_in, C_out, T, V).
#[derive(Clone, Copy)]
struct Case {
    batch: usize,
    cin: usize,
    cout: usize,
    frames: usize,
    joints: usize,
    stride: usize,
}

impl Case {
    fn conv(
        &self,
        (cin, cout): (usize, usize),
        frames: usize,
        ksize: usize,
        dilation: usize,
        stride: usize,
    ) -> TemporalConvDims {
        TemporalConvDims {
            batch: self.batch,
            cin,
            cout,
            frames,
            joints: self.joints,
            ksize,
            dilation,
            stride,
        }
    }

    fn frames_out(&self) -> usize {
        (self.frames - 1) / self.stride + 1
    }

    /// The MS-TCN's layers under `prefix`, branch by branch.
    fn ms_tcn(&self, prefix: &str) -> Vec<Vec<Layer>> {
        let (cb, t, s) = (self.cout / BRANCHES, self.frames, self.stride);
        let inner = t * self.joints;
        let inner_out = self.frames_out() * self.joints;
        let entrance = |b: usize| {
            vec![
                Layer::Conv(
                    format!("{prefix}.branches.{b}.0"),
                    self.conv((self.cin, cb), t, 1, 1, 1),
                ),
                Layer::Norm(format!("{prefix}.branches.{b}.1"), cb, inner),
                Layer::Relu,
            ]
        };
        let temporal = |b: usize, dilation: usize| {
            let mut layers = entrance(b);
            layers.push(Layer::Conv(
                format!("{prefix}.branches.{b}.3.conv"),
                self.conv((cb, cb), t, 5, dilation, s),
            ));
            layers.push(Layer::Norm(
                format!("{prefix}.branches.{b}.3.bn"),
                cb,
                inner_out,
            ));
            layers
        };
        let mut pooled = entrance(2);
        pooled.push(Layer::Pool(t, self.joints, s));
        pooled.push(Layer::Norm(format!("{prefix}.branches.2.4"), cb, inner_out));
        let pointwise = vec![
            Layer::Conv(
                format!("{prefix}.branches.3.0"),
                self.conv((self.cin, cb), t, 1, 1, s),
            ),
            Layer::Norm(format!("{prefix}.branches.3.1"), cb, inner_out),
        ];
        vec![temporal(0, 1), temporal(1, 2), pooled, pointwise]
    }

    fn unit_tcn(&self, prefix: &str) -> Vec<Vec<Layer>> {
        let inner_out = self.frames_out() * self.joints;
        vec![vec![
            Layer::Conv(
                format!("{prefix}.conv"),
                self.conv((self.cin, self.cout), self.frames, 1, 1, self.stride),
            ),
            Layer::Norm(format!("{prefix}.bn"), self.cout, inner_out),
        ]]
    }
}

/// Runs `build` on a (B, C_in, T, V) input on the GPU (with every gradient in training) and
/// compares with the reference of `layers`.
fn module_case(
    label: &str,
    c: Case,
    mode: Mode,
    layers: &[Vec<Layer>],
    build: impl FnOnce(&mut Graph, TensorId) -> TensorId,
    seed: u64,
) {
    let what = format!("{label} s={} {mode:?}", c.stride);
    let x_shape = [c.batch, c.cin, c.frames, c.joints];
    let mut g = Graph::new();
    let x = g.input("x", &x_shape);
    let y = build(&mut g, x);
    assert_eq!(g.shape(y), [c.batch, c.cout, c.frames_out(), c.joints]);
    let params = g.parameters();
    let gy = uniform(seed, g.numel(y), -1.0, 1.0);
    let mut keep = vec![y];
    if mode == Mode::Train {
        let y_shape = g.shape(y).to_vec();
        let gy = g.constant("gy", &y_shape, gy.clone());
        let weighted = mul::mul(&mut g, y, gy);
        let loss = reduce::sum(&mut g, weighted, &[0, 1, 2, 3]);
        let wrt: Vec<TensorId> = [x].into_iter().chain(params.iter().copied()).collect();
        keep.extend(g.backward(loss, &wrt).unwrap());
    }
    let mut store = Store::new();
    let exe = Executor::compile(&gpu(), &g, &mut store, &keep).unwrap();
    // Biases and β away from their zero initialisation: with β = 0 a ReLU after BN is
    // homogeneous in γ and the next BN undoes the scale, so γ's gradient would be rounding noise.
    for &t in &params {
        let info = g.tensor(t);
        if info.name.ends_with(".bias") {
            let values = uniform(seed + 2 + t.index() as u64, info.numel(), -0.5, 0.5);
            store.write(&gpu(), &info.name, &values).unwrap();
        }
    }
    let data = uniform(seed + 1, x_shape.iter().product(), -1.0, 1.0);
    exe.write(x, &data).unwrap();
    exe.run();
    let out: Vec<Vec<f32>> = keep.iter().map(|&t| exe.read(t).unwrap()).collect();
    let values: Values = params
        .iter()
        .map(|&t| (g.tensor(t).name.clone(), to_f64(&exe.read(t).unwrap())))
        .collect();
    let want = reference(
        layers,
        &to_f64(&data),
        &to_f64(&gy),
        (c.batch, c.frames_out() * c.joints),
        &values,
        mode,
    );
    check(
        &format!("{what} forward"),
        normwise_error(&out[0], &want.y),
        REDUCTION_TOL,
    );
    if mode == Mode::Eval {
        return;
    }
    check(
        &format!("{what} grad x"),
        normwise_error(&out[1], &want.gx),
        REDUCTION_TOL,
    );
    assert_eq!(
        want.grads.len(),
        params.len(),
        "the reference covers every parameter"
    );
    for (&t, got) in params.iter().zip(&out[2..]) {
        let name = &g.tensor(t).name;
        let wanted = &want.grads[name];
        // A conv bias feeding a training BN has a true gradient of 0, so its float result is
        // rounding noise: measure errors against the layer's weight gradient as well.
        let sibling = &want.grads[&name.replace(".bias", ".weight")];
        let scale = wanted
            .iter()
            .chain(sibling)
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let error = got
            .iter()
            .zip(wanted)
            .map(|(&a, b)| (f64::from(a) - b).abs())
            .fold(0.0, f64::max)
            / scale;
        check(&format!("{what} grad {name}"), error, REDUCTION_TOL);
    }
}

const SMALL: Case = Case {
    batch: 2,
    cin: 8,
    cout: 8,
    frames: 9,
    joints: 5,
    stride: 1,
};

#[test]
fn ms_tcn_training_matches_composed_reference() {
    for stride in [1, 2] {
        let c = Case { stride, ..SMALL };
        module_case(
            "MS-TCN",
            c,
            Mode::Train,
            &c.ms_tcn("tcn"),
            |g, x| {
                let m = MsTcn::new(g, "tcn", (c.cin, c.cout), stride, &mut Init::new(700));
                m.forward(g, x, Mode::Train)
            },
            710 + stride as u64,
        );
    }
}

#[test]
fn ms_tcn_eval_matches_composed_reference() {
    let c = Case { stride: 2, ..SMALL };
    module_case(
        "MS-TCN",
        c,
        Mode::Eval,
        &c.ms_tcn("tcn"),
        |g, x| {
            let m = MsTcn::new(g, "tcn", (c.cin, c.cout), 2, &mut Init::new(720));
            m.forward(g, x, Mode::Eval)
        },
        721,
    );
}

#[test]
fn unit_tcn_training_matches_composed_reference() {
    let c = Case {
        cin: 6,
        cout: 12,
        stride: 2,
        ..SMALL
    };
    module_case(
        "unit_tcn",
        c,
        Mode::Train,
        &c.unit_tcn("residual"),
        |g, x| {
            let u = UnitTcn::new(g, "residual", (c.cin, c.cout), 1, 2, &mut Init::new(730));
            u.forward(g, x, Mode::Train)
        },
        731,
    );
}

/// `(key, shape)` of the listing's entries under `prefix`; a scalar (`num_batches_tracked`) is a
/// one-value tensor in the engine.
fn listed(prefix: &str) -> Vec<(String, Vec<usize>)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ctrgcn-state-dict.txt"
    );
    let text = std::fs::read_to_string(path).expect("the state-dict listing is readable");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let mut fields = l.split_whitespace();
            let key = fields.next().unwrap().to_string();
            let shape = match fields.next().unwrap() {
                "scalar" => vec![1],
                dims => dims.split('x').map(|d| d.parse().unwrap()).collect(),
            };
            (key, shape)
        })
        .collect()
}

fn declared(g: &Graph) -> Vec<(String, Vec<usize>)> {
    g.tensors()
        .filter(|(_, t)| t.role.is_stored())
        .map(|(_, t)| (t.name.clone(), t.shape.clone()))
        .collect()
}

fn init_values(g: &Graph, name: &str) -> Vec<f32> {
    match &g.tensor(g.find(name).unwrap()).init {
        Some(Data::F32(v)) => v.clone(),
        other => panic!("{name} has no f32 initial values: {other:?}"),
    }
}

fn spread(v: &[f32]) -> (f32, f32) {
    let n = v.len() as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n;
    (mean, var.sqrt())
}

#[test]
fn block_five_modules_have_the_state_dict_names_and_initialisation() {
    let mut g = Graph::new();
    let mut init = Init::new(740);
    MsTcn::new(&mut g, "l5.tcn1", (128, 128), 2, &mut init);
    assert_eq!(declared(&g), listed("l5.tcn1."));
    let mut g2 = Graph::new();
    UnitTcn::new(&mut g2, "l5.residual", (64, 128), 1, 2, &mut init);
    assert_eq!(declared(&g2), listed("l5.residual."));

    // kaiming_normal with fan_out = C_out·k: 32 for the 1×1 convs, 160 for the 5×1 ones.
    for (name, fan_out) in [
        ("l5.tcn1.branches.0.0.weight", 32.0),
        ("l5.tcn1.branches.1.3.conv.weight", 160.0),
        ("l5.tcn1.branches.3.0.weight", 32.0),
    ] {
        let (mean, std) = spread(&init_values(&g, name));
        let want = (2.0f32 / fan_out).sqrt();
        assert!(
            mean.abs() < 0.05 * want && (std - want).abs() < 0.05 * want,
            "{name}: {mean}, {std}"
        );
    }
    let (_, std) = spread(&init_values(&g2, "l5.residual.conv.weight"));
    assert!((std - (2.0f32 / 128.0).sqrt()).abs() < 0.05 * (2.0f32 / 128.0).sqrt());
    // MS-TCN BNs: γ ~ N(1, 0.02); the residual BN: γ = 1. Biases and β start at 0.
    for b in ["0.1", "1.3.bn", "2.1", "2.4", "3.1"] {
        let gamma = init_values(&g, &format!("l5.tcn1.branches.{b}.weight"));
        assert!(gamma.iter().all(|&v| (v - 1.0).abs() < 0.1) && gamma.iter().any(|&v| v != 1.0));
    }
    assert!(
        init_values(&g2, "l5.residual.bn.weight")
            .iter()
            .all(|&v| v == 1.0)
    );
    for (graph, name) in [
        (&g, "l5.tcn1.branches.0.3.conv.bias"),
        (&g, "l5.tcn1.branches.2.4.bias"),
        (&g2, "l5.residual.conv.bias"),
    ] {
        assert!(init_values(graph, name).iter().all(|&v| v == 0.0), "{name}");
    }
}
