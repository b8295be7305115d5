// Training batch norm with one workgroup per channel, for channels of at most 65,536 elements, 16
// chunks of 4,096 (src/ops/batch_norm.rs chooses by shape): the reductions, the per-channel
// arithmetic and the per-element pass in one dispatch each way, instead of reduce.wgsl's passes,
// a finishing kernel and batch_norm.wgsl's element kernels.
//
// A channel's elements are added in the order of reduce.wgsl's two-pass tree: chunk k holds
// elements [k·chunk_len, (k+1)·chunk_len), which the tree's 256 lanes stride through before a
// workgroup tree; a second tree then adds the chunk sums (a single chunk is its own result).
// Element e of channel c is x[(e / inner)·channels·inner + c·inner + e % inner].
//
// The element passes compute what batch_norm.wgsl's bn_normalize and bn_grad_input do, in the
// same order, so both paths give the same bits. The output takes the activation ACT
// (shaders/lib/activation.wgsl: none, ReLU or sigmoid), and the backward takes the incoming
// gradient back through it from the output before anything else, as relu.wgsl and sigmoid.wgsl
// do.
//
// Entries (workgroup TREE_LANES, shaders/lib/tree_sum.wgsl; workgroup c = channel c, grid folded
// over x and y):
//   bn_train: mean = Σ x / n, then the biased variance as Σ (x − mean)² / n in a second pass (a
//       large common offset does not cancel), rstd = 1/√(var + eps), PyTorch's running update:
//       running_mean ← (1−μ)·running_mean + μ·mean, running_var ← (1−μ)·running_var +
//       μ·var·n/(n−1), num_batches_tracked += 1; then y = (x − mean)·rstd·γ + β.
//       Bindings: 1 x, 2 mean, 3 rstd, 4 running_mean, 5 running_var, 6 num_batches_tracked,
//       7 gamma, 8 beta, 9 y.
//   bn_grad: gβ = Σ g and s = Σ g·(x − mean) in one pass over the channel, gγ = s·rstd, then
//       gx = γ·rstd·(g − gβ/n − (x − mean)·rstd²·s/n).
//       Bindings: 1 x, 2 g, 3 mean, 4 rstd, 5 gbeta, 6 ggamma, 7 gamma, 8 gx, 9 y (the forward
//       output, read with an activation only).

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

//! include tree_sum

const MAX_CHUNKS: u32 = 16u;

//! include activation

// Chunk sums of up to two quantities: the first at [0, 16), the second at [16, 32).
var<workgroup> chunk_sums: array<f32, 32>;
// Each lane's Σ g·(x − m) while the tree sums Σ g.
var<workgroup> second_tree: array<f32, 256>;
// Results of invocation 0 that every invocation needs.
var<workgroup> broadcast: f32;
var<workgroup> broadcast_second: f32;

fn channel_of_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

fn element_at(c: u32, e: u32) -> u32 {
    return (e / p.inner) * p.channels * p.inner + c * p.inner + e % p.inner;
}

// The element passes: invocation lid visits elements lid, lid + TREE_LANES, … of channel c,
// stepping (outer, inner) with carries instead of dividing per element.
struct Walk {
    outer: u32,
    inner: u32,
}

fn walk_start(lid: u32) -> Walk {
    return Walk(lid / p.inner, lid % p.inner);
}

fn walk_index(c: u32, w: Walk) -> u32 {
    return (w.outer * p.channels + c) * p.inner + w.inner;
}

fn walk_next(w: Walk) -> Walk {
    var next = w;
    next.inner += TREE_LANES;
    while next.inner >= p.inner {
        next.inner -= p.inner;
        next.outer += 1u;
    }
    return next;
}

// Stores the sum of the filled tree as chunk sum `slot`; every invocation must call it.
fn store_chunk_sum(lid: u32, slot: u32) {
    let s = tree_total(lid);
    if lid == 0u {
        chunk_sums[slot] = s;
    }
    workgroupBarrier();
}

// The channel's sum from the chunk sums at [base, base + chunks), as reduce_final adds them;
// valid in invocation 0.
fn combine(lid: u32, base: u32) -> f32 {
    if p.chunks == 1u {
        return chunk_sums[base];
    }
    for (var lane = lid; lane < 256u; lane += TREE_LANES) {
        var acc = 0.0;
        if lane < p.chunks {
            acc += chunk_sums[base + lane];
        }
        tree[lane] = acc;
    }
    let s = tree_total(lid);
    workgroupBarrier();
    return s;
}

@group(0) @binding(1) var<storage, read> st_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> st_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> st_running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> st_tracked: array<f32>;
@group(0) @binding(7) var<storage, read> st_gamma: array<f32>;
@group(0) @binding(8) var<storage, read> st_beta: array<f32>;
@group(0) @binding(9) var<storage, read_write> st_y: array<f32>;

