use sfhead::engine::{Graph, TensorId};
use sfhead::gpu::Tuning;
use sfhead::ops::{
    add, channel_affine, leaky_relu, mul, reduce, relu, sigmoid, tanh, weighted_sum,
};
use sfhead::testing::*;

use crate::{bits_under, fixed};

const SHAPE: [usize; 3] = [3, 7, 13];
const N: usize = 3 * 7 * 13;

#[test]
fn add_matches_reference() {
    let mut g = Graph::new();
    let (a, b) = (g.input("a", &SHAPE), g.input("b", &SHAPE));
    let y = add::add(&mut g, a, b);
    let h = Harness::new(g, &[y]);
    let (da, db) = (uniform(1, N, -2.0, 2.0), uniform(2, N, -2.0, 2.0));
    let got = &h.run(&[(a, &da), (b, &db)], &[y])[0];
    let want = add::cpu::add(&to_f64(&da), &to_f64(&db));
    check("add", elementwise_error(got, &want), ELEMENTWISE_TOL);
}

/// A sum of 3, 7 (one dispatch) and 16 (three chunks) terms, one term repeated: the f64 sum
/// within rounding, and the bits of a chain of two-term adds.
#[test]
fn sum_of_many_matches_reference_and_a_chain_of_adds_bit_for_bit() {
    for count in [3, 7, 16] {
        let mut g = Graph::new();
        let mut terms: Vec<_> = (0..count)
            .map(|i| g.input(&format!("t{i}"), &SHAPE))
            .collect();
        terms.push(terms[1]);
        let total = add::sum_of(&mut g, &terms);
        let chain = terms[1..]
            .iter()
            .fold(terms[0], |acc, &t| add::add(&mut g, acc, t));
        let h = Harness::new(g, &[total, chain]);
        let data: Vec<Vec<f32>> = (0..count)
            .map(|i| uniform(20 + i as u64, N, -2.0, 2.0))
            .collect();
        let feeds: Vec<_> = terms[..count]
            .iter()
            .zip(&data)
            .map(|(&t, d)| (t, &d[..]))
            .collect();
        let out = h.run(&feeds, &[total, chain]);
        let mut want = vec![0.0; N];
        for d in data.iter().chain([&data[1]]) {
            want.iter_mut()
                .zip(d)
                .for_each(|(w, v)| *w += f64::from(*v));
        }
        check(
            "sum",
            elementwise_error(&out[0], &want),
            4.0 * ELEMENTWISE_TOL,
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out[0]), bits(&out[1]), "{count} terms");
    }
}

