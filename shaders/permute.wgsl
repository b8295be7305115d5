// A copying axis permutation of a contiguous tensor: out[o_0, …, o_{r−1}] = x[i] with
// i_{perm[k]} = o_k, the input seen through a view of rank r ≤ 8. For each output axis k (the
// last varying fastest) the params hold its size and the input stride of axis perm[k]; ranks
// below 8 are padded in front with size-1 axes.
//
// Entry `permute` (workgroup 256, one output element per invocation, grid folded over x and y).
// Bindings: 0 params, 1 x, 2 out.

struct Params {
    total: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    dims: array<vec4<u32>, 2>,
    strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn permute(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.x + wid.y * nwg.x) * 256u + lid;
    if e >= p.total {
        return;
    }
    var rest = e;
    var offset = 0u;
    for (var k = 7; k >= 0; k--) {
        let dim = p.dims[k / 4][k % 4];
        offset += (rest % dim) * p.strides[k / 4][k % 4];
        rest /= dim;
    }
    out[e] = x[offset];
}
