use sfhead::engine::Graph;
use sfhead::ops::batch_norm::{BatchNorm, Mode, cpu};
use sfhead::ops::{mul, reduce, relu, sigmoid};
use sfhead::testing::*;

use crate::fixed;

/// Runs a training step of BN on `shape` with inputs spread over [offset − 2, offset + 3], checks
/// y, the running statistics and all gradients.
fn train_case(shape: &[usize], seed: u64, offset: f32) {
    let c = shape[1];
    let inner: usize = shape[2..].iter().product();
    let n: usize = shape.iter().product();
    let mut g = Graph::new();
    let x = g.input("x", shape);
    let bn = BatchNorm::with_weight(&mut g, "bn", uniform(seed, c, 0.5, 1.5));
    let y = bn.apply(&mut g, x, Mode::Train);
    let gy_data = uniform(seed + 1, n, -1.0, 1.0);
    let gy = g.constant("gy", shape, gy_data.clone());
    let weighted = mul::mul(&mut g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    let loss = reduce::sum(&mut g, weighted, &axes);
    let grads = g.backward(loss, &[x, bn.weight, bn.bias]).unwrap();
    let keep = [y, grads[0], grads[1], grads[2]];
    let h = Harness::new(g, &keep);
    let dx: Vec<f32> = uniform(seed + 2, n, -2.0, 3.0)
        .iter()
        .map(|v| v + offset)
        .collect();
    let out = h.run(&[(x, &dx)], &keep);

    let xf = to_f64(&dx);
    let gamma = to_f64(&uniform(seed, c, 0.5, 1.5));
    let beta = vec![0.0; c];
    let want = cpu::train(&xf, c, inner, &gamma, &beta, 1e-5);
    check("batch norm", normwise_error(&out[0], &want), REDUCTION_TOL);
    let (gx, gg, gb) = cpu::backward(&xf, c, inner, &gamma, &to_f64(&gy_data), 1e-5);
    check(
        "batch norm grad x",
        normwise_error(&out[1], &gx),
        REDUCTION_TOL,
    );
    check(
        "batch norm grad γ",
        normwise_error(&out[2], &gg),
        REDUCTION_TOL,
    );
    check(
        "batch norm grad β",
        normwise_error(&out[3], &gb),
        REDUCTION_TOL,
    );

    let (rm, rv) = cpu::running(&xf, c, inner, &vec![0.0; c], &vec![1.0; c], 0.1);
    let got_rm = h.exe.read(bn.running_mean).unwrap();
    let got_rv = h.exe.read(bn.running_var).unwrap();
    check("running mean", normwise_error(&got_rm, &rm), REDUCTION_TOL);
    check("running var", normwise_error(&got_rv, &rv), REDUCTION_TOL);
    assert_eq!(h.exe.read(bn.num_batches_tracked).unwrap(), vec![1.0]);
}

#[test]
fn batch_norm_2d_training_matches_reference() {
    train_case(&[5, 3, 7, 11], 110, 0.0);
}

#[test]
fn batch_norm_1d_training_matches_reference() {
    train_case(&[9, 13], 120, 0.0);
    train_case(&[6, 5, 17], 130, 0.0);
}

/// A common offset of 1e3 over a spread of 5: E[x²] − E[x]² in f32 would lose about two
/// digits of the variance to cancellation; the centred second pass keeps it. Channels of 4,420
/// elements take the fused statistics, channels of 80,000 the tree path.
#[test]
fn batch_norm_variance_survives_a_large_offset() {
    train_case(&[4, 5, 52, 17], 160, 1e3);
    train_case(&[2, 3, 40_000], 170, 1e3);
}

/// Channels of at most 65,536 elements cost one statistics dispatch forward and one fused
/// reduction backward, each followed by one elementwise kernel; longer ones take the two-pass
/// trees.
#[test]
fn batch_norm_dispatches_follow_the_channel_length() {
    for (shape, forward, backward) in [
        (vec![4, 64, 52, 20], 1, 1),
        (vec![1, 2, 65_536], 1, 1),
        (vec![1, 2, 65_537], 6, 6),
    ] {
        let mut g = Graph::new();
        let x = g.input("x", &shape);
        let bn = BatchNorm::new(&mut g, "bn", shape[1]);
        let y = bn.apply(&mut g, x, Mode::Train);
        let loss = reduce::sum(&mut g, y, &(0..shape.len()).collect::<Vec<_>>());
        let grads = g.backward(loss, &[x, bn.weight, bn.bias]).unwrap();
        let h = Harness::new(g, &grads);
        let labels = h.exe.dispatch_labels();
        let count = |op: &str| {
            let prefix = format!("{op}#");
            labels.iter().filter(|l| l.starts_with(&prefix)).count()
        };
        assert_eq!(count("batch_norm"), forward, "{shape:?}: {labels:?}");
        assert_eq!(count("batch_norm_grad"), backward, "{shape:?}: {labels:?}");
    }
}

/// An activation BatchNorm applies in its own pass, and the same activation as an op of its own.
#[derive(Debug, Clone, Copy)]
enum Fused {
    Relu,
    Sigmoid,
}

/// act(BN) as one op against the activation op of BN, training (output, running statistics,
/// gradients) and evaluation, bit for bit: on a short channel (one dispatch each way) and a long
/// one (the tree path).
fn fused_activation_matches_its_op(act: Fused) {
    for shape in [vec![3, 5, 4, 7], vec![1, 2, 70_000]] {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let run = |fused: bool| {
            let mut g = Graph::new();
            let x = g.input("x", &shape);
            let bn = BatchNorm::with_weight(&mut g, "bn", uniform(160, c, -1.5, 1.5));
            let apply = |g: &mut Graph, mode: Mode| match (fused, act) {
                (true, Fused::Relu) => bn.apply_relu(g, x, mode),
                (true, Fused::Sigmoid) => bn.apply_sigmoid(g, x, mode),
                (false, Fused::Relu) => {
                    let h = bn.apply(g, x, mode);
                    relu::relu(g, h)
                }
                (false, Fused::Sigmoid) => {
                    let h = bn.apply(g, x, mode);
                    sigmoid::sigmoid(g, h)
                }
            };
            let y = apply(&mut g, Mode::Train);
            let gy = g.constant("gy", &shape, uniform(161, n, -1.0, 1.0));
            let weighted = mul::mul(&mut g, y, gy);
            let loss = reduce::sum(&mut g, weighted, &(0..shape.len()).collect::<Vec<_>>());
            let grads = g.backward(loss, &[x, bn.weight, bn.bias]).unwrap();
            let eval = apply(&mut g, Mode::Eval);
            let keep = [&[y, eval][..], &grads].concat();
            let h = Harness::new(g, &keep);
            let mut out = h.run(&[(x, &uniform(162, n, -2.0, 2.0))], &keep);
            out.push(h.exe.read(bn.running_mean).unwrap());
            out.push(h.exe.read(bn.running_var).unwrap());
            match act {
                Fused::Relu => {
                    let zeros = out[0].iter().filter(|v| **v == 0.0).count();
                    assert!(
                        zeros > n / 5 && zeros < n * 4 / 5,
                        "{shape:?}: {zeros} of {n} clamped"
                    );
                }
                Fused::Sigmoid => {
                    let spread = out[0].iter().filter(|v| **v < 0.25 || **v > 0.75).count();
                    assert!(spread > n / 10, "{shape:?}: σ barely leaves its middle");
                }
            }
            out.into_iter()
                .map(|t| t.into_iter().map(f32::to_bits).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(true), run(false), "{act:?} {shape:?}");
    }
}

#[test]
fn batch_norm_relu_matches_relu_of_batch_norm_bit_for_bit() {
    fused_activation_matches_its_op(Fused::Relu);
}

#[test]
fn batch_norm_sigmoid_matches_sigmoid_of_batch_norm_bit_for_bit() {
    fused_activation_matches_its_op(Fused::Sigmoid);
}

#[test]
fn batch_norm_relu_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 2, 6]);
    let bn = BatchNorm::new(&mut g, "bn", 2);
    let y = bn.apply_relu(&mut g, x, Mode::Train);
    let h = Harness::new(g, &[y]);
    let out = h.run(&[(x, &fixed(24, 0.2))], &[y]);
    insta::assert_snapshot!("batch_norm_relu_train", rounded(&out[0], 4, 6));
}

