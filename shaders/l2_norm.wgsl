// The L2 norm of a whole tensor of n elements, ‖x‖ = sqrt(Σ x²), as a two-pass workgroup tree
// with a fixed order (no float atomics), so it is deterministic.
// Entries (workgroup 256):
//   l2_partial:  workgroup c sums x² over elements [c·chunk_len, (c + 1)·chunk_len) into
//                partial[c]. Bindings: 1 x, 2 partial (chunks values).
//   l2_final:    one workgroup sums the chunks' partials and writes norm = sqrt(sum).
//                Bindings: 1 partial, 2 norm (one value).
//   l2_backward: one element per invocation: gx = g_norm · x / ‖x‖, and 0 where ‖x‖ = 0 (the
//                subgradient PyTorch takes). Bindings: 1 x, 2 norm (one value), 3 g_norm (one
//                value), 4 gx.
// Grids are folded over x and y; binding 0 is the params block in all.

struct Params {
    n: u32,
    chunks: u32,
    chunk_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include tree_sum

fn folded(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

@group(0) @binding(1) var<storage, read> part_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> part_out: array<f32>;

@compute @workgroup_size(256)
fn l2_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = folded(wid, nwg);
    if c >= p.chunks {
        return;
    }
    let start = c * p.chunk_len;
    let end = min(start + p.chunk_len, p.n);
    var acc = 0.0;
    for (var e = start + lid; e < end; e += 256u) {
        let x = part_x[e];
        acc += x * x;
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        part_out[c] = sum;
    }
}

@group(0) @binding(1) var<storage, read> final_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> final_norm: array<f32>;

@compute @workgroup_size(256)
fn l2_final(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var c = lid; c < p.chunks; c += 256u) {
        acc += final_partial[c];
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        final_norm[0] = sqrt(sum);
    }
}

@group(0) @binding(1) var<storage, read> bwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_norm: array<f32>;
@group(0) @binding(3) var<storage, read> bwd_gnorm: array<f32>;
@group(0) @binding(4) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn l2_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = folded(wid, nwg) * 256u + lid;
    if i >= p.n {
        return;
    }
    let norm = bwd_norm[0];
    bwd_gx[i] = select(0.0, bwd_gnorm[0] * (bwd_x[i] / norm), norm > 0.0);
}
