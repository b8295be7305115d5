// Column L2 normalisation of a (K, V, W) tensor: y[k, v, w] = a[k, v, w] / n[k, w] with
// n = ‖a[k, :, w]‖ + eps, the norm over the middle axis (PyTorch's
// `a / (torch.norm(a, 2, dim=1, keepdim=True) + eps)`). Column c = k·W + w holds the V elements
// k·V·W + v·W + w, v ∈ [0, V). One invocation does a whole column with serial loops in a fixed
// order (the adjacency matrices it serves are a few dozen joints tall).
//
// Entries (workgroup 256, one column per invocation, grid folded over x and y):
//   col_norm_forward:  y = a / n. Bindings: 1 a, 2 y.
//   col_norm_backward: ga = g/n − a·(Σ g⊙a)/(n²·‖a‖), the second term 0 where ‖a‖ = 0 (the
//                      norm's subgradient PyTorch takes there), evaluated without its
//                      cancellation (below). Bindings: 1 a, 2 gy, 3 ga.
// Binding 0 is the params block in both.

struct Params {
    columns: u32,
    v: u32,
    w: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn column_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// Index of the column's first element; its elements follow at a stride of W.
fn column_start(c: u32) -> u32 {
    return (c / p.w) * p.v * p.w + c % p.w;
}

@group(0) @binding(1) var<storage, read> fwd_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn col_norm_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = column_of(wid, nwg, lid);
    if c >= p.columns {
        return;
    }
    let start = column_start(c);
    var squares = 0.0;
    for (var j = 0u; j < p.v; j++) {
        let x = fwd_a[start + j * p.w];
        squares += x * x;
    }
    let n = sqrt(squares) + p.eps;
    for (var j = 0u; j < p.v; j++) {
        let at = start + j * p.w;
        fwd_y[at] = fwd_a[at] / n;
    }
}

@group(0) @binding(1) var<storage, read> bwd_a: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_ga: array<f32>;

@compute @workgroup_size(256)
fn col_norm_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = column_of(wid, nwg, lid);
    if c >= p.columns {
        return;
    }
    let start = column_start(c);
    var squares = 0.0;
    for (var j = 0u; j < p.v; j++) {
        let x = bwd_a[start + j * p.w];
        squares += x * x;
    }
    let s = sqrt(squares);
    let n = s + p.eps;
    // With â = a/s and s/n = 1 − eps/n the gradient is (g − â(â·g))/n + â(â·g)·eps/n². The
    // direct g/n − â(â·g)·s/n² cancels to eps/n² of its terms along â: at an identity column
    // (ST-GCN's initial adjacency) it would keep only 3 of f32's 7 digits there. Here â is
    // formed first, so along a single non-zero entry â = ±1 and g − â(â·g) = 0 exactly. â is 0
    // in a zero column; every factor is bounded (|â| ≤ 1, |â·g| ≤ ‖g‖, n ≥ eps).
    var along = 0.0;
    for (var j = 0u; j < p.v; j++) {
        let at = start + j * p.w;
        along += bwd_gy[at] * unit(bwd_a[at], s);
    }
    let tail = p.eps / (n * n);
    for (var j = 0u; j < p.v; j++) {
        let at = start + j * p.w;
        let pg = unit(bwd_a[at], s) * along;
        bwd_ga[at] = (bwd_gy[at] - pg) / n + pg * tail;
    }
}

// x/s, the component of the unit column; 0 in a zero column.
fn unit(x: f32, s: f32) -> f32 {
    return select(0.0, x / s, s > 0.0);
}
