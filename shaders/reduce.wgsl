// Reductions over arbitrary axes, as workgroup trees with a second pass: no float atomics, and a
// fixed summation order, so results are deterministic.
//
// A tensor is seen through two index maps. An output index o in [0, outputs) picks the kept
// coordinates; an element index e in [0, count) picks the reduced ones. Each map has up to four
// groups of merged axes: dims[j] and their strides in the input, the last group varying fastest.
//
// Entries (workgroup 256):
//   reduce_partial: workgroup w = o·chunks + c sums chunk c of output o's elements into dst[w]
//                   (times `scale` when chunks = 1, so dst is then the result itself).
//                   Bindings: 1 x, 2 y, 3 m (per output), 4 dst. The summand is chosen by MODE:
//                   0: x, 1: (x − m[o])², 2: y·(x − m[o]).
//   reduce_serial:  invocation o sums the elements of output o in order into dst[o] (times
//                   `scale`); for many outputs with few elements each (split-K partials), where a
//                   workgroup tree per output would leave most invocations idle. Bindings as
//                   reduce_partial.
//   reduce_final:   workgroup o sums the `chunks` partials of output o. Bindings: 1 partial, 2 out.
//   expand:         the transpose of a sum: out[e] = scale · src[kept index of e] for every
//                   element of the full tensor (contiguous). Bindings: 1 src, 2 out.
// Grids are folded over x and y.

override MODE: u32 = 0u;

struct Params {
    outputs: u32,
    count: u32,
    chunks: u32,
    chunk_len: u32,
    scale: f32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
    kdim: vec4<u32>,
    kstride: vec4<u32>,
    rdim: vec4<u32>,
    rstride: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include tree_sum

fn kept_offset(o: u32) -> u32 {
    var rest = o;
    var offset = 0u;
    for (var j = 3; j >= 0; j--) {
        offset += (rest % p.kdim[j]) * p.kstride[j];
        rest /= p.kdim[j];
    }
    return offset;
}

fn reduced_offset(e: u32) -> u32 {
    var rest = e;
    var offset = 0u;
    for (var j = 3; j >= 0; j--) {
        offset += (rest % p.rdim[j]) * p.rstride[j];
        rest /= p.rdim[j];
    }
    return offset;
}

@group(0) @binding(1) var<storage, read> part_x: array<f32>;
@group(0) @binding(2) var<storage, read> part_y: array<f32>;
@group(0) @binding(3) var<storage, read> part_m: array<f32>;
@group(0) @binding(4) var<storage, read_write> part_dst: array<f32>;

fn summand(at: u32, o: u32) -> f32 {
    switch MODE {
        case 1u: {
            let d = part_x[at] - part_m[o];
            return d * d;
        }
        case 2u: {
            return part_y[at] * (part_x[at] - part_m[o]);
        }
        default: {
            return part_x[at];
        }
    }
}

@compute @workgroup_size(256)
fn reduce_serial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = (wid.x + wid.y * nwg.x) * 256u + lid;
    if o >= p.outputs {
        return;
    }
    let base = kept_offset(o);
    var acc = 0.0;
    for (var e = 0u; e < p.count; e++) {
        acc += summand(base + reduced_offset(e), o);
    }
    part_dst[o] = acc * p.scale;
}

@compute @workgroup_size(256)
fn reduce_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.x + wid.y * nwg.x;
    if w >= p.outputs * p.chunks {
        return;
    }
    let o = w / p.chunks;
    let start = (w % p.chunks) * p.chunk_len;
    let end = min(start + p.chunk_len, p.count);
    let base = kept_offset(o);
    var acc = 0.0;
    for (var e = start + lid; e < end; e += 256u) {
        acc += summand(base + reduced_offset(e), o);
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        part_dst[w] = select(sum, sum * p.scale, p.chunks == 1u);
    }
}

@group(0) @binding(1) var<storage, read> final_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> final_out: array<f32>;

@compute @workgroup_size(256)
fn reduce_final(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = wid.x + wid.y * nwg.x;
    if o >= p.outputs {
        return;
    }
    var acc = 0.0;
    for (var c = lid; c < p.chunks; c += 256u) {
        acc += final_partial[o * p.chunks + c];
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        final_out[o] = sum * p.scale;
    }
}

@group(0) @binding(1) var<storage, read> expand_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> expand_out: array<f32>;

@compute @workgroup_size(256)
fn expand(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.x + wid.y * nwg.x) * 256u + lid;
    if e >= p.total {
        return;
    }
    // Kept coordinates of element e, re-linearised in the kept (output) order.
    var o = 0u;
    for (var j = 0; j < 4; j++) {
        o = o * p.kdim[j] + (e / p.kstride[j]) % p.kdim[j];
    }
    expand_out[e] = p.scale * expand_src[o];
}
