use sfhead::engine::{Graph, TensorId};
use sfhead::ops::batch_norm::{self, BatchNorm, Mode};
use sfhead::ops::concat::{self, concat};
use sfhead::ops::permute::{self, permute};
use sfhead::ops::{mul, reduce};
use sfhead::testing::*;

use crate::fixed;

fn weighted_loss(g: &mut Graph, y: TensorId, gy: &[f32]) -> TensorId {
    let shape = g.shape(y).to_vec();
    let gy = g.constant("gy", &shape, gy.to_vec());
    let weighted = mul::mul(g, y, gy);
    let axes: Vec<usize> = (0..shape.len()).collect();
    reduce::sum(g, weighted, &axes)
}

/// Three parts (one dispatch each way), nine (two, the second window starting at channel 12),
/// and three with a sample's window of 12,400 elements (several workgroups per sample).
#[test]
fn concat_and_its_slices_match_reference() {
    concat_case(&[2, 3, 1], (3, 5, 7));
    concat_case(&[1, 2, 1, 3, 1, 1, 3, 2, 2], (3, 5, 7));
    concat_case(&[5, 9, 2], (2, 31, 25));
}

/// Concatenation and split give the same bits under the GPU tuning (an element per invocation)
/// as under the CPU one (eight).
#[test]
fn concat_and_split_agree_across_tunings() {
    use sfhead::gpu::Tuning;
    let shape = [3, 11, 9, 29];
    let n: usize = shape.iter().product();
    let run = |tuning: Tuning| {
        let mut g = Graph::new();
        let x = g.input("x", &shape);
        let parts = concat::split(&mut g, x, &[4, 1, 6]);
        let y = concat(&mut g, &[parts[2], parts[0], parts[1], parts[0]]);
        let data = uniform(620, n, -1.0, 1.0);
        let keep: Vec<TensorId> = parts.iter().copied().chain([y]).collect();
        crate::bits_under(tuning, &g, &[(x, &data)], &keep)
    };
    assert_eq!(run(Tuning::GPU), run(Tuning::CPU));
}

fn concat_case(channels: &[usize], (batch, frames, joints): (usize, usize, usize)) {
    let inner = frames * joints;
    let total: usize = channels.iter().sum();
    let mut g = Graph::new();
    let parts: Vec<TensorId> = channels
        .iter()
        .enumerate()
        .map(|(i, &c)| g.input(&format!("x{i}"), &[batch, c, frames, joints]))
        .collect();
    let y = concat(&mut g, &parts);
    assert_eq!(g.shape(y), [batch, total, frames, joints]);
    let gy = uniform(600, g.numel(y), -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let grads = g.backward(loss, &parts).unwrap();
    let keep: Vec<TensorId> = [y].into_iter().chain(grads).collect();
    let h = Harness::new(g, &keep);
    let data: Vec<Vec<f32>> = channels
        .iter()
        .enumerate()
        .map(|(i, &c)| uniform(601 + i as u64, batch * c * inner, -1.0, 1.0))
        .collect();
    let feed: Vec<(TensorId, &[f32])> = parts
        .iter()
        .copied()
        .zip(data.iter().map(Vec::as_slice))
        .collect();
    let out = h.run(&feed, &keep);
    let f64_parts: Vec<Vec<f64>> = data.iter().map(|d| to_f64(d)).collect();
    let refs: Vec<(&[f64], usize)> = f64_parts
        .iter()
        .zip(channels.iter().copied())
        .map(|(d, c)| (d.as_slice(), c))
        .collect();
    let want = concat::cpu::concat(&refs, batch, inner);
    check("concat", elementwise_error(&out[0], &want), 0.0);
    let gyf = to_f64(&gy);
    let mut offset = 0;
    for (i, &c) in channels.iter().enumerate() {
        let want = concat::cpu::slice(&gyf, (total, offset, c), batch, inner);
        check(
            &format!("concat grad of part {i}"),
            elementwise_error(&out[1 + i], &want),
            0.0,
        );
        offset += c;
    }
}

#[test]
fn concat_gradients_pass_finite_differences() {
    let inputs = vec![
        (vec![2, 3, 4, 5], uniform(610, 120, -1.0, 1.0)),
        (vec![2, 1, 4, 5], uniform(611, 40, -1.0, 1.0)),
    ];
    let r = gradcheck(&inputs, |g, x| concat(g, &[x[0], x[1], x[0]]), 1e-2, 612);
    check("concat gradcheck", r.worst, 1e-2);
}

#[test]
fn concat_snapshot() {
    let mut g = Graph::new();
    let a = g.input("a", &[2, 1, 3]);
    let b = g.input("b", &[2, 2, 3]);
    let y = concat(&mut g, &[a, b]);
    let h = Harness::new(g, &[y]);
    let out = h.run(&[(a, &fixed(6, 0.0)), (b, &fixed(12, 1.0))], &[y]);
    insta::assert_snapshot!("concat", rounded(&out[0], 4, 3));
}

/// CTR-GCN's data_bn, straight from the definition: channel m·V·C + v·C + c of the
/// BatchNorm1d input holds x[n, c, t, v, m] at time t.
fn data_bn_view(x: &[f64], [_, c, t, v, m]: [usize; 5]) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (e, value) in x.iter().enumerate() {
        let (ni, ci, ti, vi, mi) = (
            e / (c * t * v * m),
            (e / (t * v * m)) % c,
            (e / (v * m)) % t,
            (e / m) % v,
            e % m,
        );
        out[(ni * m * v * c + mi * v * c + vi * c + ci) * t + ti] = *value;
    }
    out
}

