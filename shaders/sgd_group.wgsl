// SGD of eight parameters in one dispatch, with the arithmetic of `sgd.wgsl`'s `sgd_step`, element
// for element: the same results, 1/8 of the dispatches.
// Entry `sgd_group_step` (workgroup 256, one element of the eight tensors' concatenation each, grid
// folded over x and y).
// Bindings: 0 params (`ends`: where each tensor's elements end in the concatenation), 1 lr, then
// for tensor j: 2 + 3j grad, 3 + 3j param, 4 + 3j momentum.

struct Params {
    nesterov: u32,
    momentum: f32,
    weight_decay: f32,
    pad: u32,
    ends: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> lr: array<f32>;
@group(0) @binding(2) var<storage, read> grad0: array<f32>;
@group(0) @binding(3) var<storage, read_write> param0: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf0: array<f32>;
@group(0) @binding(5) var<storage, read> grad1: array<f32>;
@group(0) @binding(6) var<storage, read_write> param1: array<f32>;
@group(0) @binding(7) var<storage, read_write> buf1: array<f32>;
@group(0) @binding(8) var<storage, read> grad2: array<f32>;
@group(0) @binding(9) var<storage, read_write> param2: array<f32>;
@group(0) @binding(10) var<storage, read_write> buf2: array<f32>;
@group(0) @binding(11) var<storage, read> grad3: array<f32>;
@group(0) @binding(12) var<storage, read_write> param3: array<f32>;
@group(0) @binding(13) var<storage, read_write> buf3: array<f32>;
@group(0) @binding(14) var<storage, read> grad4: array<f32>;
@group(0) @binding(15) var<storage, read_write> param4: array<f32>;
@group(0) @binding(16) var<storage, read_write> buf4: array<f32>;
@group(0) @binding(17) var<storage, read> grad5: array<f32>;
@group(0) @binding(18) var<storage, read_write> param5: array<f32>;
@group(0) @binding(19) var<storage, read_write> buf5: array<f32>;
@group(0) @binding(20) var<storage, read> grad6: array<f32>;
@group(0) @binding(21) var<storage, read_write> param6: array<f32>;
@group(0) @binding(22) var<storage, read_write> buf6: array<f32>;
@group(0) @binding(23) var<storage, read> grad7: array<f32>;
@group(0) @binding(24) var<storage, read_write> param7: array<f32>;
@group(0) @binding(25) var<storage, read_write> buf7: array<f32>;

fn end_of(j: u32) -> u32 {
    return p.ends[j / 4u][j % 4u];
}

@compute @workgroup_size(256)
fn sgd_group_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= end_of(7u) {
        return;
    }
    var j = 0u;
    while i >= end_of(j) {
        j += 1u;
    }
    let k = i - select(0u, end_of(j - 1u), j > 0u);
    var g = 0.0;
    var w = 0.0;
    var b = 0.0;
    switch j {
        case 0u: { g = grad0[k]; w = param0[k]; b = buf0[k]; }
        case 1u: { g = grad1[k]; w = param1[k]; b = buf1[k]; }
        case 2u: { g = grad2[k]; w = param2[k]; b = buf2[k]; }
        case 3u: { g = grad3[k]; w = param3[k]; b = buf3[k]; }
        case 4u: { g = grad4[k]; w = param4[k]; b = buf4[k]; }
        case 5u: { g = grad5[k]; w = param5[k]; b = buf5[k]; }
        case 6u: { g = grad6[k]; w = param6[k]; b = buf6[k]; }
        case 7u: { g = grad7[k]; w = param7[k]; b = buf7[k]; }
        default: {}
    }
    g += p.weight_decay * w;
    let b_new = p.momentum * b + g;
    let step = select(b_new, g + p.momentum * b_new, p.nesterov != 0u);
    let w_new = w - lr[0] * step;
    switch j {
        case 0u: { param0[k] = w_new; buf0[k] = b_new; }
        case 1u: { param1[k] = w_new; buf1[k] = b_new; }
        case 2u: { param2[k] = w_new; buf2[k] = b_new; }
        case 3u: { param3[k] = w_new; buf3[k] = b_new; }
        case 4u: { param4[k] = w_new; buf4[k] = b_new; }
        case 5u: { param5[k] = w_new; buf5[k] = b_new; }
        case 6u: { param6[k] = w_new; buf6[k] = b_new; }
        case 7u: { param7[k] = w_new; buf7[k] = b_new; }
        default: {}
    }
}
