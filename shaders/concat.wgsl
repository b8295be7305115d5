// Channel concatenation of (B, C_j, ...) tensors along axis 1 and its inverse, up to PARTS ≤ 7
// parts per dispatch. Part j holds channels [start_j, ends[j]) of the `total`-channel whole
// (start_0 = lo, start_j = ends[j − 1]); `inner` is the product of the axes after the channels.
// A dispatch covers the window of channels [lo, lo + window) of the whole: one workgroup per
// (sample, channel) row of it, rows = B·window, whose invocations copy the row's `inner`
// contiguous elements; the row's part is found once per workgroup. A concatenation of more than
// seven parts takes one dispatch per seven.
//
// Entries (workgroup 256, grids folded over x and y):
//   concat_many: bindings 1–7 the parts (unused ones bound to any buffer), 8 the whole.
//   split_many: bindings 1 the whole, 2–8 the parts (unused ones bound to buffers never written).
// Binding 0 is the params block in both.

struct Params {
    rows: u32,
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

// A row of the window: where it starts in the whole, its part, and where it starts in that part.
struct Row {
    whole: u32,
    part: u32,
    within: u32,
}

fn row_at(row: u32) -> Row {
    let b = row / p.window;
    let c = p.lo + row % p.window;
    var j = 0u;
    while j + 1u < PARTS && c >= end_of(j) {
        j += 1u;
    }
    var start = p.lo;
    if j > 0u {
        start = end_of(j - 1u);
    }
    let width = end_of(j) - start;
    return Row((b * p.total + c) * p.inner, j, (b * width + c - start) * p.inner);
}

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The workgroup's row, or a part index past every part for workgroups beyond the window.
fn workgroup_row(wid: vec3<u32>, nwg: vec3<u32>) -> Row {
    let row = row_of(wid, nwg);
    if row >= p.rows {
        return Row(0u, 7u, 0u);
    }
    return row_at(row);
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
    let at = workgroup_row(wid, nwg);
    let w = at.whole;
    let q = at.within;
    switch at.part {
        case 0u: { for (var r = lid; r < p.inner; r += 256u) { whole_out[w + r] = in0[q + r]; } }
        case 1u: { for (var r = lid; r < p.inner; r += 256u) { whole_out[w + r] = in1[q + r]; } }
        case 2u: { for (var r = lid; r < p.inner; r += 256u) { whole_out[w + r] = in2[q + r]; } }
        case 3u: { for (var r = lid; r < p.inner; r += 256u) { whole_out[w + r] = in3[q + r]; } }
        case 4u: { for (var r = lid; r < p.inner; r += 256u) { whole_out[w + r] = in4[q + r]; } }
        case 5u: { for (var r = lid; r < p.inner; r += 256u) { whole_out[w + r] = in5[q + r]; } }
        case 6u: { for (var r = lid; r < p.inner; r += 256u) { whole_out[w + r] = in6[q + r]; } }
        default: {}
    }
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
    let at = workgroup_row(wid, nwg);
    let w = at.whole;
    let q = at.within;
    switch at.part {
        case 0u: { for (var r = lid; r < p.inner; r += 256u) { out0[q + r] = whole_in[w + r]; } }
        case 1u: { for (var r = lid; r < p.inner; r += 256u) { out1[q + r] = whole_in[w + r]; } }
        case 2u: { for (var r = lid; r < p.inner; r += 256u) { out2[q + r] = whole_in[w + r]; } }
        case 3u: { for (var r = lid; r < p.inner; r += 256u) { out3[q + r] = whole_in[w + r]; } }
        case 4u: { for (var r = lid; r < p.inner; r += 256u) { out4[q + r] = whole_in[w + r]; } }
        case 5u: { for (var r = lid; r < p.inner; r += 256u) { out5[q + r] = whole_in[w + r]; } }
        case 6u: { for (var r = lid; r < p.inner; r += 256u) { out6[q + r] = whole_in[w + r]; } }
        default: {}
    }
}