#[test]
fn data_bn_round_trip_matches_reference() {
    let dims @ [n, c, t, v, m] = [2, 3, 5, 7, 2];
    let channels = m * v * c;
    let mut g = Graph::new();
    let x = g.input("x", &dims);
    // (N, C, T, V, M) → (N, M, V, C, T) seen as (N, M·V·C, T).
    let seq = permute(&mut g, x, &dims, &[0, 4, 3, 1, 2], &[n, channels, t]);
    let gamma = uniform(620, channels, 0.5, 1.5);
    let bn = BatchNorm::with_weight(&mut g, "data_bn", gamma.clone());
    let normed = bn.apply(&mut g, seq, Mode::Train);
    // (N, M·V·C, T) seen as (N, M, V, C, T) → (N, M, C, T, V) seen as (N·M, C, T, V).
    let y = permute(
        &mut g,
        normed,
        &[n, m, v, c, t],
        &[0, 1, 3, 4, 2],
        &[n * m, c, t, v],
    );
    let gy = uniform(621, g.numel(y), -1.0, 1.0);
    let loss = weighted_loss(&mut g, y, &gy);
    let grads = g.backward(loss, &[x, bn.weight]).unwrap();
    let keep = [seq, y, grads[0], grads[1]];
    let h = Harness::new(g, &keep);
    let data = uniform(622, dims.iter().product(), -2.0, 2.0);
    let out = h.run(&[(x, &data)], &keep);

    let xf = to_f64(&data);
    let seq_want = data_bn_view(&xf, dims);
    assert_eq!(
        seq_want,
        permute::cpu::permute(&xf, &dims, &[0, 4, 3, 1, 2])
    );
    check("data_bn view", elementwise_error(&out[0], &seq_want), 0.0);
    let gammaf = to_f64(&gamma);
    let normed_want =
        batch_norm::cpu::train(&seq_want, channels, t, &gammaf, &vec![0.0; channels], 1e-5);
    let y_want = permute::cpu::permute(&normed_want, &[n, m, v, c, t], &[0, 1, 3, 4, 2]);
    // Each (n, m) row of the result is sample n's person m in (C, T, V) order.
    for (e, &value) in y_want.iter().enumerate() {
        let (row, ci, ti, vi) = (e / (c * t * v), (e / (t * v)) % c, (e / v) % t, e % v);
        let (ni, mi) = (row / m, row % m);
        assert_eq!(
            value,
            normed_want[(ni * channels + mi * v * c + vi * c + ci) * t + ti]
        );
    }
    check("data_bn", normwise_error(&out[1], &y_want), REDUCTION_TOL);

    // Backward: gy back through the inverse permutation, BN, and the inverse of the first view.
    let gy_seq = data_bn_view_grad(&to_f64(&gy), dims);
    let (gseq, ggamma, _) =
        batch_norm::cpu::backward(&seq_want, channels, t, &gammaf, &gy_seq, 1e-5);
    let gx_want = permute::cpu::permute(&gseq, &[n, m, v, c, t], &[0, 3, 4, 2, 1]);
    check(
        "data_bn grad x",
        normwise_error(&out[2], &gx_want),
        REDUCTION_TOL,
    );
    check(
        "data_bn grad γ",
        normwise_error(&out[3], &ggamma),
        REDUCTION_TOL,
    );
}