/// ReLU(a + b) as one op against `relu` of `add`: output and both gradients, bit for bit.
#[test]
fn add_relu_matches_relu_of_add_bit_for_bit() {
    let run = |fused: bool| {
        let mut g = Graph::new();
        let (a, b) = (g.input("a", &SHAPE), g.input("b", &SHAPE));
        let y = if fused {
            add::add_relu(&mut g, a, b)
        } else {
            let s = add::add(&mut g, a, b);
            relu::relu(&mut g, s)
        };
        let gy = g.constant("gy", &SHAPE, uniform(30, N, -1.0, 1.0));
        let weighted = mul::mul(&mut g, y, gy);
        let loss = sfhead::ops::reduce::sum(&mut g, weighted, &[0, 1, 2]);
        let grads = g.backward(loss, &[a, b]).unwrap();
        let keep = [y, grads[0], grads[1]];
        let h = Harness::new(g, &keep);
        let (da, db) = (uniform(31, N, -2.0, 2.0), uniform(32, N, -2.0, 2.0));
        let out = h.run(&[(a, &da), (b, &db)], &keep);
        let zeros = out[0].iter().filter(|v| **v == 0.0).count();
        assert!(zeros > N / 4 && zeros < N * 3 / 4, "{zeros} of {N} clamped");
        out.into_iter()
            .map(|t| t.into_iter().map(f32::to_bits).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn mul_matches_reference() {
    let mut g = Graph::new();
    let (a, b) = (g.input("a", &SHAPE), g.input("b", &SHAPE));
    let y = mul::mul(&mut g, a, b);
    let h = Harness::new(g, &[y]);
    let (da, db) = (uniform(3, N, -2.0, 2.0), uniform(4, N, -2.0, 2.0));
    let got = &h.run(&[(a, &da), (b, &db)], &[y])[0];
    let want = mul::cpu::mul(&to_f64(&da), &to_f64(&db));
    check("mul", elementwise_error(got, &want), ELEMENTWISE_TOL);
}

#[test]
fn relu_forward_and_backward_match_reference() {
    let mut g = Graph::new();
    let x = g.input("x", &SHAPE);
    let gy_data = uniform(6, N, -1.0, 1.0);
    let gy = g.constant("gy", &SHAPE, gy_data.clone());
    let y = relu::relu(&mut g, x);
    // d/dx Σ gy ⊙ relu(x) is exactly relu's backward applied to gy.
    let weighted = mul::mul(&mut g, y, gy);
    let loss = sfhead::ops::reduce::sum(&mut g, weighted, &[0, 1, 2]);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[y, gx]);
    let dx = uniform(5, N, -1.0, 1.0);
    let out = h.run(&[(x, &dx)], &[y, gx]);
    let want_y = relu::cpu::relu(&to_f64(&dx));
    check("relu", elementwise_error(&out[0], &want_y), ELEMENTWISE_TOL);
    let want_gx = relu::cpu::relu_grad(&want_y, &to_f64(&gy_data));
    check(
        "relu grad",
        elementwise_error(&out[1], &want_gx),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn elementwise_gradients_pass_finite_differences() {
    let shape = SHAPE.to_vec();
    let inputs = || {
        vec![
            (shape.clone(), away_from_zero(7, N, 0.2, 1.0)),
            (shape.clone(), away_from_zero(8, N, 0.2, 1.0)),
        ]
    };
    let r = gradcheck(&inputs(), |g, x| add::add(g, x[0], x[1]), 1e-2, 9);
    check("add gradcheck", r.worst, 1e-2);
    let r = gradcheck(
        &inputs(),
        |g, x| add::sum_of(g, &[x[0], x[1], x[0]]),
        1e-2,
        12,
    );
    check("sum gradcheck", r.worst, 1e-2);
    // |a + b| ≥ 0.1, away from the kink.
    let apart = vec![
        (shape.clone(), away_from_zero(14, N, 0.2, 1.0)),
        (shape.clone(), uniform(15, N, -0.1, 0.1)),
    ];
    let r = gradcheck(&apart, |g, x| add::add_relu(g, x[0], x[1]), 1e-2, 13);
    check("add_relu gradcheck", r.worst, 1e-2);
    let r = gradcheck(&inputs(), |g, x| mul::mul(g, x[0], x[1]), 1e-2, 10);
    check("mul gradcheck", r.worst, 1e-2);
    let r = gradcheck(&inputs()[..1], |g, x| relu::relu(g, x[0]), 1e-2, 11);
    check("relu gradcheck", r.worst, 1e-2);
}

#[test]
fn elementwise_snapshots() {
    let mut g = Graph::new();
    let (a, b) = (g.input("a", &[4, 6]), g.input("b", &[4, 6]));
    let s = add::add(&mut g, a, b);
    let p = mul::mul(&mut g, a, b);
    let r = relu::relu(&mut g, a);
    let many = add::sum_of(&mut g, &[a, b, a]);
    let clamped = add::add_relu(&mut g, a, b);
    let h = Harness::new(g, &[s, p, r, many, clamped]);
    let (da, db) = (fixed(24, 0.0), fixed(24, 1.0));
    let out = h.run(&[(a, &da), (b, &db)], &[s, p, r, many, clamped]);
    insta::assert_snapshot!("add", rounded(&out[0], 4, 6));
    insta::assert_snapshot!("mul", rounded(&out[1], 4, 6));
    insta::assert_snapshot!("relu", rounded(&out[2], 4, 6));
    insta::assert_snapshot!("sum_of_three", rounded(&out[3], 4, 6));
    insta::assert_snapshot!("add_relu", rounded(&out[4], 4, 6));
}

/// Over 4,585 elements (two full workgroups of the CPU tuning's 8 × 256 and a partial third),
/// every elementwise kernel gives the same bits with eight elements per invocation as with one,
/// forward and backward.
#[test]
fn elementwise_spans_agree_bit_for_bit() {
    let shape = [5, 7, 131];
    let n: usize = shape.iter().product();
    let run = |tuning: Tuning| -> Vec<Vec<u32>> {
        let mut g = Graph::new();
        let (a, b) = (g.input("a", &shape), g.input("b", &shape));
        let (w, bias) = (g.input("w", &[7]), g.input("bias", &[7]));
        let omega = g.input("omega", &[4]);
        let r = relu::relu(&mut g, a);
        let s = sigmoid::sigmoid(&mut g, a);
        let outputs = vec![
            add::add(&mut g, a, b),
            add::add_relu(&mut g, a, b),
            // Nine terms: a full dispatch, then one accumulating into it.
            add::sum_of(&mut g, &[a, b, a, b, a, b, a, b, a]),
            mul::mul(&mut g, a, b),
            r,
            s,
            tanh::tanh(&mut g, b),
            leaky_relu::leaky_relu(&mut g, b, 0.1),
            channel_affine::channel_affine(&mut g, a, w, Some(bias)),
            channel_affine::channel_affine(&mut g, b, w, None),
            weighted_sum::weighted_sum(&mut g, &[a, b, r, s], omega),
        ];
        let total = add::sum_of(&mut g, &outputs);
        let gy = g.constant("gy", &shape, uniform(3, n, -1.0, 1.0));
        let weighted = mul::mul(&mut g, total, gy);
        let loss = reduce::sum(&mut g, weighted, &[0, 1, 2]);
        let mut kept = outputs.clone();
        kept.extend(g.backward(loss, &[a, b]).unwrap());
        let data = [
            (a, uniform(1, n, -2.0, 2.0)),
            (b, uniform(2, n, -2.0, 2.0)),
            (w, uniform(4, 7, -1.0, 1.0)),
            (bias, uniform(5, 7, -1.0, 1.0)),
            (omega, vec![0.1, 0.2, 0.3, 0.4]),
        ];
        let inputs: Vec<(TensorId, &[f32])> =
            data.iter().map(|(t, d)| (*t, d.as_slice())).collect();
        bits_under(tuning, &g, &inputs, &kept)
    };
    let (one, eight) = (run(Tuning::GPU), run(Tuning::CPU));
    assert_eq!(
        (Tuning::GPU.elementwise_span, Tuning::CPU.elementwise_span),
        (1, 8)
    );
    assert_eq!(one.len(), 13);
    assert_eq!(one, eight);
}
