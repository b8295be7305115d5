// Temporal subsampling of (B, C, T, V): y[b, c, t', v] = x[b, c, t'·s, v] with
// T_out = ⌊(T − 1)/s⌋ + 1, and its transpose, which puts each value back at frame t'·s and zeros
// the frames in between.
//
// Entries (workgroup 256, one element or one frame row of the written tensor per invocation as
// shaders/lib/frames.wgsl says, grids folded over x and y):
//   subsample:           bindings 1 x, 2 y.
//   subsample_transpose: bindings 1 gy, 2 gx.
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

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> sub_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sub_y: array<f32>;

@compute @workgroup_size(256)
fn subsample(
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
    let src_row = (series * p.t_in + to * p.stride) * p.joints;
    for (var v = c.y; v < c.y + c.z; v++) {
        sub_y[c.x * p.joints + v] = sub_x[src_row + v];
    }
}

@group(0) @binding(1) var<storage, read> tr_gy: array<f32>;
@group(0) @binding(2) var<storage, read_write> tr_gx: array<f32>;

@compute @workgroup_size(256)
fn subsample_transpose(
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
    let kept = t % p.stride == 0u;
    let src_row = (series * p.t_out + t / p.stride) * p.joints;
    for (var v = c.y; v < c.y + c.z; v++) {
        var g = 0.0;
        if kept {
            g = tr_gy[src_row + v];
        }
        tr_gx[c.x * p.joints + v] = g;
    }
}
