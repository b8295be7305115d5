// LayerNorm over the last axis of a (rows, C) view, PyTorch's `nn.LayerNorm(C)`:
// y = (x − mean)·rstd·w + b with rstd = 1/√(var + eps) and the biased variance.
//
// Each row is centred on its own first element x0 (the shifted-data method): d = mean(x − x0)
// and x − mean = (x − x0) − d. x − x0 is exact for values within a factor of two of x0, so a
// large common offset costs no digits (centring on an f32 mean near 100 would leave an error of
// half an ulp of 100 in every x − mean), and a constant row centres to exactly 0. The variance
// is a second pass over the centred values, never E[x²] − mean².
//
// Entries (workgroup 256, grids folded over x and y):
//   ln_forward:     one row per invocation, serial loops over C. Writes y, and the row's d and
//                   rstd for the backward. Bindings: 1 x, 2 w, 3 b, 4 y, 5 shift_mean (d),
//                   6 rstd.
//   ln_grad_input:  one row per invocation: with x̂ = ((x − x0) − d)·rstd and u = g⊙w,
//                   gx = rstd·(u − mean(u) − x̂·mean(u⊙x̂)).
//                   Bindings: 1 x, 2 w, 3 g, 4 shift_mean, 5 rstd, 6 gx.
//   ln_grad_terms:  one element per invocation: g⊙x̂, the terms of the weight gradient, which the
//                   caller sums over rows. Bindings: 1 x, 2 g, 3 shift_mean, 4 rstd, 5 terms.
// Binding 0 is the params block in all three.

struct Params {
    rows: u32,
    channels: u32,
    total: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn invocation(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_w: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> fwd_shift_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> fwd_rstd: array<f32>;

@compute @workgroup_size(256)
fn ln_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = invocation(wid, nwg, lid);
    if r >= p.rows {
        return;
    }
    let start = r * p.channels;
    let x0 = fwd_x[start];
    var shifted = 0.0;
    for (var j = 0u; j < p.channels; j++) {
        shifted += fwd_x[start + j] - x0;
    }
    let inv_n = 1.0 / f32(p.channels);
    let d = shifted * inv_n;
    var squares = 0.0;
    for (var j = 0u; j < p.channels; j++) {
        let c = (fwd_x[start + j] - x0) - d;
        squares += c * c;
    }
    let rstd = 1.0 / sqrt(squares * inv_n + p.eps);
    for (var j = 0u; j < p.channels; j++) {
        let xhat = ((fwd_x[start + j] - x0) - d) * rstd;
        fwd_y[start + j] = xhat * fwd_w[j] + fwd_b[j];
    }
    fwd_shift_mean[r] = d;
    fwd_rstd[r] = rstd;
}

@group(0) @binding(1) var<storage, read> gi_x: array<f32>;
@group(0) @binding(2) var<storage, read> gi_w: array<f32>;
@group(0) @binding(3) var<storage, read> gi_g: array<f32>;
@group(0) @binding(4) var<storage, read> gi_shift_mean: array<f32>;
@group(0) @binding(5) var<storage, read> gi_rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> gi_gx: array<f32>;

@compute @workgroup_size(256)
fn ln_grad_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = invocation(wid, nwg, lid);
    if r >= p.rows {
        return;
    }
    let start = r * p.channels;
    let x0 = gi_x[start];
    let d = gi_shift_mean[r];
    let rstd = gi_rstd[r];
    var sum_u = 0.0;
    var sum_ux = 0.0;
    for (var j = 0u; j < p.channels; j++) {
        let u = gi_g[start + j] * gi_w[j];
        sum_u += u;
        sum_ux += u * ((gi_x[start + j] - x0) - d) * rstd;
    }
    let inv_n = 1.0 / f32(p.channels);
    let mean_u = sum_u * inv_n;
    let mean_ux = sum_ux * inv_n;
    for (var j = 0u; j < p.channels; j++) {
        let xhat = ((gi_x[start + j] - x0) - d) * rstd;
        let u = gi_g[start + j] * gi_w[j];
        gi_gx[start + j] = rstd * (u - mean_u - xhat * mean_ux);
    }
}

@group(0) @binding(1) var<storage, read> gt_x: array<f32>;
@group(0) @binding(2) var<storage, read> gt_g: array<f32>;
@group(0) @binding(3) var<storage, read> gt_shift_mean: array<f32>;
@group(0) @binding(4) var<storage, read> gt_rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> gt_terms: array<f32>;

@compute @workgroup_size(256)
fn ln_grad_terms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if i >= p.total {
        return;
    }
    let r = i / p.channels;
    let x0 = gt_x[r * p.channels];
    let xhat = ((gt_x[i] - x0) - gt_shift_mean[r]) * gt_rstd[r];
    gt_terms[i] = gt_g[i] * xhat;
}
