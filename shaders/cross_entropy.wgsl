// Label-smoothing softmax cross-entropy of logits (rows × classes) against u32 labels, with
// smoothing ε: the target of row i is t_k = (1 − ε)·[k = y_i] + ε/K, so the row loss
// (1 − ε)·(lse − z_y) + ε·(lse − mean_k z_k) is lse − ((1 − ε)·z_y + ε·mean_k z_k). At ε = 0
// every smoothing term is an exact 0 or 1, so plain cross-entropy keeps its bits.
// Entries (workgroup 64, one row per invocation):
//   ce_rows:     loss_row[i] = logΣ_k exp(z[i, k]) − ((1 − ε)·z[i, y[i]] + ε·mean_k z[i, k]),
//                with max subtraction; a label out of range gives NaN.
//                Bindings: 1 logits, 2 labels, 3 loss_rows.
//                The batch mean of the rows is a reduction (reduce.wgsl).
//   ce_backward: g_logits[i, k] = g_loss · (softmax(z_i)[k] − t_k) / rows.
//                Bindings: 1 logits, 2 labels, 3 g_loss (one value), 4 g_logits.

struct Params {
    rows: u32,
    classes: u32,
    smoothing: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> rows_logits: array<f32>;
@group(0) @binding(2) var<storage, read> rows_labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> rows_loss: array<f32>;

@compute @workgroup_size(64)
fn ce_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= p.rows {
        return;
    }
    let base = i * p.classes;
    var top = rows_logits[base];
    for (var k = 1u; k < p.classes; k++) {
        top = max(top, rows_logits[base + k]);
    }
    var sum = 0.0;
    var total = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        sum += exp(rows_logits[base + k] - top);
        total += rows_logits[base + k];
    }
    let y = rows_labels[i];
    if y >= p.classes {
        rows_loss[i] = bitcast<f32>(0x7fc00000u);
        return;
    }
    let expected = (1.0 - p.smoothing) * rows_logits[base + y]
        + p.smoothing * (total / f32(p.classes));
    rows_loss[i] = log(sum) + top - expected;
}

@group(0) @binding(1) var<storage, read> bwd_logits: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_labels: array<u32>;
@group(0) @binding(3) var<storage, read> bwd_gloss: array<f32>;
@group(0) @binding(4) var<storage, read_write> bwd_glogits: array<f32>;

@compute @workgroup_size(64)
fn ce_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= p.rows {
        return;
    }
    let base = i * p.classes;
    var top = bwd_logits[base];
    for (var k = 1u; k < p.classes; k++) {
        top = max(top, bwd_logits[base + k]);
    }
    var sum = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        sum += exp(bwd_logits[base + k] - top);
    }
    let scale = bwd_gloss[0] / f32(p.rows);
    let y = bwd_labels[i];
    let spread = p.smoothing / f32(p.classes);
    let hit = 1.0 - p.smoothing + spread;
    for (var k = 0u; k < p.classes; k++) {
        let prob = exp(bwd_logits[base + k] - top) / sum;
        bwd_glogits[base + k] = scale * (prob - select(spread, hit, k == y));
    }
}
