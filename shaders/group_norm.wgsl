// GroupNorm with one channel per group and no affine, on a (groups, inner) view of (A, K, rest...):
// group o = i / inner of element i is one (a, k) pair, normalised over its `inner` rest elements.
// The sums (mean, biased variance, and the backward's Σ g and Σ g·(x − mean)) come from
// reduce.wgsl; these kernels do the per-element arithmetic.
//
// Entries (workgroup 256, one element per invocation, grids folded over x and y):
//   gn_normalize:  y = (x − mean[o])·rstd[o] with rstd = 1/√(var + eps); the first element of each
//                  group also stores rstd[o] for the backward.
//                  Bindings: 1 x, 2 mean, 3 var, 4 y, 5 rstd.
//   gn_grad_input: gx = rstd·(g − Σg/n − (x − mean)·rstd²·Σg·(x − mean)/n), n = inner, which is
//                  rstd·(g − mean(g) − x̂·mean(g·x̂)).
//                  Bindings: 1 x, 2 g, 3 mean, 4 rstd, 5 sum_g, 6 sum_gc (Σ g·(x − mean)), 7 gx.
// Binding 0 is the params block in both.

struct Params {
    total: u32,
    inner: u32,
    eps: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> norm_x: array<f32>;
@group(0) @binding(2) var<storage, read> norm_mean: array<f32>;
@group(0) @binding(3) var<storage, read> norm_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> norm_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> norm_rstd: array<f32>;

@compute @workgroup_size(256)
fn gn_normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.total {
        return;
    }
    let o = i / p.inner;
    let rstd = 1.0 / sqrt(norm_var[o] + p.eps);
    norm_y[i] = (norm_x[i] - norm_mean[o]) * rstd;
    if i % p.inner == 0u {
        norm_rstd[o] = rstd;
    }
}

@group(0) @binding(1) var<storage, read> gi_x: array<f32>;
@group(0) @binding(2) var<storage, read> gi_g: array<f32>;
@group(0) @binding(3) var<storage, read> gi_mean: array<f32>;
@group(0) @binding(4) var<storage, read> gi_rstd: array<f32>;
@group(0) @binding(5) var<storage, read> gi_sum_g: array<f32>;
@group(0) @binding(6) var<storage, read> gi_sum_gc: array<f32>;
@group(0) @binding(7) var<storage, read_write> gi_gx: array<f32>;

@compute @workgroup_size(256)
fn gn_grad_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.total {
        return;
    }
    let o = i / p.inner;
    let inv_n = 1.0 / f32(p.inner);
    let r = gi_rstd[o];
    let centred = gi_x[i] - gi_mean[o];
    gi_gx[i] = r * (gi_g[i] - gi_sum_g[o] * inv_n - centred * r * r * gi_sum_gc[o] * inv_n);
}
