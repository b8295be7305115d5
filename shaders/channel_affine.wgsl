// Per-channel affine map of a (A, K, rest...) tensor: channel k = (i / inner) % channels of
// element i, with inner the product of the rest axes (1 when there are none).
// Entries (workgroup 256, SPAN elements per invocation, grid folded over x and y):
//   channel_affine: y = x·w[k] + b[k]. Bindings: 1 x, 2 w, 3 b, 4 y.
//   channel_scale:  y = x·w[k] (no bias; also the data gradient). Bindings: 1 x, 2 w, 3 y.
// Binding 0 is the params block in both.

struct Params {
    total: u32,
    channels: u32,
    inner: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include elementwise

fn channel_of(i: u32) -> u32 {
    return (i / p.inner) % p.channels;
}

@group(0) @binding(1) var<storage, read> affine_x: array<f32>;
@group(0) @binding(2) var<storage, read> affine_w: array<f32>;
@group(0) @binding(3) var<storage, read> affine_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> affine_y: array<f32>;

@compute @workgroup_size(256)
fn channel_affine(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.total {
            let k = channel_of(i);
            affine_y[i] = affine_x[i] * affine_w[k] + affine_b[k];
        }
    }
}

@group(0) @binding(1) var<storage, read> scale_x: array<f32>;
@group(0) @binding(2) var<storage, read> scale_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> scale_y: array<f32>;

@compute @workgroup_size(256)
fn channel_scale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.total {
            scale_y[i] = scale_x[i] * scale_w[channel_of(i)];
        }
    }
}