// Chunk sums of x (centred = false) or of (x − m)² into chunk_sums[0, chunks).
fn stats_chunks(c: u32, lid: u32, centred: bool, m: f32) {
    for (var k = 0u; k < p.chunks; k++) {
        let start = k * p.chunk_len;
        let end = min(start + p.chunk_len, p.count);
        for (var lane = lid; lane < 256u; lane += TREE_LANES) {
            var acc = 0.0;
            for (var e = start + lane; e < end; e += 256u) {
                let v = st_x[element_at(c, e)];
                if centred {
                    let d = v - m;
                    acc += d * d;
                } else {
                    acc += v;
                }
            }
            tree[lane] = acc;
        }
        store_chunk_sum(lid, k);
    }
}

@compute @workgroup_size(TREE_LANES)
fn bn_train(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = channel_of_workgroup(wid, nwg);
    if c >= p.channels {
        return;
    }
    stats_chunks(c, lid, false, 0.0);
    let total = combine(lid, 0u);
    if lid == 0u {
        broadcast = total * p.inv_count;
    }
    workgroupBarrier();
    let mean = broadcast;
    stats_chunks(c, lid, true, mean);
    let squares = combine(lid, 0u);
    if lid == 0u {
        let var_b = squares * p.inv_count;
        let n = f32(p.count);
        let rstd = 1.0 / sqrt(var_b + p.eps);
        st_mean[c] = mean;
        st_rstd[c] = rstd;
        broadcast_second = rstd;
        let keep = 1.0 - p.momentum;
        st_running_mean[c] = keep * st_running_mean[c] + p.momentum * mean;
        st_running_var[c] = keep * st_running_var[c] + p.momentum * (var_b * n / (n - 1.0));
        if c == 0u {
            st_tracked[0] += 1.0;
        }
    }
    workgroupBarrier();
    let rstd = broadcast_second;
    let gamma = st_gamma[c];
    let beta = st_beta[c];
    var w = walk_start(lid);
    for (var e = lid; e < p.count; e += TREE_LANES) {
        let i = walk_index(c, w);
        st_y[i] = activate((st_x[i] - mean) * rstd * gamma + beta);
        w = walk_next(w);
    }
}

@group(0) @binding(1) var<storage, read> gs_x: array<f32>;
@group(0) @binding(2) var<storage, read> gs_g: array<f32>;
@group(0) @binding(3) var<storage, read> gs_mean: array<f32>;
@group(0) @binding(4) var<storage, read> gs_rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> gs_gbeta: array<f32>;
@group(0) @binding(6) var<storage, read_write> gs_ggamma: array<f32>;
@group(0) @binding(7) var<storage, read> gs_gamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> gs_gx: array<f32>;
@group(0) @binding(9) var<storage, read> gs_y: array<f32>;

// The incoming gradient at element i, taken back through the activation.
fn grad_at(i: u32) -> f32 {
    if ACT == 0u {
        return gs_g[i];
    }
    return activation_grad(gs_g[i], gs_y[i]);
}

@compute @workgroup_size(TREE_LANES)
fn bn_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = channel_of_workgroup(wid, nwg);
    if c >= p.channels {
        return;
    }
    let m = gs_mean[c];
    for (var k = 0u; k < p.chunks; k++) {
        let start = k * p.chunk_len;
        let end = min(start + p.chunk_len, p.count);
        // One pass for both sums; the tree takes Σ g first, then Σ g·(x − m).
        for (var lane = lid; lane < 256u; lane += TREE_LANES) {
            var acc_g = 0.0;
            var acc_s = 0.0;
            for (var e = start + lane; e < end; e += 256u) {
                let i = element_at(c, e);
                let g = grad_at(i);
                acc_g += g;
                acc_s += g * (gs_x[i] - m);
            }
            tree[lane] = acc_g;
            second_tree[lane] = acc_s;
        }
        store_chunk_sum(lid, k);
        for (var lane = lid; lane < 256u; lane += TREE_LANES) {
            tree[lane] = second_tree[lane];
        }
        store_chunk_sum(lid, MAX_CHUNKS + k);
    }
    let gbeta = combine(lid, 0u);
    let s = combine(lid, MAX_CHUNKS);
    if lid == 0u {
        gs_gbeta[c] = gbeta;
        gs_ggamma[c] = s * gs_rstd[c];
        broadcast = gbeta;
        broadcast_second = s;
    }
    workgroupBarrier();
    let sum_g = broadcast;
    let sum_s = broadcast_second;
    let inv_n = 1.0 / f32(p.count);
    let r = gs_rstd[c];
    let scale = gs_gamma[c] * r;
    var w = walk_start(lid);
    for (var e = lid; e < p.count; e += TREE_LANES) {
        let i = walk_index(c, w);
        let centred = gs_x[i] - m;
        gs_gx[i] = scale * (grad_at(i) - sum_g * inv_n - centred * r * r * sum_s * inv_n);
        w = walk_next(w);
    }
}
