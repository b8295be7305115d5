// mul: out = a ⊙ b over n elements of the same shape.
// Entry `mul`: workgroup 256, one element per invocation, grid folded over x and y.
// Bindings: 0 params, 1 a, 2 b, 3 out.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn mul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i < p.n {
        out[i] = a[i] * b[i];
    }
}
