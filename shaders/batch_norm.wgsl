// Batch normalisation over a (outer, C, inner) view: statistics per channel c over the outer and
// inner axes (BatchNorm2d: (B, C, T·V); BatchNorm1d: (N, C) or (N, C, T)). Training statistics
// come from batch_norm_stats.wgsl, or for channels of more than 65,536 elements from
// reduce.wgsl's trees followed by bn_finalize / bn_grad_gamma; these kernels do the rest. Params'
// chunks, chunk_len and inv_count are read by batch_norm_stats.wgsl only.
//
// Entries:
//   bn_finalize (workgroup 64, one channel each): rstd = 1/√(var + eps) from the batch mean and
//       biased variance, and PyTorch's running update: running_mean ← (1−μ)·running_mean + μ·mean,
//       running_var ← (1−μ)·running_var + μ·var·n/(n−1), and num_batches_tracked += 1.
//       Bindings: 1 mean, 2 var, 3 rstd, 4 running_mean, 5 running_var, 6 num_batches_tracked.
//   bn_normalize (workgroup 256, one element each): y = (x − mean[c])·rstd[c]·γ[c] + β[c], then
//       the activation ACT (shaders/lib/activation.wgsl: none, ReLU or sigmoid).
//       Bindings: 1 x, 2 mean, 3 rstd, 4 gamma, 5 beta, 6 y.
//   bn_eval_rstd (workgroup 64, one channel each): rstd = 1/√(running_var + eps), so that
//       evaluation normalises with bn_normalize and the running statistics.
//       Bindings: 1 running_var, 2 rstd.
//   bn_grad_gamma (workgroup 64): gγ[c] = rstd[c]·Σ g·(x − mean). Bindings: 1 s, 2 rstd, 3 ggamma.
//   bn_grad_input (workgroup 256): gx = γ·rstd·(g − gβ/n − (x − mean)·rstd²·s/n), with
//       gβ = Σ g and s = Σ g·(x − mean) per channel.
//       Bindings: 1 x, 2 g, 3 mean, 4 rstd, 5 gamma, 6 gbeta, 7 s, 8 gx.
// Element grids are folded over x and y.

struct Params {
    total: u32,
    channels: u32,
    inner: u32,
    count: u32,
    eps: f32,
    momentum: f32,
    chunks: u32,
    chunk_len: u32,
    inv_count: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include activation

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

fn channel_of(i: u32) -> u32 {
    return (i / p.inner) % p.channels;
}

@group(0) @binding(1) var<storage, read> fin_mean: array<f32>;
@group(0) @binding(2) var<storage, read> fin_var: array<f32>;
@group(0) @binding(3) var<storage, read_write> fin_rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> fin_running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> fin_running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> fin_tracked: array<f32>;

@compute @workgroup_size(64)
fn bn_finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c >= p.channels {
        return;
    }
    let n = f32(p.count);
    let var_b = fin_var[c];
    fin_rstd[c] = 1.0 / sqrt(var_b + p.eps);
    let keep = 1.0 - p.momentum;
    fin_running_mean[c] = keep * fin_running_mean[c] + p.momentum * fin_mean[c];
    fin_running_var[c] = keep * fin_running_var[c] + p.momentum * (var_b * n / (n - 1.0));
    if c == 0u {
        fin_tracked[0] += 1.0;
    }
}

@group(0) @binding(1) var<storage, read> norm_x: array<f32>;
@group(0) @binding(2) var<storage, read> norm_mean: array<f32>;
@group(0) @binding(3) var<storage, read> norm_rstd: array<f32>;
@group(0) @binding(4) var<storage, read> norm_gamma: array<f32>;
@group(0) @binding(5) var<storage, read> norm_beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> norm_y: array<f32>;

@compute @workgroup_size(256)
fn bn_normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.total {
        return;
    }
    let c = channel_of(i);
    norm_y[i] = activate((norm_x[i] - norm_mean[c]) * norm_rstd[c] * norm_gamma[c] + norm_beta[c]);
}

@group(0) @binding(1) var<storage, read> eval_running_var: array<f32>;
@group(0) @binding(2) var<storage, read_write> eval_rstd: array<f32>;

@compute @workgroup_size(64)
fn bn_eval_rstd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c < p.channels {
        eval_rstd[c] = 1.0 / sqrt(eval_running_var[c] + p.eps);
    }
}

@group(0) @binding(1) var<storage, read> gg_s: array<f32>;
@group(0) @binding(2) var<storage, read> gg_rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> gg_ggamma: array<f32>;

@compute @workgroup_size(64)
fn bn_grad_gamma(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c < p.channels {
        gg_ggamma[c] = gg_s[c] * gg_rstd[c];
    }
}

@group(0) @binding(1) var<storage, read> gi_x: array<f32>;
@group(0) @binding(2) var<storage, read> gi_g: array<f32>;
@group(0) @binding(3) var<storage, read> gi_mean: array<f32>;
@group(0) @binding(4) var<storage, read> gi_rstd: array<f32>;
@group(0) @binding(5) var<storage, read> gi_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> gi_gbeta: array<f32>;
@group(0) @binding(7) var<storage, read> gi_s: array<f32>;
@group(0) @binding(8) var<storage, read_write> gi_gx: array<f32>;

@compute @workgroup_size(256)
fn bn_grad_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.total {
        return;
    }
    let c = channel_of(i);
    let inv_n = 1.0 / f32(p.count);
    let r = gi_rstd[c];
    let centred = gi_x[i] - gi_mean[c];
    gi_gx[i] = gi_gamma[c] * r
        * (gi_g[i] - gi_gbeta[c] * inv_n - centred * r * r * gi_s[c] * inv_n);
}
