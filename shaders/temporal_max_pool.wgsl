// Max-pool (3, 1) over T of (B, C, T, V) with stride s and padding 1 whose padded slots never win
// (they are skipped by a bounds check, not filled with a sentinel): output frame t' looks at
// frames t'·s − 1, t'·s, t'·s + 1 inside [0, T). The argmax scans the window in order with a strict
// `>`, so a tie goes to the first frame of the window, as in PyTorch.
//
// The backward recomputes the argmax from x instead of saving it (x stays alive anyway for the
// ReLU backward in front of it) and gathers: input frame t sums, in ascending t', the gradients of
// the windows t' that contain it and whose argmax it is. Deterministic, no atomics.
//
// Entries (workgroup 256, grids folded over x and y):
//   pool_forward:  one invocation per output element or frame row (shaders/lib/frames.wgsl).
//                  Bindings: 1 x, 2 y.
//   pool_backward: one invocation per input element or frame row. Bindings: 1 x, 2 gy, 3 gx.
// Binding 0 is the params block in both.

struct Params {
    // Elements of the tensor the entry writes.
    total: u32,
    t_in: u32,
    t_out: u32,
    joints: u32,
    stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include frames
@group(0) @binding(1) var<storage, read> x: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// Frame of the maximum of window `to` in the series starting at x[base] with stride `joints`.
fn window_argmax(base: u32, to: u32) -> u32 {
    let centre = to * p.stride;
    let first = select(centre - 1u, 0u, centre == 0u);
    let last = min(centre + 1u, p.t_in - 1u);
    var best_t = first;
    var best = x[base + first * p.joints];
    for (var t = first + 1u; t <= last; t++) {
        let v = x[base + t * p.joints];
        if v > best {
            best = v;
            best_t = t;
        }
    }
    return best_t;
}

@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn pool_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = coverage(element(wid, nwg, lid));
    if c.x * p.joints >= p.total {
        return;
    }
    let to = c.x % p.t_out;
    let series = c.x / p.t_out;
    for (var v = c.y; v < c.y + c.z; v++) {
        let base = series * p.t_in * p.joints + v;
        fwd_y[c.x * p.joints + v] = x[base + window_argmax(base, to) * p.joints];
    }
}

@group(0) @binding(2) var<storage, read> bwd_gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn pool_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = coverage(element(wid, nwg, lid));
    if c.x * p.joints >= p.total {
        return;
    }
    let t = c.x % p.t_in;
    let series = c.x / p.t_in;
    // Windows containing t: t'·s − 1 ≤ t ≤ t'·s + 1.
    let lo = select(0u, (t + p.stride - 2u) / p.stride, t > 0u);
    let hi = min((t + 1u) / p.stride, p.t_out - 1u);
    for (var v = c.y; v < c.y + c.z; v++) {
        let base = series * p.t_in * p.joints + v;
        var acc = 0.0;
        for (var to = lo; to <= hi; to++) {
            if window_argmax(base, to) == t {
                acc += bwd_gy[(series * p.t_out + to) * p.joints + v];
            }
        }
        bwd_gx[c.x * p.joints + v] = acc;
    }
}
