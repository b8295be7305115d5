// Plane convolution of the AC-FA gates: z (R, Cin, H, W) cross-correlated with w (1, Cin, K, K),
// K = KSIZE odd and at most MAX_KSIZE, zero padding P = K/2, stride 1, no bias, into
// out (R, 1, H, W):
//   out[r, h, x] = Σ_{c,i,j} w[c, i, j]·z[r, c, h + i − P, x + j − P]   (zero outside the plane).
// The forward and the data gradient are register-tiled along a row: an invocation computes TILE
// neighbouring outputs, loading each source row's window of TILE + K − 1 values once and reusing
// it for every tap, instead of K loads per output and row. Only the rows inside the plane are
// visited. No workgroup memory: the weights are few and read through the cache.
//
// Entries (workgroup 256, grids folded over x and y):
//   conv_forward:     one invocation per TILE outputs of a row (R·H·⌈W/TILE⌉).
//                     Bindings: 1 z, 2 w, 3 out.
//   conv_grad_input:  one invocation per TILE elements of a row of z (R·Cin·H·⌈W/TILE⌉), the
//                     gather g_z[r, c, h, x] = Σ_{i,j} w[c, i, j]·g_out[r, h − i + P, x − j + P].
//                     Bindings: 1 w, 2 g_out, 3 g_z.
//   conv_grad_weight: invocation e = chunk·Cin·K + c·K + i sums, for the K taps j of kernel row
//                     (c, i) at once, g_out[n]·z[r, c, h + i − P, x + j − P] over the elements
//                     n = (r, h, x) of chunk [chunk·chunk_len, (chunk + 1)·chunk_len) of the
//                     R·H·W outputs, in order, into partial[chunk·Cin·K·K + (c·K + i)·K + j]; a
//                     tree over the chunks (reduce.wgsl) finishes g_w. Bindings: 1 g_out, 2 z,
//                     3 partial.
// Binding 0 is the params block in all of them.

struct Params {
    // Invocations of the entry.
    total: u32,
    channels: u32,
    height: u32,
    width: u32,
    // R·H·W.
    outputs: u32,
    chunk_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override KSIZE: u32 = 7u;

const TILE: u32 = 4u;
// The largest kernel side, so that a row's window fits a fixed array.
const MAX_KSIZE: u32 = 9u;
const MAX_WINDOW: u32 = TILE + MAX_KSIZE - 1u;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

fn pad() -> u32 {
    return KSIZE / 2u;
}

// Kernel rows [lo, hi) with 0 ≤ h + i − P < H: where the forward reads inside the plane.
fn forward_rows(h: u32) -> vec2<u32> {
    let lo = select(0u, pad() - h, h < pad());
    let hi = min(KSIZE, p.height + pad() - h);
    return vec2(lo, hi);
}

// Kernel rows [lo, hi) with 0 ≤ h − i + P < H: the outputs that read row h.
fn gather_rows(h: u32) -> vec2<u32> {
    let reach = h + pad() + 1u;
    let lo = select(0u, reach - p.height, reach > p.height);
    let hi = min(KSIZE, reach);
    return vec2(lo, hi);
}

// Value `col` of the plane row starting at `row`, zero outside the row (col is signed).
fn row_value_z(row: u32, col: i32) -> f32 {
    let inside = col >= 0 && col < i32(p.width);
    return select(0.0, fwd_z[row + u32(clamp(col, 0, i32(p.width) - 1))], inside);
}

fn row_value_g(row: u32, col: i32) -> f32 {
    let inside = col >= 0 && col < i32(p.width);
    return select(0.0, gin_gout[row + u32(clamp(col, 0, i32(p.width) - 1))], inside);
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
    let tiles = (p.width + TILE - 1u) / TILE;
    let row = e / tiles;
    let x0 = (e % tiles) * TILE;
    let r = row / p.height;
    let h = row % p.height;
    let rows = forward_rows(h);
    // Window value s is column x0 + s − P; output x0 + o reads it at tap j = s − o.
    let first = i32(x0) - i32(pad());
    var acc = vec4(0.0);
    var win: array<f32, MAX_WINDOW>;
    for (var c = 0u; c < p.channels; c++) {
        for (var i = rows.x; i < rows.y; i++) {
            let z_row = ((r * p.channels + c) * p.height + h + i - pad()) * p.width;
            for (var s = 0u; s < TILE + KSIZE - 1u; s++) {
                win[s] = row_value_z(z_row, first + i32(s));
            }
            let w_row = (c * KSIZE + i) * KSIZE;
            for (var j = 0u; j < KSIZE; j++) {
                let taps = vec4(win[j], win[j + 1u], win[j + 2u], win[j + 3u]);
                acc = fma(vec4(fwd_w[w_row + j]), taps, acc);
            }
        }
    }
    let out_row = row * p.width;
    for (var o = 0u; o < TILE; o++) {
        if x0 + o < p.width {
            fwd_out[out_row + x0 + o] = acc[o];
        }
    }
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
    let tiles = (p.width + TILE - 1u) / TILE;
    let row = e / tiles;
    let x0 = (e % tiles) * TILE;
    let rc = row / p.height;
    let h = row % p.height;
    let r = rc / p.channels;
    let c = rc % p.channels;
    let rows = gather_rows(h);
    // Window value s is column x0 + s − (K − 1) + P of g_out; element x0 + o takes it at tap
    // j = o + K − 1 − s.
    let first = i32(x0) + i32(pad()) - i32(KSIZE - 1u);
    var acc = vec4(0.0);
    var win: array<f32, MAX_WINDOW>;
    for (var i = rows.x; i < rows.y; i++) {
        let g_row = (r * p.height + h + pad() - i) * p.width;
        for (var s = 0u; s < TILE + KSIZE - 1u; s++) {
            win[s] = row_value_g(g_row, first + i32(s));
        }
        let w_row = (c * KSIZE + i) * KSIZE;
        for (var j = 0u; j < KSIZE; j++) {
            let s = KSIZE - 1u - j;
            let taps = vec4(win[s], win[s + 1u], win[s + 2u], win[s + 3u]);
            acc = fma(vec4(gin_w[w_row + j]), taps, acc);
        }
    }
    let z_row = row * p.width;
    for (var o = 0u; o < TILE; o++) {
        if x0 + o < p.width {
            gin_gz[z_row + x0 + o] = acc[o];
        }
    }
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
    let kernel_rows = p.channels * KSIZE;
    let ci = e % kernel_rows;
    let c = ci / KSIZE;
    let i = ci % KSIZE;
    let plane = p.height * p.width;
    let chunk = e / kernel_rows;
    let start = chunk * p.chunk_len;
    let end = min(start + p.chunk_len, p.outputs);
    // Walk (r, h, x) of n from the chunk's start without dividing at every step.
    var r = start / plane;
    var h = (start % plane) / p.width;
    var x = start % p.width;
    var acc: array<f32, MAX_KSIZE>;
    for (var n = start; n < end; n++) {
        // Source row h + i − P, in u32: a negative row wraps past the height.
        let zh = h + i - pad();
        if zh < p.height {
            let g = gw_gout[n];
            let z_row = ((r * p.channels + c) * p.height + zh) * p.width;
            for (var j = 0u; j < KSIZE; j++) {
                let zx = x + j - pad();
                if zx < p.width {
                    acc[j] = fma(g, gw_z[z_row + zx], acc[j]);
                }
            }
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
    let at = (chunk * kernel_rows + ci) * KSIZE;
    for (var j = 0u; j < KSIZE; j++) {
        gw_partial[at + j] = acc[j];
    }
}
