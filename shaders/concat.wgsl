// Channel concatenation of (B, C_i, ...) tensors along axis 1, one dispatch per part, and its
// backward, which cuts each part's channel slice out of the output gradient. A part with `part`
// channels sits at channels [offset, offset + part) of the `total`-channel result; `inner` is the
// product of the axes after the channels.
//
// Entries (workgroup 256, one element of the part per invocation, grids folded over x and y):
//   concat_place: bindings 1 part, 2 out (the rest of out is written by the other parts).
//   concat_slice: bindings 1 gout, 2 gpart.
// Binding 0 is the params block in both.

struct Params {
    // Elements of the part.
    count: u32,
    part: u32,
    total: u32,
    offset: u32,
    inner: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// Index in the concatenated tensor of element e of the part.
fn placed(e: u32) -> u32 {
    let r = e % p.inner;
    let c = (e / p.inner) % p.part;
    let b = e / (p.inner * p.part);
    return (b * p.total + p.offset + c) * p.inner + r;
}

@group(0) @binding(1) var<storage, read> place_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> place_out: array<f32>;

@compute @workgroup_size(256)
fn concat_place(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e < p.count {
        place_out[placed(e)] = place_part[e];
    }
}

@group(0) @binding(1) var<storage, read> slice_gout: array<f32>;
@group(0) @binding(2) var<storage, read_write> slice_gpart: array<f32>;

@compute @workgroup_size(256)
fn concat_slice(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e < p.count {
        slice_gpart[e] = slice_gout[placed(e)];
    }
}
