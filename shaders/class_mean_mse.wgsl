// InfoGCN's class-mean/prior MSE of features z (rows × features) with u32 labels against a prior
// (classes × features): with P the number of classes present in the batch, mean[k] the mean of
// the rows labelled k and count[k] their number,
//   loss = Σ_{k present} Σ_d (mean[k, d] − prior[k, d])² / (P · features).
// Rows labelled ≥ classes belong to no class: they add nothing and get a zero gradient.
// Every sum is a serial loop in a fixed order (no float atomics).
//
// Entries:
//   cmm_classes  (workgroup 256, one (k, d) per invocation, grid folded over x and y):
//                the class sums over the rows in order, then diff[k, d] = mean[k, d] − prior[k, d],
//                written squared when SQUARE (the forward's terms), 0 for an absent class; the
//                invocation of d = 0 writes count[k]. Bindings: 1 z, 2 labels, 3 prior, 4 diff,
//                5 count.
//   cmm_finish   (one invocation): loss = total / (P · features), NaN when no class is present.
//                Bindings: 1 count, 2 total (the sum of the terms, reduce.wgsl), 3 loss.
//   cmm_weights  (one invocation): weight[k] = 2 / (P · features · count[k]), 0 for an absent
//                class. Bindings: 1 count, 2 weight.
//   cmm_backward (workgroup 256, one (i, d) per invocation, grid folded over x and y):
//                gz[i, d] = g_loss · weight[y_i] · diff[y_i, d]. Bindings: 1 labels, 2 diff,
//                3 weight, 4 g_loss (one value), 5 gz.
// Binding 0 is the params block in all.

override SQUARE: bool = false;

struct Params {
    rows: u32,
    classes: u32,
    features: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> cls_z: array<f32>;
@group(0) @binding(2) var<storage, read> cls_labels: array<u32>;
@group(0) @binding(3) var<storage, read> cls_prior: array<f32>;
@group(0) @binding(4) var<storage, read_write> cls_diff: array<f32>;
@group(0) @binding(5) var<storage, read_write> cls_count: array<f32>;

@compute @workgroup_size(256)
fn cmm_classes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid);
    if at >= p.classes * p.features {
        return;
    }
    let k = at / p.features;
    let d = at % p.features;
    var count = 0u;
    var sum = 0.0;
    for (var i = 0u; i < p.rows; i++) {
        if cls_labels[i] == k {
            count += 1u;
            sum += cls_z[i * p.features + d];
        }
    }
    var diff = 0.0;
    if count > 0u {
        diff = sum / f32(count) - cls_prior[at];
    }
    cls_diff[at] = select(diff, diff * diff, SQUARE);
    if d == 0u {
        cls_count[k] = f32(count);
    }
}

// The class counts, binding 1 of cmm_finish and cmm_weights.
@group(0) @binding(1) var<storage, read> counts: array<f32>;

// P, the number of classes with at least one row.
fn present() -> u32 {
    var n = 0u;
    for (var k = 0u; k < p.classes; k++) {
        n += select(0u, 1u, counts[k] > 0.0);
    }
    return n;
}

@group(0) @binding(2) var<storage, read> fin_total: array<f32>;
@group(0) @binding(3) var<storage, read_write> fin_loss: array<f32>;

@compute @workgroup_size(1)
fn cmm_finish() {
    fin_loss[0] = fin_total[0] / (f32(present()) * f32(p.features));
}

@group(0) @binding(2) var<storage, read_write> wt_weight: array<f32>;

@compute @workgroup_size(1)
fn cmm_weights() {
    let scale = f32(present()) * f32(p.features);
    for (var k = 0u; k < p.classes; k++) {
        let c = counts[k];
        wt_weight[k] = select(0.0, 2.0 / (scale * c), c > 0.0);
    }
}

@group(0) @binding(1) var<storage, read> bwd_labels: array<u32>;
@group(0) @binding(2) var<storage, read> bwd_diff: array<f32>;
@group(0) @binding(3) var<storage, read> bwd_weight: array<f32>;
@group(0) @binding(4) var<storage, read> bwd_gloss: array<f32>;
@group(0) @binding(5) var<storage, read_write> bwd_gz: array<f32>;

@compute @workgroup_size(256)
fn cmm_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid);
    if at >= p.rows * p.features {
        return;
    }
    let y = bwd_labels[at / p.features];
    if y >= p.classes {
        bwd_gz[at] = 0.0;
        return;
    }
    let d = at % p.features;
    bwd_gz[at] = bwd_gloss[0] * bwd_weight[y] * bwd_diff[y * p.features + d];
}
