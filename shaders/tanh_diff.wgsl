// Pairwise tanh difference of CTR-GC: E[b, r, u, v] = tanh(x1[b, r, u] − x2[b, r, v]) for x1, x2
// of shape (B, R, V) and E of shape (B, R, V, V); `rows` = B·R, `joints` = V. Stacked
// (`stacked` = 1), x1 and x2 are the halves of each of the row groups of one tensor
// (B, G·2·R, V), both bindings that tensor, `pair_rows` = R, and E is (B, G·R, V, V).
// Entries (workgroup 256, grid folded over x and y):
//   tanh_diff_forward:  one invocation per element of E.
//                       Bindings: 1 x1, 2 x2, 3 e.
//   tanh_diff_backward: one invocation per (b, r, w) with gP = gE ⊙ (1 − E²):
//                       g_x1[b, r, w] = Σ_v gP[b, r, w, v], g_x2[b, r, w] = −Σ_u gP[b, r, u, w],
//                       each a sequential loop over V (deterministic, no atomics).
//                       Bindings: 1 e (the forward output), 2 ge, 3 g_x1, 4 g_x2.
//   tanh_diff_backward_stacked: the same for a stacked input, both written into its gradient.
//                       Bindings: 1 e, 2 ge, 3 g_x.
// Binding 0 is the params block in both.

struct Params {
    rows: u32,
    joints: u32,
    stacked: u32,
    pair_rows: u32,
}

// The rows of x1 and x2 that row `row` of E pairs.
fn input_rows(row: u32) -> vec2<u32> {
    if p.stacked == 0u {
        return vec2(row, row);
    }
    let first = (row / p.pair_rows) * 2u * p.pair_rows + row % p.pair_rows;
    return vec2(first, first + p.pair_rows);
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
    let rows = input_rows(row);
    let d = fwd_x1[rows.x * p.joints + u] - fwd_x2[rows.y * p.joints + v];
    // tanh(±10) is ±1 in f32; the clamp keeps exp-based tanh implementations from overflowing.
    fwd_e[i] = tanh(clamp(d, -10.0, 10.0));
}

@group(0) @binding(1) var<storage, read> bwd_e: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_ge: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx1: array<f32>;
@group(0) @binding(4) var<storage, read_write> bwd_gx2: array<f32>;

// (g_x1, g_x2) at joint w of row `row` of E.
fn pair_grads(row: u32, w: u32) -> vec2<f32> {
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
    return vec2(s1, -s2);
}

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
    let g = pair_grads(i / p.joints, i % p.joints);
    bwd_gx1[i] = g.x;
    bwd_gx2[i] = g.y;
}

@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn tanh_diff_backward_stacked(
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
    let g = pair_grads(row, w);
    let rows = input_rows(row);
    bwd_gx[rows.x * p.joints + w] = g.x;
    bwd_gx[rows.y * p.joints + w] = g.y;
}
