// Row L2 normalisation over the last axis of a (rows, D) view: y = x / n with n = ‖x‖ + eps
// (PyTorch's `x / (torch.norm(x, p=2, dim=-1, keepdim=True) + eps)`). Row r holds the D
// consecutive elements r·D … r·D + D − 1. One invocation does a whole row with serial loops in a
// fixed order (ProtoGCN's feature rows are 256 long and number a batch or a class count).
//
// Entries (workgroup 256, one row per invocation, grid folded over x and y):
//   l2n_forward:  y = x / n. Bindings: 1 x, 2 y.
//   l2n_backward: gx = g/n − x·(Σ g⊙x)/(n²·‖x‖), the second term 0 where ‖x‖ = 0 (the norm's
//                 subgradient PyTorch takes there), evaluated without its cancellation (below).
//                 Bindings: 1 x, 2 gy, 3 gx.
// Binding 0 is the params block in both.

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn row_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn l2n_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = row_of(wid, nwg, lid);
    if r >= p.rows {
        return;
    }
    let start = r * p.dim;
    var squares = 0.0;
    for (var j = 0u; j < p.dim; j++) {
        let x = fwd_x[start + j];
        squares += x * x;
    }
    let n = sqrt(squares) + p.eps;
    for (var j = 0u; j < p.dim; j++) {
        fwd_y[start + j] = fwd_x[start + j] / n;
    }
}

@group(0) @binding(1) var<storage, read> bwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn l2n_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = row_of(wid, nwg, lid);
    if r >= p.rows {
        return;
    }
    let start = r * p.dim;
    var squares = 0.0;
    for (var j = 0u; j < p.dim; j++) {
        let x = bwd_x[start + j];
        squares += x * x;
    }
    let s = sqrt(squares);
    let n = s + p.eps;
    // With x̂ = x/s and s/n = 1 − eps/n the gradient is (g − x̂(x̂·g))/n + x̂(x̂·g)·eps/n². The
    // direct g/n − x̂(x̂·g)·s/n² cancels to eps/n² of its terms along x̂; forming x̂ first keeps
    // every digit there (a row with one non-zero entry has x̂ = ±1 and g − x̂(x̂·g) = 0 exactly).
    // x̂ is 0 in a zero row; every factor is bounded (|x̂| ≤ 1, |x̂·g| ≤ ‖g‖, n ≥ eps).
    var along = 0.0;
    for (var j = 0u; j < p.dim; j++) {
        along += bwd_gy[start + j] * unit(bwd_x[start + j], s);
    }
    let tail = p.eps / (n * n);
    for (var j = 0u; j < p.dim; j++) {
        let pg = unit(bwd_x[start + j], s) * along;
        bwd_gx[start + j] = (bwd_gy[start + j] - pg) / n + pg * tail;
    }
}

// x/s, the component of the unit row; 0 in a zero row.
fn unit(x: f32, s: f32) -> f32 {
    return select(0.0, x / s, s > 0.0);
}
