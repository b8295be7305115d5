// Pairwise tanh difference of CTR-GC: E[b, r, u, v] = tanh(x1[b, r, u] − x2[b, r, v]) for x1, x2
// of shape (B, R, V) and E of shape (B, R, V, V); `rows` = B·R, `joints` = V.
// Entries (workgroup 256, grid folded over x and y):
//   tanh_diff_forward:  one invocation per element of E.
//                       Bindings: 1 x1, 2 x2, 3 e.
//   tanh_diff_backward: one invocation per (b, r, w) with gP = gE ⊙ (1 − E²):
//                       g_x1[b, r, w] = Σ_v gP[b, r, w, v], g_x2[b, r, w] = −Σ_u gP[b, r, u, w],
//                       each a sequential loop over V (deterministic, no atomics).
//                       Bindings: 1 e (the forward output), 2 ge, 3 g_x1, 4 g_x2.
// Binding 0 is the params block in both.

struct Params {
    rows: u32,
    joints: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> fwd_x1: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_x2: array<f32>;
@group(0) @binding(3) var<storage, read_write> fwd_e: array<f32>;

@compute @workgroup_size(256)
fn tanh_diff_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    let vv = p.joints * p.joints;
    if i >= p.rows * vv {
        return;
    }
    let row = i / vv;
    let u = (i / p.joints) % p.joints;
    let v = i % p.joints;
    let d = fwd_x1[row * p.joints + u] - fwd_x2[row * p.joints + v];
    // tanh(±10) is ±1 in f32; the clamp keeps exp-based tanh implementations from overflowing.
    fwd_e[i] = tanh(clamp(d, -10.0, 10.0));
}

@group(0) @binding(1) var<storage, read> bwd_e: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_ge: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx1: array<f32>;
@group(0) @binding(4) var<storage, read_write> bwd_gx2: array<f32>;

@compute @workgroup_size(256)
fn tanh_diff_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i >= p.rows * p.joints {
        return;
    }
    let row = i / p.joints;
    let w = i % p.joints;
    let base = row * p.joints * p.joints;
    var s1 = 0.0;
    var s2 = 0.0;
    for (var k = 0u; k < p.joints; k++) {
        // Row w of the V×V map feeds x1[w]; column w feeds x2[w].
        let a = base + w * p.joints + k;
        let ea = bwd_e[a];
        s1 = fma(bwd_ge[a], 1.0 - ea * ea, s1);
        let b = base + k * p.joints + w;
        let eb = bwd_e[b];
        s2 = fma(bwd_ge[b], 1.0 - eb * eb, s2);
    }
    bwd_gx1[i] = s1;
    bwd_gx2[i] = -s2;
}
