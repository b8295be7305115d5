//! Engine behaviour: buffer planning, gradient fan-in, dead-node pruning, one submission per
//! step, errors on misuse, and a harness that catches a wrong backward rule.

use sfhead::engine::{
    Arg, AutodiffError, CompileError, Executor, GradContext, Graph, Op, Recorder, Store, TensorId,
    plan_activations,
};
use sfhead::gpu::Kernel;
use sfhead::ops::{add, mul, reduce, relu};
use sfhead::testing::*;

#[test]
fn planner_shares_buffers_between_disjoint_lifetimes() {
    let mut g = Graph::new();
    let x = g.input("x", &[1000]);
    let mut h = x;
    for _ in 0..6 {
        h = relu::relu(&mut g, h);
    }
    let plan = plan_activations(&g, &[h]);
    // A chain needs two live buffers at a time, whatever its length.
    assert_eq!(plan.slot_bytes.len(), 2);
    assert_eq!(plan.peak_bytes(), 2 * 4000);
    assert_eq!(plan.unshared_bytes, 6 * 4000);
    // No node writes a slot that one of its inputs lives in.
    for &i in &plan.live_nodes {
        let node = &g.nodes()[i];
        for out in &node.outputs {
            for input in &node.inputs {
                let (a, b) = (plan.slot_of[out.index()], plan.slot_of[input.index()]);
                assert!(a.is_none() || a != b, "node {i} reads and writes one slot");
            }
        }
    }
}

#[test]
fn unused_nodes_are_pruned() {
    let mut g = Graph::new();
    let x = g.input("x", &[10]);
    let used = relu::relu(&mut g, x);
    let _unused = add::add(&mut g, x, x);
    let plan = plan_activations(&g, &[used]);
    assert_eq!(plan.live_nodes, vec![0]);
}

#[test]
fn fan_in_gradients_are_summed() {
    // L = Σ (x ⊙ x + x) ⇒ dL/dx = 2x + 1, reached through three uses of x.
    let mut g = Graph::new();
    let x = g.input("x", &[17]);
    let sq = mul::mul(&mut g, x, x);
    let s = add::add(&mut g, sq, x);
    let loss = reduce::sum(&mut g, s, &[0]);
    let gx = g.backward(loss, &[x]).unwrap()[0];
    let h = Harness::new(g, &[gx]);
    let data = uniform(300, 17, -1.0, 1.0);
    let got = &h.run(&[(x, &data)], &[gx])[0];
    let want: Vec<f64> = data.iter().map(|&v| 2.0 * f64::from(v) + 1.0).collect();
    check("fan-in", elementwise_error(got, &want), ELEMENTWISE_TOL);
}

#[test]
fn backward_reports_unreachable_tensors() {
    let mut g = Graph::new();
    let x = g.input("x", &[3]);
    let other = g.input("other", &[3]);
    let loss = reduce::sum(&mut g, x, &[0]);
    assert_eq!(
        g.backward(loss, &[x, other]),
        Err(AutodiffError::NoGradient("other".into()))
    );
}

#[test]
fn a_step_is_one_submission() {
    // A device of its own: other tests submit to the shared one concurrently.
    let gpu = std::sync::Arc::new(sfhead::gpu::Gpu::new(None).expect("an adapter"));
    let mut g = Graph::new();
    let x = g.input("x", &[64]);
    let w = g.parameter("w", &[64], vec![0.5; 64]);
    let y = mul::mul(&mut g, x, w);
    let y = relu::relu(&mut g, y);
    let loss = reduce::mean(&mut g, y, &[0]);
    let grads = g.backward(loss, &[w]).unwrap();
    let lr = g.input("lr", &[1]);
    sfhead::ops::sgd::sgd(&mut g, &[(w, grads[0])], lr, Default::default());
    let exe = Executor::compile(&gpu, &g, &mut Store::new(), &[loss]).unwrap();
    assert!(exe.dispatch_labels().len() > 5);
    exe.write(x, &[1.0; 64]).unwrap();
    exe.write(lr, &[0.1]).unwrap();
    gpu.wait_idle();
    let before = gpu.submissions();
    for _ in 0..3 {
        exe.run();
    }
    assert_eq!(gpu.submissions() - before, 3);
}