#[test]
fn batch_norm_eval_uses_running_statistics() {
    let shape = [4, 3, 5];
    let n = 60;
    let mut g = Graph::new();
    let x = g.input("x", &shape);
    let bn = BatchNorm::with_weight(&mut g, "bn", vec![0.5, 1.0, 2.0]);
    let y = bn.apply(&mut g, x, Mode::Eval);
    let h = Harness::new(g, &[y]);
    let dx = uniform(140, n, -1.0, 1.0);
    let out = &h.run(&[(x, &dx)], &[y])[0];
    let want = cpu::eval(
        &to_f64(&dx),
        3,
        5,
        &[0.5, 1.0, 2.0],
        &[0.0; 3],
        &[0.0; 3],
        &[1.0; 3],
        1e-5,
    );
    check(
        "batch norm eval",
        elementwise_error(out, &want),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn batch_norm_gradients_pass_finite_differences() {
    let shape = vec![4, 3, 2, 5];
    let inputs = vec![(shape, uniform(150, 120, -1.0, 1.0))];
    let r = gradcheck(
        &inputs,
        |g, x| {
            let bn = BatchNorm::with_weight(g, "bn", vec![0.7, 1.3, -0.4]);
            bn.apply(g, x[0], Mode::Train)
        },
        1e-2,
        151,
    );
    check("batch norm gradcheck", r.worst, 1e-2);
}

#[test]
fn batch_norm_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 2, 6]);
    let bn = BatchNorm::new(&mut g, "bn", 2);
    let y = bn.apply(&mut g, x, Mode::Train);
    let h = Harness::new(g, &[y]);
    let out = h.run(&[(x, &fixed(24, 0.2))], &[y]);
    insta::assert_snapshot!("batch_norm_train", rounded(&out[0], 4, 6));
}
