//! The CTR-GCN graph-convolution unit as a module: its state-dict keys, its forward and every
//! gradient against the composed f64 reference, and a finite-difference check of the whole unit.

use std::collections::HashMap;
use std::path::Path;

use sfhead::engine::{Data, Graph, Role, TensorId};
use sfhead::model::Topology;
use sfhead::model::init::Init;
use sfhead::model::layers::Conv;
use sfhead::model::unit_gcn::{Ctrgc, Down, UnitGcn, UnitGcnConfig, cpu};
use sfhead::ops::batch_norm::{BatchNorm, DEFAULT_EPS, DEFAULT_MOMENTUM, Mode};
use sfhead::ops::{concat::concat, mul, reduce, reshape::reshape};
use sfhead::testing::*;

#[path = "../common/state_dict_listing.rs"]
mod state_dict_listing;

/// The initial values of a parameter or BN statistic.
fn initial(g: &Graph, t: TensorId) -> Vec<f32> {
    match &g.tensor(t).init {
        Some(Data::F32(v)) => v.clone(),
        other => panic!("unexpected initial data {other:?}"),
    }
}

/// Parameters and BN statistics of the graph, in declaration order, as (name, shape).
fn declared(g: &Graph) -> Vec<(String, Vec<usize>)> {
    g.tensors()
        .filter(|(_, t)| t.role.is_stored())
        .map(|(_, t)| (t.name.clone(), t.shape.clone()))
        .collect()
}

#[test]
fn keys_shapes_and_order_follow_the_state_dict() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ctrgcn-state-dict.txt");
    let listing = state_dict_listing::read(&path).unwrap();
    let adjacency = Topology::shipped("ntu25").unwrap().spatial_adjacency();
    // l1 changes the channel count (a `down` path), l2 does not, l9 has R = 32.
    for (prefix, cin, cout) in [
        ("l1.gcn1", 3, 64),
        ("l2.gcn1", 64, 64),
        ("l9.gcn1", 256, 256),
    ] {
        let mut g = Graph::new();
        let cfg = UnitGcnConfig {
            in_channels: cin,
            out_channels: cout,
            joints: 25,
        };
        UnitGcn::new(
            &mut g,
            prefix,
            &cfg,
            adjacency.as_slice(),
            &mut Init::new(1),
        );
        // A scalar (`num_batches_tracked`) is a one-value tensor in the engine.
        let want: Vec<(String, Vec<usize>)> = listing
            .iter()
            .filter(|e| e.key.starts_with(&format!("{prefix}.")))
            .map(|e| {
                let shape = if e.shape.is_empty() {
                    vec![1]
                } else {
                    e.shape.clone()
                };
                (e.key.clone(), shape)
            })
            .collect();
        assert_eq!(declared(&g), want, "{prefix}");
        let params: Vec<&str> = g
            .parameters()
            .into_iter()
            .map(|t| g.tensor(t).name.as_str())
            .collect();
        let want_params: Vec<&str> = listing
            .iter()
            .filter(|e| e.key.starts_with(&format!("{prefix}.")) && e.is_parameter())
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(params, want_params, "{prefix} parameters");
    }
}

#[test]
fn initial_values_follow_ctrgcn_and_overrides_replace_them() {
    let cfg = UnitGcnConfig {
        in_channels: 3,
        out_channels: 16,
        joints: 5,
    };
    let adjacency = uniform(400, 75, 0.0, 1.0);
    let build = |overrides: &HashMap<String, Vec<f32>>| {
        let mut g = Graph::new();
        let unit =
            UnitGcn::with_overrides(&mut g, "u", &cfg, &adjacency, &mut Init::new(9), overrides);
        let values: HashMap<String, Vec<f32>> = g
            .tensors()
            .filter(|(_, t)| t.role.is_stored())
            .map(|(id, t)| (t.name.clone(), initial(&g, id)))
            .collect();
        (unit, values)
    };
    let (unit, v) = build(&HashMap::new());
    assert_eq!(v["u.PA"], adjacency);
    assert_eq!(v["u.alpha"], [0.0]);
    assert!(v["u.bn.weight"].iter().all(|&x| x == 1e-6));
    assert!(v["u.down.1.weight"].iter().all(|&x| x == 1.0));
    assert!(v["u.convs.1.conv4.bias"].iter().all(|&x| x == 0.0));
    assert!(v["u.bn.running_var"].iter().all(|&x| x == 1.0));
    // conv4 is 16×8: fan out 16, so the weights spread with σ = √(2/16) ≈ 0.354.
    let w = &v["u.convs.2.conv4.weight"];
    let sigma = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
    assert!((0.25..0.46).contains(&sigma), "σ = {sigma}");
    assert!(unit.down.is_some());

    let overrides = HashMap::from([
        ("u.alpha".to_string(), vec![0.5]),
        ("u.down.1.running_mean".to_string(), vec![2.0; 16]),
        ("other.alpha".to_string(), vec![7.0]),
    ]);
    let (_, o) = build(&overrides);
    assert_eq!(o["u.alpha"], [0.5]);
    assert_eq!(o["u.down.1.running_mean"], [2.0; 16]);
    // Overriding some tensors leaves the seeded values of the others as they were.
    for (name, values) in &v {
        if !overrides.contains_key(name) {
            assert_eq!(&o[name], values, "{name}");
        }
    }
}