/// The output gradient (N·M, C, T, V) laid out as the BatchNorm1d input (N, M·V·C, T).
fn data_bn_view_grad(gy: &[f64], [_, c, t, v, m]: [usize; 5]) -> Vec<f64> {
    let mut out = vec![0.0; gy.len()];
    for (e, value) in gy.iter().enumerate() {
        let (row, ci, ti, vi) = (e / (c * t * v), (e / (t * v)) % c, (e / v) % t, e % v);
        let (ni, mi) = (row / m, row % m);
        out[(ni * m * v * c + mi * v * c + vi * c + ci) * t + ti] = *value;
    }
    out
}

#[test]
fn permute_round_trip_is_exact() {
    let view = [3, 1, 4, 2, 5];
    let perm = [4, 2, 0, 3, 1];
    let mut g = Graph::new();
    let x = g.input("x", &[12, 10]);
    let y = permute(&mut g, x, &view, &perm, &permute::permuted(&view, &perm));
    let inverse = [2, 4, 1, 3, 0];
    let back = permute(
        &mut g,
        y,
        &permute::permuted(&view, &perm),
        &inverse,
        &[12, 10],
    );
    let h = Harness::new(g, &[y, back]);
    let data = uniform(630, 120, -1.0, 1.0);
    let out = h.run(&[(x, &data)], &[y, back]);
    let want = permute::cpu::permute(&to_f64(&data), &view, &perm);
    check("permute", elementwise_error(&out[0], &want), 0.0);
    assert_eq!(out[1], data);
}

#[test]
fn permute_gradients_pass_finite_differences() {
    let inputs = vec![(vec![2, 3, 4, 5], uniform(640, 120, -1.0, 1.0))];
    let r = gradcheck(
        &inputs,
        |g, x| permute(g, x[0], &[2, 3, 20], &[2, 0, 1], &[10, 12]),
        1e-2,
        641,
    );
    check("permute gradcheck", r.worst, 1e-2);
}

#[test]
fn permute_snapshot() {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 3, 4]);
    let y = permute(&mut g, x, &[2, 3, 4], &[2, 0, 1], &[4, 6]);
    let h = Harness::new(g, &[y]);
    let out = h.run(&[(x, &fixed(24, 0.0))], &[y]);
    insta::assert_snapshot!("permute_201", rounded(&out[0], 4, 6));
}

/// Views with size-1 axes, neighbours that merge, eight axes, the identity and a last axis of
/// one: each copy is the reference's exactly, by element (the GPU tuning) and by row (the CPU).
#[test]
fn permute_cases_match_reference_under_both_tunings() {
    use sfhead::gpu::Tuning;
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3, 1, 4, 2, 5], &[4, 2, 0, 3, 1]),
        (&[2, 2, 37, 40], &[0, 2, 1, 3]),
        (&[2, 3, 4, 5, 6], &[0, 1, 4, 2, 3]),
        (&[2, 1, 3, 2, 1, 2, 3, 2], &[7, 5, 3, 1, 0, 2, 4, 6]),
        (&[6, 7, 5], &[0, 1, 2]),
        (&[4, 9, 1], &[1, 0, 2]),
    ];
    for (view, perm) in cases {
        let n: usize = view.iter().product();
        let data = uniform(650, n, -1.0, 1.0);
        let want = permute::cpu::permute(&to_f64(&data), view, perm);
        for tuning in [Tuning::GPU, Tuning::CPU] {
            let mut g = Graph::new();
            let x = g.input("x", &[n]);
            let y = permute(&mut g, x, view, perm, &[n]);
            let got = crate::bits_under(tuning, &g, &[(x, &data)], &[y]);
            let got: Vec<f32> = got[0].iter().map(|&b| f32::from_bits(b)).collect();
            check(
                &format!("permute {view:?} by {perm:?}"),
                elementwise_error(&got, &want),
                0.0,
            );
        }
    }
}
