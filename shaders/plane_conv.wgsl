// Plane convolution of the AC-FA gates: z (R, Cin, H, W) cross-correlated with w (1, Cin, K, K),
// K odd, zero padding P = K/2, stride 1, no bias, into out (R, 1, H, W):
//   out[r, h, x] = Σ_{c,i,j} w[c, i, j]·z[r, c, h + i − P, x + j − P]   (zero outside the plane).
// Each invocation loops over the taps that land inside the plane, so planes smaller than the
// kernel read no padding. No workgroup memory: the weights are few and read through the cache.
//
// Entries (workgroup 256, grids folded over x and y):
//   conv_forward:     one invocation per output element (R·H·W). Bindings: 1 z, 2 w, 3 out.
//   conv_grad_input:  one invocation per element of z, the gather
//                     g_z[r, c, h, x] = Σ_{i,j} w[c, i, j]·g_out[r, h − i + P, x − j + P].
//                     Bindings: 1 w, 2 g_out, 3 g_z.
//   conv_grad_weight: invocation e = chunk·taps + tap (taps = Cin·K·K) sums
//                     g_out[n]·z[r, c, h + i − P, x + j − P] over the elements n = (r, h, x) of
//                     chunk [chunk·chunk_len, (chunk + 1)·chunk_len) of the R·H·W outputs, in
//                     order, into partial[e]; a tree over the chunks (reduce.wgsl) finishes g_w.
//                     Neighbouring invocations read the same g_out and nearby z.
//                     Bindings: 1 g_out, 2 z, 3 partial.
// Binding 0 is the params block in all of them.

struct Params {
    // Invocations of the entry.
    total: u32,
    channels: u32,
    height: u32,
    width: u32,
    ksize: u32,
    pad: u32,
    // R·H·W.
    outputs: u32,
    chunk_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// Taps [lo, hi) with 0 ≤ pos + tap − P < size: where the forward reads inside the plane.
fn forward_taps(pos: u32, size: u32) -> vec2<u32> {
    let lo = select(0u, p.pad - pos, pos < p.pad);
    let hi = min(p.ksize, size + p.pad - pos);
    return vec2(lo, hi);
}

// Taps [lo, hi) with 0 ≤ pos − tap + P < size: the outputs that read position pos.
fn gather_taps(pos: u32, size: u32) -> vec2<u32> {
    let reach = pos + p.pad + 1u;
    let lo = select(0u, reach - size, reach > size);
    let hi = min(p.ksize, reach);
    return vec2(lo, hi);
}

@group(0) @binding(1) var<storage, read> fwd_z: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> fwd_out: array<f32>;

@compute @workgroup_size(256)
fn conv_forward(
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
    let h = (e % plane) / p.width;
    let x = e % p.width;
    let rows = forward_taps(h, p.height);
    let cols = forward_taps(x, p.width);
    var acc = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let z_plane = (r * p.channels + c) * plane;
        let w_plane = c * p.ksize * p.ksize;
        for (var i = rows.x; i < rows.y; i++) {
            let z_row = z_plane + (h + i - p.pad) * p.width + x - p.pad;
            let w_row = w_plane + i * p.ksize;
            for (var j = cols.x; j < cols.y; j++) {
                acc = fma(fwd_w[w_row + j], fwd_z[z_row + j], acc);
            }
        }
    }
    fwd_out[e] = acc;
}

@group(0) @binding(1) var<storage, read> gin_w: array<f32>;
@group(0) @binding(2) var<storage, read> gin_gout: array<f32>;
@group(0) @binding(3) var<storage, read_write> gin_gz: array<f32>;

@compute @workgroup_size(256)
fn conv_grad_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.total {
        return;
    }
    let plane = p.height * p.width;
    let rc = e / plane;
    let r = rc / p.channels;
    let c = rc % p.channels;
    let h = (e % plane) / p.width;
    let x = e % p.width;
    let rows = gather_taps(h, p.height);
    let cols = gather_taps(x, p.width);
    var acc = 0.0;
    for (var i = rows.x; i < rows.y; i++) {
        let g_row = r * plane + (h + p.pad - i) * p.width + x + p.pad;
        let w_row = (c * p.ksize + i) * p.ksize;
        for (var j = cols.x; j < cols.y; j++) {
            acc = fma(gin_w[w_row + j], gin_gout[g_row - j], acc);
        }
    }
    gin_gz[e] = acc;
}

@group(0) @binding(1) var<storage, read> gw_gout: array<f32>;
@group(0) @binding(2) var<storage, read> gw_z: array<f32>;
@group(0) @binding(3) var<storage, read_write> gw_partial: array<f32>;

@compute @workgroup_size(256)
fn conv_grad_weight(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.total {
        return;
    }
    let kk = p.ksize * p.ksize;
    let taps = p.channels * kk;
    let tap = e % taps;
    let c = tap / kk;
    let i = (tap % kk) / p.ksize;
    let j = tap % p.ksize;
    let plane = p.height * p.width;
    let start = (e / taps) * p.chunk_len;
    let end = min(start + p.chunk_len, p.outputs);
    // Walk (r, h, x) of n from the chunk's start without dividing at every step.
    var r = start / plane;
    var h = (start % plane) / p.width;
    var x = start % p.width;
    var acc = 0.0;
    for (var n = start; n < end; n++) {
        // Source (h + i − P, x + j − P), in u32: a negative coordinate wraps past the size.
        let zh = h + i - p.pad;
        let zx = x + j - p.pad;
        if zh < p.height && zx < p.width {
            let at = ((r * p.channels + c) * p.height + zh) * p.width + zx;
            acc = fma(gw_gout[n], gw_z[at], acc);
        }
        x++;
        if x == p.width {
            x = 0u;
            h++;
            if h == p.height {
                h = 0u;
                r++;
            }
        }
    }
    gw_partial[e] = acc;
}