/// Builds a unit with random PA, alpha, biases and BN affine parameters (so that every path
/// carries signal), runs forward and backward on x, and checks y and every gradient.
fn unit_case(cfg: UnitGcnConfig, batch: usize, frames: usize, seed: u64) {
    let (cin, cout, v) = (cfg.in_channels, cfg.out_channels, cfg.joints);
    let r = cfg.relation_width();
    let mut overrides = HashMap::from([
        ("u.alpha".to_string(), vec![0.8]),
        ("u.bn.weight".to_string(), uniform(seed, cout, 0.5, 1.5)),
        ("u.bn.bias".to_string(), uniform(seed + 1, cout, -0.5, 0.5)),
        (
            "u.down.1.weight".to_string(),
            uniform(seed + 2, cout, 0.5, 1.5),
        ),
        (
            "u.down.1.bias".to_string(),
            uniform(seed + 3, cout, -0.5, 0.5),
        ),
        (
            "u.down.0.bias".to_string(),
            uniform(seed + 4, cout, -0.5, 0.5),
        ),
    ]);
    for k in 0..3 {
        for (n, width) in [(1, r), (2, r), (3, cout), (4, cout)] {
            let bias = uniform(seed + 10 + 4 * k + n, width, -0.5, 0.5);
            overrides.insert(format!("u.convs.{k}.conv{n}.bias"), bias);
        }
    }
    let pa = uniform(seed + 5, 3 * v * v, -0.5, 1.0);
    let mut g = Graph::new();
    let unit = UnitGcn::with_overrides(&mut g, "u", &cfg, &pa, &mut Init::new(seed), &overrides);
    assert_eq!(unit.down.is_some(), cin != cout);
    let shape = [batch, cin, frames, v];
    let x = g.input("x", &shape);
    let y = unit.forward(&mut g, x, Mode::Train);
    assert_eq!(g.shape(y), [batch, cout, frames, v]);
    let n_out = batch * cout * frames * v;
    let gy_data = uniform(seed + 6, n_out, -1.0, 1.0);
    let gy = g.constant("gy", &[batch, cout, frames, v], gy_data.clone());
    let weighted = mul::mul(&mut g, y, gy);
    let loss = reduce::sum(&mut g, weighted, &[0, 1, 2, 3]);
    let params = g.parameters();
    let wrt: Vec<TensorId> = [x].into_iter().chain(params.iter().copied()).collect();
    let grads = g.backward(loss, &wrt).unwrap();
    let names: Vec<String> = wrt
        .iter()
        .map(|&t| match g.tensor(t).role {
            Role::Input => "x".to_string(),
            _ => g.tensor(t).name["u.".len()..].to_string(),
        })
        .collect();
    let reference: HashMap<String, Vec<f64>> = params
        .iter()
        .map(|&t| {
            let name = g.tensor(t).name["u.".len()..].to_string();
            (name, to_f64(&initial(&g, t)))
        })
        .collect();
    let keep: Vec<TensorId> = [y].into_iter().chain(grads.iter().copied()).collect();
    let h = Harness::new(g, &keep);
    let dx = uniform(seed + 7, batch * cin * frames * v, -1.0, 1.0);
    let out = h.run(&[(x, &dx)], &keep);

    let dims = (batch, cin, cout, frames, v);
    let (want_y, want) = cpu::forward_backward(&to_f64(&dx), &reference, dims, &to_f64(&gy_data));
    check(
        "unit_gcn y",
        normwise_error(&out[0], &want_y),
        REDUCTION_TOL,
    );
    assert_eq!(want.len(), names.len(), "one reference gradient per tensor");
    let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (name, got) in names.iter().zip(&out[1..]) {
        let what = format!("unit_gcn grad {name}");
        if name == "down.0.bias" {
            // A bias right before a training BN gets exactly zero gradient (BN removes the
            // channel mean): both sides are rounding noise, small beside the weight's gradient.
            let scale = max_abs(&want["down.0.weight"]);
            assert!(
                max_abs(&want[name]) <= 1e-12 * scale,
                "{what}: reference not zero"
            );
            check(&what, max_abs(&to_f64(got)) / scale, REDUCTION_TOL);
        } else {
            check(&what, normwise_error(got, &want[name]), REDUCTION_TOL);
        }
    }
}

