// Channel concatenation of (B, C_j, ...) tensors along axis 1 and its inverse, up to PARTS ≤ 7
// parts per dispatch. A dispatch covers the window of channels [lo, lo + window) of the
// `total`-channel whole. Within a sample the window is one contiguous run of window·inner
// elements (inner: the product of the axes after the channels), and part j is the contiguous
// stretch [start_j, ends[j]) of it (start_0 = 0, start_j = ends[j − 1], in elements), so an
// element's part is found by comparisons alone: integer divisions run lane by lane on CPU
// drivers. A concatenation of more than seven parts takes one dispatch per seven.
//
// Entries (workgroup 256; a sample's run is a row of shaders/lib/elementwise.wgsl, SPAN elements
// per invocation):
//   concat_many: bindings 1–7 the parts (unused ones bound to any buffer), 8 the whole.
//   split_many: bindings 1 the whole, 2–8 the parts (unused ones bound to buffers never written).
// Binding 0 is the params block in both.

struct Params {
    batch: u32,
    // Elements of a sample's window and of a sample of the whole; where the window starts in
    // a sample of the whole.
    run: u32,
    sample: u32,
    lo: u32,
    ends: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;

override PARTS: u32 = 1u;

//! include elementwise

fn end_of(j: u32) -> u32 {
    return p.ends[j / 4u][j % 4u];
}

fn start_of(j: u32) -> u32 {
    if j == 0u {
        return 0u;
    }
    return end_of(j - 1u);
}

// The part holding element f of the run: the number of part ends at or before it.
fn part_of(f: u32) -> u32 {
    var j = 0u;
    for (var k = 0u; k + 1u < PARTS; k++) {
        j += select(0u, 1u, f >= end_of(k));
    }
    return j;
}

// Where element f of sample b's run sits in part j.
fn within(j: u32, b: u32, f: u32) -> u32 {
    let start = start_of(j);
    return b * (end_of(j) - start) + f - start;
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
    let b = grid_row(wid, nwg);
    if b >= p.batch {
        return;
    }
    let base = b * p.sample + p.lo;
    for (var k = 0u; k < SPAN; k++) {
        let f = row_element(wid, lid, k);
        if f < p.run {
            var v: f32;
            switch part_of(f) {
                case 0u: { v = in0[within(0u, b, f)]; }
                case 1u: { v = in1[within(1u, b, f)]; }
                case 2u: { v = in2[within(2u, b, f)]; }
                case 3u: { v = in3[within(3u, b, f)]; }
                case 4u: { v = in4[within(4u, b, f)]; }
                case 5u: { v = in5[within(5u, b, f)]; }
                default: { v = in6[within(6u, b, f)]; }
            }
            whole_out[base + f] = v;
        }
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
    let b = grid_row(wid, nwg);
    if b >= p.batch {
        return;
    }
    let base = b * p.sample + p.lo;
    for (var k = 0u; k < SPAN; k++) {
        let f = row_element(wid, lid, k);
        if f < p.run {
            let v = whole_in[base + f];
            switch part_of(f) {
                case 0u: { out0[within(0u, b, f)] = v; }
                case 1u: { out1[within(1u, b, f)] = v; }
                case 2u: { out2[within(2u, b, f)] = v; }
                case 3u: { out3[within(3u, b, f)] = v; }
                case 4u: { out4[within(4u, b, f)] = v; }
                case 5u: { out5[within(5u, b, f)] = v; }
                default: { out6[within(6u, b, f)] = v; }
            }
        }
    }
}
