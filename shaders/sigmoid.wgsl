// sigmoid: y = σ(x) = 1/(1 + e^−x), evaluated through e^−|x| so that no exponential overflows;
// its gradient g·y·(1 − y) reads the forward output.
// Entries (workgroup 256, SPAN elements per invocation, grid folded over x and y):
//   sigmoid_forward:  1 x, 2 y
//   sigmoid_backward: 1 y (the forward output), 2 gy, 3 gx
// Binding 0 is the params block in both.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include activation

//! include elementwise

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn sigmoid_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.n {
            fwd_y[i] = sigmoid_of(fwd_x[i]);
        }
    }
}

@group(0) @binding(1) var<storage, read> bwd_y: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn sigmoid_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.n {
            let y = bwd_y[i];
            bwd_gx[i] = bwd_gy[i] * y * (1.0 - y);
        }
    }
}
