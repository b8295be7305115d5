// mul: out = a ⊙ b over n elements of the same shape.
// Entry `mul`: workgroup 256, SPAN elements per invocation, grid folded over x and y.
// Bindings: 0 params, 1 a, 2 b, 3 out.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include elementwise
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn mul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.n {
            out[i] = a[i] * b[i];
        }
    }
}
