// knn: for each node u of each sample of x (B, C, V), the indices of the k nodes w with the largest
// score s(u, w) = 2·Σ_c x_u·x_w − Σ_c x_u² − Σ_c x_w² (= −‖x_u − x_w‖², computed as HD-GCN's
// EdgeConv does), in descending order of score; a tie goes to the lower index. u itself scores 0
// and usually comes first. Needs V ≤ 64 and k ≤ V, and finite x.
//
// Selection without marking: pick j is the best node strictly after pick j − 1 in the total order
// (score descending, index ascending), found by one scan in ascending w with a strict `>`.
//
// Entry (workgroup 256, one invocation per (b, u), grid folded over x and y):
//   knn_forward: 1 x (B, C, V) f32, 2 idx (B, V, k) u32
// Binding 0 is the params block.

const MAX_NODES: u32 = 64u;

struct Params {
    // B·V.
    rows: u32,
    channels: u32,
    nodes: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<u32>;

@compute @workgroup_size(256)
fn knn_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * 256u + lid;
    if row >= p.rows {
        return;
    }
    let u = row % p.nodes;
    let base = (row / p.nodes) * p.channels * p.nodes;
    var sq_u = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let xu = x[base + c * p.nodes + u];
        sq_u += xu * xu;
    }
    var score: array<f32, MAX_NODES>;
    for (var w = 0u; w < p.nodes; w++) {
        var dot = 0.0;
        var sq_w = 0.0;
        for (var c = 0u; c < p.channels; c++) {
            let xw = x[base + c * p.nodes + w];
            dot += x[base + c * p.nodes + u] * xw;
            sq_w += xw * xw;
        }
        score[w] = 2.0 * dot - sq_u - sq_w;
    }
    var prev_s = 0.0;
    var prev_w = 0u;
    for (var j = 0u; j < p.k; j++) {
        var best_w = p.nodes;
        var best_s = 0.0;
        for (var w = 0u; w < p.nodes; w++) {
            let s = score[w];
            let after_prev = j == 0u || s < prev_s || (s == prev_s && w > prev_w);
            if after_prev && (best_w == p.nodes || s > best_s) {
                best_w = w;
                best_s = s;
            }
        }
        idx[row * p.k + j] = best_w;
        prev_s = best_s;
        prev_w = best_w;
    }
}
