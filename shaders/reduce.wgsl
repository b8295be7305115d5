// Reductions over arbitrary axes, as workgroup trees with a second pass: no float atomics, and a
// fixed summation order, so results are deterministic.
//
// A tensor is seen through two index maps. An output index o in [0, outputs) picks the kept
// coordinates; an element index e in [0, count) picks the reduced ones. Each map has up to four
// groups of merged axes: dims[j] and their strides in the input, the last group varying fastest.
//
// Entries (workgroup 256; the tree kernels TREE_LANES, shaders/lib/tree_sum.wgsl):
//   reduce_partial: workgroup w = o·chunks + c sums chunk c of output o's elements into dst[w]
//                   (times `scale` when chunks = 1, so dst is then the result itself).
//                   Bindings: 1 x, 2 y, 3 m (per output), 4 dst. The summand is chosen by MODE:
//                   0: x, 1: (x − m[o])², 2: y·(x − m[o]), 3: x·y.
//   reduce_serial:  invocation o sums the elements of output o in order into dst[o] (times
//                   `scale`); for many outputs with few elements each (split-K partials), where a
//                   workgroup tree per output would leave most invocations idle. Bindings as
//                   reduce_partial.
//   reduce_final:   workgroup o sums the `chunks` partials of output o. Bindings: 1 partial, 2 out.
//   expand:         the transpose of a sum: out[e] = scale · src[kept index of e] for every
//                   element of the full tensor (contiguous). Bindings: 1 src, 2 out.
//   expand_mul:     out[e] = scale · src[kept index of e] · x[e], a broadcast product.
//                   Bindings: 1 src, 2 x, 3 out.
//   With ROWS, an invocation of expand or expand_mul writes a row of `row_len` contiguous
//   elements (the innermost axis group), the kept index found once and stepped by `row_step`
//   (1 when that group is kept, 0 when it is broadcast): the same values, no division per
//   element (for CPU drivers).
// Grids are folded over x and y.

override MODE: u32 = 0u;
override ROWS: bool = false;

struct Params {
    outputs: u32,
    count: u32,
    chunks: u32,
    chunk_len: u32,
    scale: f32,
    total: u32,
    row_len: u32,
    row_step: u32,
    kdim: vec4<u32>,
    kstride: vec4<u32>,
    rdim: vec4<u32>,
    rstride: vec4<u32>,
    // 256, the stride of reduce_partial's lanes, and TREE_LANES, the stride between the lanes
    // one invocation plays, as digits over rdim.
    rstep: vec4<u32>,
    lstep: vec4<u32>,
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

// Element index e as digits over rdim, the last varying fastest.
fn reduced_digits(e: u32) -> vec4<u32> {
    var rest = e;
    var d: vec4<u32>;
    d.w = rest % p.rdim.w;
    rest /= p.rdim.w;
    d.z = rest % p.rdim.z;
    rest /= p.rdim.z;
    d.y = rest % p.rdim.y;
    d.x = rest / p.rdim.y;
    return d;
}

// The digits of e + step, from those of e and of step (each digit of step at most rdim's): the
// walk over a sum's elements without a division per element, which a CPU driver would run lane by
// lane.
fn advance(d: vec4<u32>, step: vec4<u32>) -> vec4<u32> {
    var out = d + step;
    if out.w >= p.rdim.w {
        out.w -= p.rdim.w;
        out.z += 1u;
    }
    if out.z >= p.rdim.z {
        out.z -= p.rdim.z;
        out.y += 1u;
    }
    if out.y >= p.rdim.y {
        out.y -= p.rdim.y;
        out.x += 1u;
    }
    return out;
}

fn digits_offset(d: vec4<u32>) -> u32 {
    return d.x * p.rstride.x + d.y * p.rstride.y + d.z * p.rstride.z + d.w * p.rstride.w;
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
        case 3u: {
            return part_x[at] * part_y[at];
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
    var d = vec4<u32>();
    for (var e = 0u; e < p.count; e++) {
        acc += summand(base + digits_offset(d), o);
        d = advance(d, vec4<u32>(0u, 0u, 0u, 1u));
    }
    part_dst[o] = acc * p.scale;
}

@compute @workgroup_size(TREE_LANES)
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
    // The first element of each lane: found once, then stepped from lane to lane.
    var first = reduced_digits(start + lid);
    for (var lane = lid; lane < 256u; lane += TREE_LANES) {
        var acc = 0.0;
        var d = first;
        for (var e = start + lane; e < end; e += 256u) {
            acc += summand(base + digits_offset(d), o);
            d = advance(d, p.rstep);
        }
        tree[lane] = acc;
        first = advance(first, p.lstep);
    }
    let sum = tree_total(lid);
    if lid == 0u {
        part_dst[w] = select(sum, sum * p.scale, p.chunks == 1u);
    }
}

@group(0) @binding(1) var<storage, read> final_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> final_out: array<f32>;

@compute @workgroup_size(TREE_LANES)
fn reduce_final(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = wid.x + wid.y * nwg.x;
    if o >= p.outputs {
        return;
    }
    for (var lane = lid; lane < 256u; lane += TREE_LANES) {
        var acc = 0.0;
        for (var c = lane; c < p.chunks; c += 256u) {
            acc += final_partial[o * p.chunks + c];
        }
        tree[lane] = acc;
    }
    let sum = tree_total(lid);
    if lid == 0u {
        final_out[o] = sum * p.scale;
    }
}

@group(0) @binding(1) var<storage, read> expand_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> expand_out: array<f32>;

// Kept coordinates of element e, re-linearised in the kept (output) order. The padding groups
// (size 1) are skipped: an integer division per group and element is costly on CPU drivers.
fn kept_index(e: u32) -> u32 {
    var o = 0u;
    for (var j = 0; j < 4; j++) {
        if p.kdim[j] > 1u {
            o = o * p.kdim[j] + (e / p.kstride[j]) % p.kdim[j];
        }
    }
    return o;
}

// The elements one invocation of a broadcast writes: [first, first + count), kept index o0 of
// the first, stepping by `step`.
struct Span {
    first: u32,
    count: u32,
    o0: u32,
    step: u32,
}

fn broadcast_span(i: u32) -> Span {
    if ROWS {
        let first = i * p.row_len;
        return Span(first, min(p.row_len, p.total - min(first, p.total)), kept_index(first), p.row_step);
    }
    return Span(i, select(0u, 1u, i < p.total), kept_index(min(i, p.total - 1u)), 0u);
}

@compute @workgroup_size(256)
fn expand(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = broadcast_span((wid.x + wid.y * nwg.x) * 256u + lid);
    for (var j = 0u; j < s.count; j++) {
        expand_out[s.first + j] = p.scale * expand_src[s.o0 + j * s.step];
    }
}

@group(0) @binding(1) var<storage, read> bmul_src: array<f32>;
@group(0) @binding(2) var<storage, read> bmul_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> bmul_out: array<f32>;

@compute @workgroup_size(256)
fn expand_mul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = broadcast_span((wid.x + wid.y * nwg.x) * 256u + lid);
    for (var j = 0u; j < s.count; j++) {
        let e = s.first + j;
        bmul_out[e] = p.scale * bmul_src[s.o0 + j * s.step] * bmul_x[e];
    }
}
