// edge_feature: HD-GCN's `get_graph_feature` in the (B, 2C, V, k) layout. For x (B, C, V) and
// neighbour indices idx (B, V, k):
//   out[b, c, u, j]     = x[b, c, idx[b, u, j]] − x[b, c, u]
//   out[b, C + c, u, j] = x[b, c, u]
// The backward gathers per element of g_x, looping over the V·k index entries of its sample:
//   g_x[b, c, w] = Σ_{(u, j): idx[b, u, j] = w} g[b, c, u, j] + Σ_j (g[b, C + c, w, j] − g[b, c, w, j])
// in that order, so it is deterministic and needs no atomics. Indices must be < V.
//
// Entries (workgroup 256, grids folded over x and y):
//   edge_forward:  one invocation per output element. Bindings: 1 x, 2 idx, 3 out.
//   edge_backward: one invocation per element of x. Bindings: 1 idx, 2 g, 3 gx.
// Binding 0 is the params block in both.

struct Params {
    // Elements of the tensor the entry writes.
    total: u32,
    channels: u32,
    nodes: u32,
    k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> fwd_out: array<f32>;

@compute @workgroup_size(256)
fn edge_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.total {
        return;
    }
    let j = e % p.k;
    let u = (e / p.k) % p.nodes;
    let c2 = (e / (p.k * p.nodes)) % (2u * p.channels);
    let b = e / (p.k * p.nodes * 2u * p.channels);
    let c = c2 % p.channels;
    let row = (b * p.channels + c) * p.nodes;
    let centre = fwd_x[row + u];
    if c2 < p.channels {
        let w = fwd_idx[(b * p.nodes + u) * p.k + j];
        fwd_out[e] = fwd_x[row + w] - centre;
    } else {
        fwd_out[e] = centre;
    }
}

@group(0) @binding(1) var<storage, read> bwd_idx: array<u32>;
@group(0) @binding(2) var<storage, read> bwd_g: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn edge_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.total {
        return;
    }
    let w = e % p.nodes;
    let c = (e / p.nodes) % p.channels;
    let b = e / (p.nodes * p.channels);
    let plane = p.nodes * p.k;
    // g[b, c] and g[b, C + c] as (V, k) planes, and the sample's index table.
    let diff = (b * 2u * p.channels + c) * plane;
    let centre = diff + p.channels * plane;
    let table = b * plane;
    var acc = 0.0;
    for (var i = 0u; i < plane; i++) {
        if bwd_idx[table + i] == w {
            acc += bwd_g[diff + i];
        }
    }
    for (var j = 0u; j < p.k; j++) {
        acc += bwd_g[centre + w * p.k + j] - bwd_g[diff + w * p.k + j];
    }
    bwd_gx[e] = acc;
}
