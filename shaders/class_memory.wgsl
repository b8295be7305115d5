// ProtoGCN's class memory (`Class_Specific_Contrastive_Loss.local_average`) and the mask of true
// positives it averages. With s[k] = Σ_b mask[b, k] and h[k] = momentum where s[k] > 1e-8, 1
// elsewhere:
//   f_mask[d, k] = Σ_b f[b, d]·mask[b, k] / (s[k] + 1e-12)
//   out[d, k]    = memory[d, k]·h[k] + (1 − h[k])·f_mask[d, k]
// and in training the memory becomes out. Layouts: f (batch, features), mask and logits
// (batch, classes), memory, out and g (features, classes). Every sum is a serial loop in a fixed
// order (no float atomics).
//
// Entries (workgroup 256, grids folded over x and y):
//   tpm_mask     one row b per invocation: mask[b, :] = 0, and 1 at label[b] when the first
//                maximum of logits[b, :] is there and softmax(logits[b])[label] > 0 (the official
//                pred_threshold 0; false only for non-finite logits, whose softmax is NaN). A
//                label ≥ classes gives a zero row. Bindings: 1 logits, 2 labels, 3 mask.
//   cm_counts    one class k per invocation: s[k]. Bindings: 1 mask, 2 counts.
//   cm_forward   one (d, k) per invocation: out. Bindings: 1 f, 2 mask, 3 counts, 4 memory, 5 out.
//   cm_store     one element per invocation, training only: memory = out. A dispatch of its own,
//                so that cm_forward has read every old value before any is overwritten.
//                Bindings: 1 out, 2 memory.
//   cm_backward  one (b, d) per invocation:
//                gf[b, d] = Σ_k g[d, k]·(1 − h[k]) / (s[k] + 1e-12) · mask[b, k].
//                Bindings: 1 mask, 2 counts, 3 g, 4 gf.
// Binding 0 is the params block in all.

struct Params {
    batch: u32,
    features: u32,
    classes: u32,
    momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Added to the class counts before dividing, as the official `mask_sum + 1e-12`.
const COUNT_EPS: f32 = 1e-12;
// Classes whose count exceeds this blend in the batch mean (the official `mask_sum > 1e-8`).
const PRESENT: f32 = 1e-8;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// The memory's weight h[k] for a class count s.
fn keep_weight(s: f32) -> f32 {
    return select(1.0, p.momentum, s > PRESENT);
}

@group(0) @binding(1) var<storage, read> tpm_logits: array<f32>;
@group(0) @binding(2) var<storage, read> tpm_labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> tpm_out: array<f32>;

@compute @workgroup_size(256)
fn tpm_mask(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = flat_index(wid, nwg, lid);
    if b >= p.batch {
        return;
    }
    let start = b * p.classes;
    var best = 0u;
    var top = tpm_logits[start];
    for (var k = 1u; k < p.classes; k++) {
        let v = tpm_logits[start + k];
        if v > top {
            best = k;
            top = v;
        }
    }
    var total = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        tpm_out[start + k] = 0.0;
        total += exp(tpm_logits[start + k] - top);
    }
    let label = tpm_labels[b];
    if label == best {
        let prob = exp(tpm_logits[start + label] - top) / total;
        if prob > 0.0 {
            tpm_out[start + label] = 1.0;
        }
    }
}

@group(0) @binding(1) var<storage, read> cnt_mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> cnt_counts: array<f32>;

@compute @workgroup_size(256)
fn cm_counts(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = flat_index(wid, nwg, lid);
    if k >= p.classes {
        return;
    }
    var s = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        s += cnt_mask[b * p.classes + k];
    }
    cnt_counts[k] = s;
}

@group(0) @binding(1) var<storage, read> fwd_f: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_mask: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_counts: array<f32>;
@group(0) @binding(4) var<storage, read> fwd_memory: array<f32>;
@group(0) @binding(5) var<storage, read_write> fwd_out: array<f32>;

@compute @workgroup_size(256)
fn cm_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid);
    if at >= p.features * p.classes {
        return;
    }
    let d = at / p.classes;
    let k = at % p.classes;
    var sum = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        sum += fwd_f[b * p.features + d] * fwd_mask[b * p.classes + k];
    }
    let s = fwd_counts[k];
    let h = keep_weight(s);
    fwd_out[at] = fwd_memory[at] * h + (1.0 - h) * (sum / (s + COUNT_EPS));
}

@group(0) @binding(1) var<storage, read> st_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> st_memory: array<f32>;

@compute @workgroup_size(256)
fn cm_store(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid);
    if at < p.features * p.classes {
        st_memory[at] = st_out[at];
    }
}

@group(0) @binding(1) var<storage, read> bwd_mask: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_counts: array<f32>;
@group(0) @binding(3) var<storage, read> bwd_g: array<f32>;
@group(0) @binding(4) var<storage, read_write> bwd_gf: array<f32>;

@compute @workgroup_size(256)
fn cm_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid);
    if at >= p.batch * p.features {
        return;
    }
    let b = at / p.features;
    let d = at % p.features;
    var sum = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        let s = bwd_counts[k];
        let blended = bwd_g[d * p.classes + k] * (1.0 - keep_weight(s));
        sum += blended / (s + COUNT_EPS) * bwd_mask[b * p.classes + k];
    }
    bwd_gf[at] = sum;
}