#[test]
fn inputs_are_checked() {
    let mut g = Graph::new();
    let x = g.input("x", &[4]);
    let y = relu::relu(&mut g, x);
    let h = Harness::new(g, &[y]);
    assert!(matches!(
        h.exe.write(x, &[1.0; 3]),
        Err(CompileError::Size {
            expected: 4,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        h.exe.write_u32(x, &[1; 4]),
        Err(CompileError::Access { .. })
    ));
    assert!(matches!(
        h.exe.write(y, &[1.0; 4]),
        Err(CompileError::Access { .. })
    ));
}

#[test]
fn activations_that_are_not_kept_cannot_be_read() {
    let mut g = Graph::new();
    let x = g.input("x", &[4]);
    let hidden = relu::relu(&mut g, x);
    let y = relu::relu(&mut g, hidden);
    let h = Harness::new(g, &[y]);
    h.run(&[(x, &[1.0; 4])], &[y]);
    assert!(matches!(
        h.exe.read(hidden),
        Err(CompileError::Access { .. })
    ));
}

#[test]
fn stores_share_parameters_between_graphs() {
    let gpu = gpu();
    let mut store = Store::new();
    let build = |g: &mut Graph| {
        let x = g.input("x", &[3]);
        let w = g.parameter("w", &[3], vec![1.0, 2.0, 3.0]);
        (x, w, mul::mul(g, x, w))
    };
    let mut a = Graph::new();
    let (xa, _, ya) = build(&mut a);
    let exe_a = Executor::compile(&gpu, &a, &mut store, &[ya]).unwrap();
    store.write(&gpu, "w", &[5.0, 6.0, 7.0]).unwrap();
    let mut b = Graph::new();
    let (xb, _, yb) = build(&mut b);
    let exe_b = Executor::compile(&gpu, &b, &mut store, &[yb]).unwrap();
    for (exe, x, y) in [(&exe_a, xa, ya), (&exe_b, xb, yb)] {
        exe.write(x, &[1.0; 3]).unwrap();
        exe.run();
        assert_eq!(exe.read(y).unwrap(), vec![5.0, 6.0, 7.0]);
    }
}

/// ReLU with a backward that forgets the incoming gradient: what the gradcheck must catch.
#[derive(Debug)]
struct ForgetfulRelu;

impl Op for ForgetfulRelu {
    fn name(&self) -> &'static str {
        "forgetful_relu"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(inputs[0]);
        rec.dispatch(
            Kernel::new(sfhead::shader!("relu"), "relu_forward"),
            &(n as u32),
            vec![Arg::Tensor(inputs[0]), Arg::Tensor(outputs[0])],
            [n.div_ceil(256) as u32, 1, 1],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        // Wrong on purpose: d relu / dx without the incoming gradient.
        let y = ctx.outputs[0];
        let shape = g.shape(y).to_vec();
        let ones = g.constant("ones", &shape, vec![1.0; g.numel(y)]);
        let mask = relu::relu(g, y);
        Ok(vec![Some(mul::mul(g, mask, ones))])
    }
}

#[test]
fn gradcheck_catches_a_backward_that_ignores_the_incoming_gradient() {
    let inputs = vec![(vec![23], away_from_zero(301, 23, 0.2, 1.0))];
    let wrong = gradcheck(
        &inputs,
        |g, x| {
            let y = g.activation("forgetful_relu", &[23]);
            g.push(ForgetfulRelu, &[x[0]], &[y]);
            y
        },
        1e-2,
        302,
    );
    assert!(
        wrong.worst > 0.1,
        "a wrong backward passed: {}",
        wrong.worst
    );
    let right = gradcheck(&inputs, |g, x| relu::relu(g, x[0]), 1e-2, 302);
    check("relu gradcheck", right.worst, 1e-2);
}

#[test]
fn a_reshape_is_a_free_view_that_keeps_its_buffer_alive() {
    use sfhead::ops::reshape::reshape;
    // h is only read through its view v, after several other activations were planned.
    let mut g = Graph::new();
    let x = g.input("x", &[6, 4]);
    let h = relu::relu(&mut g, x);
    let v = reshape(&mut g, h, &[2, 3, 4]);
    let mut t = mul::mul(&mut g, x, x);
    for _ in 0..3 {
        t = relu::relu(&mut g, t);
    }
    let t = reshape(&mut g, t, &[2, 3, 4]);
    let y = add::add(&mut g, v, t);
    let mean = reduce::mean(&mut g, y, &[1]);
    let gx = g.backward(mean, &[x]).unwrap()[0];
    let plan = plan_activations(&g, &[y, gx]);
    assert_eq!(plan.slot_of[v.index()], plan.slot_of[h.index()]);
    assert_eq!(plan.root_of[v.index()], h);
    let h_run = Harness::new(g, &[y, gx]);
    assert!(
        h_run
            .exe
            .dispatch_labels()
            .iter()
            .all(|l| !l.starts_with("reshape"))
    );
    let data = uniform(310, 24, -1.0, 1.0);
    let out = h_run.run(&[(x, &data)], &[y, gx]);
    let want: Vec<f64> = data
        .iter()
        .map(|&a| {
            let a = f64::from(a);
            a.max(0.0) + a * a
        })
        .collect();
    check(
        "view read after other activations",
        elementwise_error(&out[0], &want),
        ELEMENTWISE_TOL,
    );
    // d mean_over_axis1 / dx = (relu'(x) + 2x) / 3.
    let want_g: Vec<f64> = data
        .iter()
        .map(|&a| {
            let a = f64::from(a);
            (if a > 0.0 { 1.0 } else { 0.0 } + 2.0 * a) / 3.0
        })
        .collect();
    check(
        "gradient through views",
        elementwise_error(&out[1], &want_g),
        ELEMENTWISE_TOL,
    );
}

#[test]
fn parameters_that_do_not_fit_the_wgsl_struct_are_refused() {
    let gpu = sfhead::testing::gpu();
    let kernel = sfhead::gpu::Kernel::new(sfhead::shader!("relu"), "relu_forward");
    assert!(gpu.check_params(&kernel, &7u32.to_le_bytes()).is_ok());
    let error = gpu.check_params(&kernel, &[0; 8]).unwrap_err().to_string();
    assert_eq!(
        error,
        "kernel `relu::relu_forward` is given 8 bytes of parameters, but its WGSL struct is 4 bytes"
    );
}

/// A pack holds its members one after the other: the store lists, reads and writes the members
/// where they lie, ops read the pack, a member's gradient is its part of the pack's, and the
/// optimiser sees the pack alone.
#[test]
fn packed_parameters_live_in_their_pack() {
    let gpu = gpu();
    let mut store = Store::new();
    let mut g = Graph::new();
    let before = g.parameter("before", &[1], vec![9.0]);
    let a = g.parameter("a", &[2], vec![1.0, 2.0]);
    let b = g.parameter("b", &[3], vec![3.0, 4.0, 5.0]);
    let pack = g.pack("a+b", &[a, b]);
    assert_eq!(g.shape(pack), [5]);
    assert_eq!(g.parameters(), [before, a, b]);
    assert_eq!(g.learnables(), [before, pack]);
    let x = g.input("x", &[5]);
    let y = mul::mul(&mut g, pack, x);
    let loss = reduce::sum(&mut g, y, &[0]);
    let grads = g.backward(loss, &[b, a]).unwrap();
    let exe = Executor::compile(&gpu, &g, &mut store, &[y, grads[0], grads[1]]).unwrap();
    let names: Vec<&str> = store.names().collect();
    assert_eq!(names, ["before", "a", "b"]);
    assert_eq!(store.read(&gpu, "b").unwrap(), [3.0, 4.0, 5.0]);
    store.write(&gpu, "b", &[6.0, 7.0, 8.0]).unwrap();
    exe.write(x, &[1.0, 10.0, 100.0, 1000.0, 10000.0]).unwrap();
    exe.run();
    assert_eq!(exe.read(y).unwrap(), [1.0, 20.0, 600.0, 7000.0, 80000.0]);
    assert_eq!(exe.read(b).unwrap(), [6.0, 7.0, 8.0]);
    assert_eq!(exe.read(grads[0]).unwrap(), [100.0, 1000.0, 10000.0]);
    assert_eq!(exe.read(grads[1]).unwrap(), [1.0, 10.0]);
}

#[test]
#[should_panic(expected = "which is packed: read its pack")]
fn a_packed_parameter_is_not_an_op_input() {
    let mut g = Graph::new();
    let a = g.parameter("a", &[2], vec![1.0, 2.0]);
    g.pack("pack", &[a]);
    relu::relu(&mut g, a);
}

#[test]
fn a_store_refuses_to_pack_a_parameter_it_keeps_on_its_own() {
    let gpu = gpu();
    let mut store = Store::new();
    let mut plain = Graph::new();
    let a = plain.parameter("a", &[2], vec![1.0, 2.0]);
    let y = relu::relu(&mut plain, a);
    Executor::compile(&gpu, &plain, &mut store, &[y]).unwrap();
    let mut packed = Graph::new();
    let a = packed.parameter("a", &[2], vec![1.0, 2.0]);
    let pack = packed.pack("pack", &[a]);
    let y = relu::relu(&mut packed, pack);
    let err = Executor::compile(&gpu, &packed, &mut store, &[y])
        .err()
        .unwrap();
    assert!(matches!(err, CompileError::StorePacking { .. }), "{err}");
}
