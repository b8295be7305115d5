// Weighted sum of up to four parts of equal shape, y = Σ_i w[i]·part_i, and its backward. With
// fewer than four parts the Rust side binds part 0 in the unused slots; only the first
// `parts` are read.
//
// Entries (workgroup 256; grids folded over x and y):
//   ws_forward:       SPAN elements e per invocation: y[e] = Σ_{i < parts} w[i]·part_i[e], in part
//                     order. Bindings: 1–4 part_0..part_3, 5 w, 6 y.
//   ws_grad_part:     SPAN elements per invocation: gx = w[index]·g. Bindings: 1 w, 2 g, 3 gx.
//   ws_grad_w_partial: workgroup k = i·chunks + c sums g ⊙ part_i over chunk c (chunk_len
//                     elements) as a tree into dst[k]; with one chunk dst is g_w itself.
//                     Bindings: 1–4 part_0..part_3, 5 g, 6 dst.
//   ws_grad_w_final:  workgroup i sums the `chunks` partials of part i into g_w[i].
//                     Bindings: 1 partial, 2 gw.
// Binding 0 is the params block in all.

struct Params {
    // Elements of each part.
    n: u32,
    parts: u32,
    // The part ws_grad_part scales for.
    index: u32,
    chunks: u32,
    chunk_len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Parts of the forward, so that its loop over them unrolls and each part's binding is read
// directly.
override PARTS: u32 = 1u;

//! include elementwise

// The parts and the result, shared by ws_forward and ws_grad_w_partial.
@group(0) @binding(1) var<storage, read> part_0: array<f32>;
@group(0) @binding(2) var<storage, read> part_1: array<f32>;
@group(0) @binding(3) var<storage, read> part_2: array<f32>;
@group(0) @binding(4) var<storage, read> part_3: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

fn part_value(i: u32, e: u32) -> f32 {
    switch i {
        case 0u: {
            return part_0[e];
        }
        case 1u: {
            return part_1[e];
        }
        case 2u: {
            return part_2[e];
        }
        default: {
            return part_3[e];
        }
    }
}

@group(0) @binding(5) var<storage, read> fwd_w: array<f32>;

@compute @workgroup_size(256)
fn ws_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let e = span_element(wid, nwg, lid, k);
        if e < p.n {
            var acc = 0.0;
            for (var i = 0u; i < PARTS; i++) {
                acc += fwd_w[i] * part_value(i, e);
            }
            out[e] = acc;
        }
    }
}

@group(0) @binding(1) var<storage, read> gp_w: array<f32>;
@group(0) @binding(2) var<storage, read> gp_g: array<f32>;
@group(0) @binding(3) var<storage, read_write> gp_gx: array<f32>;

@compute @workgroup_size(256)
fn ws_grad_part(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let e = span_element(wid, nwg, lid, k);
        if e < p.n {
            gp_gx[e] = gp_w[p.index] * gp_g[e];
        }
    }
}

//! include tree_sum

@group(0) @binding(5) var<storage, read> gw_g: array<f32>;

@compute @workgroup_size(256)
fn ws_grad_w_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = wid.x + wid.y * nwg.x;
    if k >= p.parts * p.chunks {
        return;
    }
    let i = k / p.chunks;
    let start = (k % p.chunks) * p.chunk_len;
    let end = min(start + p.chunk_len, p.n);
    // The part is the same for the whole workgroup: chosen once, outside the loop.
    var acc = 0.0;
    switch i {
        case 0u: {
            for (var e = start + lid; e < end; e += 256u) {
                acc += gw_g[e] * part_0[e];
            }
        }
        case 1u: {
            for (var e = start + lid; e < end; e += 256u) {
                acc += gw_g[e] * part_1[e];
            }
        }
        case 2u: {
            for (var e = start + lid; e < end; e += 256u) {
                acc += gw_g[e] * part_2[e];
            }
        }
        default: {
            for (var e = start + lid; e < end; e += 256u) {
                acc += gw_g[e] * part_3[e];
            }
        }
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        out[k] = sum;
    }
}

@group(0) @binding(1) var<storage, read> final_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> final_gw: array<f32>;

@compute @workgroup_size(256)
fn ws_grad_w_final(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = wid.x + wid.y * nwg.x;
    if i >= p.parts {
        return;
    }
    var acc = 0.0;
    for (var c = lid; c < p.chunks; c += 256u) {
        acc += final_partial[i * p.chunks + c];
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        final_gw[i] = sum;
    }
}
