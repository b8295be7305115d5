// SGD with momentum, Nesterov and L2 weight decay, in PyTorch's order of operations:
//   g ← grad + wd·p;  buf ← μ·buf + g;  g ← g + μ·buf (Nesterov) or g ← buf;  p ← p − lr·g.
// A zero-initialised buf makes the first step buf = g, as PyTorch's clone on first use.
// Entry `sgd_step` (workgroup 256, one element each, grid folded over x and y).
// Bindings: 0 params, 1 lr (one value, set by the host each step), 2 grad, 3 param, 4 momentum.

struct Params {
    n: u32,
    nesterov: u32,
    momentum: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> lr: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf: array<f32>;

@compute @workgroup_size(256)
fn sgd_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= p.n {
        return;
    }
    let w = param[i];
    let g = grad[i] + p.weight_decay * w;
    let b = p.momentum * buf[i] + g;
    buf[i] = b;
    let step = select(b, g + p.momentum * b, p.nesterov != 0u);
    param[i] = w - lr[0] * step;
}
