// Plane pool of the AC-FA gates: x (R, Q, T, V) pooled along one axis of length L into
// Z (R, 2, H, W), channel 0 the max and channel 1 the mean of each line. The orientation lives
// in strides only: plane element (r, h, w) reads x[r·item + h·h_stride + w·w_stride + l·l_stride]
// for l in [0, L), and an element of x at offset o inside its item has the plane coordinates
// h = (o / h_stride) % H, w = (o / w_stride) % W and line index l = (o / l_stride) % L.
//
// The max scans the line in order with a strict `>`, so a tie goes to the first index. The
// backward recomputes that argmax once per line and writes the line's gradient, so no index
// tensor is stored: g_x = (g_Z[0] if l is the argmax) + g_Z[1] / L.
//
// Entries (workgroup 256, grids folded over x and y):
//   pool_forward:  one invocation per plane element (R·H·W). Bindings: 1 x, 2 z.
//   pool_backward: one invocation per plane element, for its line. Bindings: 1 x, 2 gz, 3 gx.
// Binding 0 is the params block in both.

struct Params {
    // Invocations of the entry: R·H·W, one per line.
    total: u32,
    // Q·T·V, the elements of one item.
    item: u32,
    height: u32,
    width: u32,
    length: u32,
    h_stride: u32,
    w_stride: u32,
    l_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// Offset in x of line index 0 of plane element (r, h, w).
fn line_base(r: u32, h: u32, w: u32) -> u32 {
    return r * p.item + h * p.h_stride + w * p.w_stride;
}

// First index of the line's maximum.
fn line_argmax(base: u32) -> u32 {
    var best_l = 0u;
    var best = x[base];
    for (var l = 1u; l < p.length; l++) {
        let v = x[base + l * p.l_stride];
        if v > best {
            best = v;
            best_l = l;
        }
    }
    return best_l;
}

@group(0) @binding(2) var<storage, read_write> fwd_z: array<f32>;

@compute @workgroup_size(256)
fn pool_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.total {
        return;
    }
    let plane = p.height * p.width;
    let r = e / plane;
    let hw = e % plane;
    let base = line_base(r, hw / p.width, hw % p.width);
    var best = x[base];
    var sum = best;
    for (var l = 1u; l < p.length; l++) {
        let v = x[base + l * p.l_stride];
        best = max(best, v);
        sum += v;
    }
    fwd_z[2u * r * plane + hw] = best;
    fwd_z[(2u * r + 1u) * plane + hw] = sum / f32(p.length);
}

@group(0) @binding(2) var<storage, read> bwd_gz: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn pool_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.total {
        return;
    }
    let plane = p.height * p.width;
    let r = e / plane;
    let hw = e % plane;
    let base = line_base(r, hw / p.width, hw % p.width);
    let argmax = line_argmax(base);
    let g_max = bwd_gz[2u * r * plane + hw];
    let g_mean = bwd_gz[(2u * r + 1u) * plane + hw] / f32(p.length);
    for (var l = 0u; l < p.length; l++) {
        bwd_gx[base + l * p.l_stride] = select(0.0, g_max, l == argmax) + g_mean;
    }
}
