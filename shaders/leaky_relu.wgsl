// leaky_relu: y = x if x > 0 else slope·x, for a slope ≥ 0. Then y > 0 exactly where x > 0, so the
// backward reads the forward output, as relu.wgsl does, and the input need not stay alive.
// Entries (workgroup 256, SPAN elements per invocation, grid folded over x and y):
//   leaky_relu_forward:  1 x, 2 y
//   leaky_relu_backward: 1 y (the forward output), 2 gy, 3 gx: gy·(1 if y > 0 else slope)
// Binding 0 is the params block in both.

struct Params {
    n: u32,
    slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include elementwise

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn leaky_relu_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.n {
            let x = fwd_x[i];
            fwd_y[i] = select(p.slope * x, x, x > 0.0);
        }
    }
}

@group(0) @binding(1) var<storage, read> bwd_y: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn leaky_relu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.n {
            let g = bwd_gy[i];
            bwd_gx[i] = select(p.slope * g, g, bwd_y[i] > 0.0);
        }
    }
}
