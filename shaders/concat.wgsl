// Channel concatenation of (B, C_j, ...) tensors along axis 1 and its inverse, up to PARTS ≤ 7
// parts per dispatch. Part j holds channels [start_j, ends[j]) of the `total`-channel whole
// (start_0 = lo, start_j = ends[j − 1]); `inner` is the product of the axes after the channels.
// A dispatch covers the window of channels [lo, lo + window) of the whole, count = B·window·inner
// elements; a concatenation of more than seven parts takes one dispatch per seven.
//
// Entries (workgroup 256, one element of the window per invocation, grids folded over x and y):
//   concat_many: bindings 1–7 the parts (unused ones bound to any buffer), 8 the whole.
//   split_many: bindings 1 the whole, 2–8 the parts (unused ones bound to buffers never written).
// Binding 0 is the params block in both.

struct Params {
    count: u32,
    total: u32,
    inner: u32,
    lo: u32,
    window: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    ends: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;

override PARTS: u32 = 1u;

fn end_of(j: u32) -> u32 {
    return p.ends[j / 4u][j % 4u];
}

// Element e of the window: its index in the whole, its part, and its index in that part.
struct Place {
    whole: u32,
    part: u32,
    within: u32,
}

fn place(e: u32) -> Place {
    let r = e % p.inner;
    let c = p.lo + (e / p.inner) % p.window;
    let b = e / (p.inner * p.window);
    var j = 0u;
    while j + 1u < PARTS && c >= end_of(j) {
        j += 1u;
    }
    var start = p.lo;
    if j > 0u {
        start = end_of(j - 1u);
    }
    let width = end_of(j) - start;
    return Place((b * p.total + c) * p.inner + r, j, (b * width + c - start) * p.inner + r);
}

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read> in3: array<f32>;
@group(0) @binding(5) var<storage, read> in4: array<f32>;
@group(0) @binding(6) var<storage, read> in5: array<f32>;
@group(0) @binding(7) var<storage, read> in6: array<f32>;
@group(0) @binding(8) var<storage, read_write> whole_out: array<f32>;

@compute @workgroup_size(256)
fn concat_many(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.count {
        return;
    }
    let at = place(e);
    var v = 0.0;
    switch at.part {
        case 0u: { v = in0[at.within]; }
        case 1u: { v = in1[at.within]; }
        case 2u: { v = in2[at.within]; }
        case 3u: { v = in3[at.within]; }
        case 4u: { v = in4[at.within]; }
        case 5u: { v = in5[at.within]; }
        case 6u: { v = in6[at.within]; }
        default: {}
    }
    whole_out[at.whole] = v;
}

@group(0) @binding(1) var<storage, read> whole_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> out0: array<f32>;
@group(0) @binding(3) var<storage, read_write> out1: array<f32>;
@group(0) @binding(4) var<storage, read_write> out2: array<f32>;
@group(0) @binding(5) var<storage, read_write> out3: array<f32>;
@group(0) @binding(6) var<storage, read_write> out4: array<f32>;
@group(0) @binding(7) var<storage, read_write> out5: array<f32>;
@group(0) @binding(8) var<storage, read_write> out6: array<f32>;

@compute @workgroup_size(256)
fn split_many(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = element(wid, nwg, lid);
    if e >= p.count {
        return;
    }
    let at = place(e);
    let v = whole_in[at.whole];
    switch at.part {
        case 0u: { out0[at.within] = v; }
        case 1u: { out1[at.within] = v; }
        case 2u: { out2[at.within] = v; }
        case 3u: { out3[at.within] = v; }
        case 4u: { out4[at.within] = v; }
        case 5u: { out5[at.within] = v; }
        case 6u: { out6[at.within] = v; }
        default: {}
    }
}
