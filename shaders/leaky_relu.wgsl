// leaky_relu: y = x if x > 0 else slope·x, for a slope ≥ 0. Then y > 0 exactly where x > 0, so the
// backward reads the forward output, as relu.wgsl does, and the input need not stay alive.
// Entries (workgroup 256, one element per invocation, grid folded over x and y):
//   leaky_relu_forward:  1 x, 2 y
//   leaky_relu_backward: 1 y (the forward output), 2 gy, 3 gx: gy·(1 if y > 0 else slope)
// Binding 0 is the params block in both.

struct Params {
    n: u32,
    slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn leaky_relu_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i < p.n {
        let x = fwd_x[i];
        fwd_y[i] = select(p.slope * x, x, x > 0.0);
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
    let i = element(wid, nwg, lid);
    if i < p.n {
        let g = bwd_gy[i];
        bwd_gx[i] = select(p.slope * g, g, bwd_y[i] > 0.0);
    }
}