#[test]
fn unit_with_down_matches_reference() {
    let cfg = UnitGcnConfig {
        in_channels: 3,
        out_channels: 16,
        joints: 5,
    };
    unit_case(cfg, 2, 7, 410);
}

#[test]
fn unit_with_identity_down_matches_reference() {
    let cfg = UnitGcnConfig {
        in_channels: 16,
        out_channels: 16,
        joints: 5,
    };
    unit_case(cfg, 2, 7, 450);
}

#[test]
fn unit_gradients_pass_finite_differences() {
    // x, then the unit's tensors in their declaration order, all as inputs of the check.
    let (b, cin, cout, t, v, r) = (2, 3, 8, 4, 4, 8);
    let mut shapes = vec![vec![b, cin, t, v], vec![3, v, v], vec![1]];
    for _ in 0..3 {
        for (co, ci) in [(r, cin), (r, cin), (cout, cin), (cout, r)] {
            shapes.extend([vec![co, ci, 1, 1], vec![co]]);
        }
    }
    shapes.extend([vec![cout, cin, 1, 1], vec![cout]]);
    shapes.extend(vec![vec![cout]; 4]);
    let mut inputs: Vec<(Vec<usize>, Vec<f32>)> = shapes
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let n = s.iter().product();
            let values = uniform(500 + i as u64, n, -1.0, 1.0);
            (s, values)
        })
        .collect();
    // Finite differences are wrong where a step crosses the kink of the final ReLU. A BN output
    // x̂ has |x̂| ≤ √(n − 1) = √31 over the n = 32 values of a channel, so BN scales of at most
    // 0.08, a `down` shift within ±0.2 and an output shift of 1.5 to 2 in size keep every
    // pre-activation at least 0.4 away from 0, beyond the reach of a step; the shifts' signs
    // vary, so the ReLU masks some channels and passes others.
    inputs[29].1 = away_from_zero(540, cout, 0.03, 0.08);
    inputs[30].1 = uniform(541, cout, -0.2, 0.2);
    inputs[31].1 = away_from_zero(542, cout, 0.03, 0.08);
    inputs[32].1 = away_from_zero(543, cout, 1.5, 2.0);
    // Inputs stand for the parameters here, so the packs are concatenations of them.
    let stack = |g: &mut Graph, convs: &[Conv]| {
        let cin = g.shape(convs[0].weight)[1];
        let flat = |g: &mut Graph, t: TensorId| {
            let n = g.numel(t);
            reshape(g, t, &[1, n])
        };
        let weights: Vec<TensorId> = convs.iter().map(|c| flat(g, c.weight)).collect();
        let biases: Vec<TensorId> = convs.iter().map(|c| flat(g, c.bias)).collect();
        let (weight, bias) = (concat(g, &weights), concat(g, &biases));
        let total = g.numel(bias);
        Conv {
            weight: reshape(g, weight, &[total, cin]),
            bias: reshape(g, bias, &[total]),
        }
    };
    let r = gradcheck(
        &inputs,
        |g, x| {
            let conv = |k: usize| Conv {
                weight: x[k],
                bias: x[k + 1],
            };
            let bn = |g: &mut Graph, name: &str, weight: TensorId, bias: TensorId| BatchNorm {
                weight,
                bias,
                running_mean: g.state(&format!("{name}.running_mean"), &[cout], vec![0.0; cout]),
                running_var: g.state(&format!("{name}.running_var"), &[cout], vec![1.0; cout]),
                num_batches_tracked: g.state(
                    &format!("{name}.num_batches_tracked"),
                    &[1],
                    vec![0.0],
                ),
                eps: DEFAULT_EPS,
                momentum: DEFAULT_MOMENTUM,
            };
            let convs: [Ctrgc; 3] = std::array::from_fn(|i| Ctrgc {
                conv1: conv(3 + 8 * i),
                conv2: conv(5 + 8 * i),
                conv3: conv(7 + 8 * i),
                conv4: conv(9 + 8 * i),
            });
            let unit = UnitGcn {
                pa: x[1],
                alpha: x[2],
                relations: stack(g, &convs.map(|b| [b.conv1, b.conv2]).concat()),
                values: stack(g, &convs.map(|b| b.conv3)),
                conv4s: stack(g, &convs.map(|b| b.conv4)),
                down: Some(Down {
                    conv: conv(27),
                    bn: bn(g, "down", x[29], x[30]),
                }),
                bn: bn(g, "bn", x[31], x[32]),
            };
            unit.forward(g, x[0], Mode::Train)
        },
        1e-2,
        560,
    );
    check("unit_gcn gradcheck", r.worst, 1e-2);
}
