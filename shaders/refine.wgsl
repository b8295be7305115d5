// Topology refinement of CTR-GC branches i.. i + `branches`: Q = alpha·C + PA[i + s] for C the
// stack (B, branches·C_out, V, V) of the branches s, alpha a one-element tensor and PA (S, V, V)
// broadcast over (B, C_out). `n` = numel(C), `vv` = V·V, `branch` = i, `pa_len` = S·V·V,
// `branch_len` = C_out·V·V.
// Entries (workgroup 256, grids folded over x and y):
//   refine_forward:     one invocation per (b, s, u, v). Bindings: 1 c, 2 alpha, 3 pa, 4 q.
//   refine_grad_partial: workgroup w < `chunks` (TREE_LANES invocations) takes elements
//                       [w·chunk_len, (w + 1)·chunk_len): writes g_C = alpha·g_Q and sums
//                       g_Q ⊙ C with a tree into partial[w]; a second pass (reduce.wgsl) adds the
//                       partials into g_alpha. Bindings: 1 gq, 2 c, 3 partial, 4 alpha, 5 gc.
//   refine_scatter_pa:  g_PA from s = Σ_{b,c} g_Q (branches·V·V): slice i + s gets s[s], the
//                       slices of no branch 0.
//                       One invocation per element of PA. Bindings: 1 s, 2 gpa.
// Binding 0 is the params block in all of them.

struct Params {
    n: u32,
    vv: u32,
    branch: u32,
    pa_len: u32,
    chunks: u32,
    chunk_len: u32,
    branches: u32,
    branch_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> fwd_c: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_alpha: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_pa: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_q: array<f32>;

@compute @workgroup_size(256)
fn refine_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // One invocation per (sample, branch, u, v), looping over the branch's channels: the slice
    // of PA is then found once, not per element (an integer division is costly on CPUs).
    let id = linear_id(wid, nwg, lid);
    let stack = id / p.vv;
    let j = id % p.vv;
    if stack * p.branch_len >= p.n {
        return;
    }
    let slice = p.branch + stack % p.branches;
    let pa = fwd_pa[slice * p.vv + j];
    let alpha = fwd_alpha[0];
    let end = (stack + 1u) * p.branch_len;
    for (var i = stack * p.branch_len + j; i < end; i += p.vv) {
        fwd_q[i] = fma(alpha, fwd_c[i], pa);
    }
}

//! include tree_sum

@group(0) @binding(1) var<storage, read> dot_gq: array<f32>;
@group(0) @binding(2) var<storage, read> dot_c: array<f32>;
@group(0) @binding(3) var<storage, read_write> dot_partial: array<f32>;
@group(0) @binding(4) var<storage, read> dot_alpha: array<f32>;
@group(0) @binding(5) var<storage, read_write> dot_gc: array<f32>;

@compute @workgroup_size(TREE_LANES)
fn refine_grad_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.x + wid.y * nwg.x;
    if w >= p.chunks {
        return;
    }
    let start = w * p.chunk_len;
    let end = min(start + p.chunk_len, p.n);
    let alpha = dot_alpha[0];
    for (var lane = lid; lane < 256u; lane += TREE_LANES) {
        var acc = 0.0;
        for (var e = start + lane; e < end; e += 256u) {
            let g = dot_gq[e];
            dot_gc[e] = alpha * g;
            acc = fma(g, dot_c[e], acc);
        }
        tree[lane] = acc;
    }
    let sum = tree_total(lid);
    if lid == 0u {
        dot_partial[w] = sum;
    }
}

@group(0) @binding(1) var<storage, read> pa_s: array<f32>;
@group(0) @binding(2) var<storage, read_write> pa_gpa: array<f32>;

@compute @workgroup_size(256)
fn refine_scatter_pa(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = linear_id(wid, nwg, lid);
    if j < p.pa_len {
        let slice = j / p.vv;
        let read = slice >= p.branch && slice < p.branch + p.branches;
        pa_gpa[j] = select(0.0, pa_s[min(j - p.branch * p.vv, p.branches * p.vv - 1u)], read);
    }
}
