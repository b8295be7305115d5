// Softmax along one axis, on an (outer, n, inner) view of the tensor (n the axis length): line
// l = o·inner + i holds the n elements o·n·inner + j·inner + i, j ∈ [0, n). One invocation does
// a whole line with serial loops (lines are short), in a fixed order.
//
// Entries (workgroup 256, one line per invocation, grid folded over x and y):
//   softmax_forward:  y = exp(x − max) / Σ exp(x − max). Bindings: 1 x, 2 y.
//   softmax_backward: gx = y ⊙ (g − Σ y ⊙ g). Bindings: 1 y (the forward output), 2 gy, 3 gx.
// Binding 0 is the params block in both.

struct Params {
    lines: u32,
    n: u32,
    inner: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn line_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// Index of the line's first element; its elements follow at a stride of `inner`.
fn line_start(l: u32) -> u32 {
    return (l / p.inner) * p.n * p.inner + l % p.inner;
}

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn softmax_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let l = line_of(wid, nwg, lid);
    if l >= p.lines {
        return;
    }
    let start = line_start(l);
    var top = fwd_x[start];
    for (var j = 1u; j < p.n; j++) {
        top = max(top, fwd_x[start + j * p.inner]);
    }
    var total = 0.0;
    for (var j = 0u; j < p.n; j++) {
        let at = start + j * p.inner;
        let e = exp(fwd_x[at] - top);
        fwd_y[at] = e;
        total += e;
    }
    let inv = 1.0 / total;
    for (var j = 0u; j < p.n; j++) {
        let at = start + j * p.inner;
        fwd_y[at] *= inv;
    }
}

@group(0) @binding(1) var<storage, read> bwd_y: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn softmax_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let l = line_of(wid, nwg, lid);
    if l >= p.lines {
        return;
    }
    let start = line_start(l);
    var dot = 0.0;
    for (var j = 0u; j < p.n; j++) {
        let at = start + j * p.inner;
        dot += bwd_y[at] * bwd_gy[at];
    }
    for (var j = 0u; j < p.n; j++) {
        let at = start + j * p.inner;
        bwd_gx[at] = bwd_y[at] * (bwd_gy[at] - dot);
    }
}
