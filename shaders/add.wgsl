// Sums of tensors of the same shape, over n elements.
// Entries (workgroup 256, SPAN elements per invocation, grid folded over x and y):
//   add: out = a + b, then max(out, 0) with RELU. Bindings: 0 params, 1 a, 2 b, 3 out.
//   add_many: out = ((t0 + t1) + t2) + … of TERMS terms, in that order, so that the result has
//       the bits of a chain of `add`s. With ACCUMULATE, out itself is the first term (the next
//       chunk of a sum of more than SUM_CHUNK tensors). Bindings: 0 params, 1–7 the terms (unused
//       ones bound to any buffer), 8 out.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include elementwise
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override RELU: bool = false;

@compute @workgroup_size(256)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.n {
            var v = a[i] + b[i];
            if RELU {
                v = max(v, 0.0);
            }
            out[i] = v;
        }
    }
}

override TERMS: u32 = 2u;
override ACCUMULATE: bool = false;

@group(0) @binding(1) var<storage, read> t0: array<f32>;
@group(0) @binding(2) var<storage, read> t1: array<f32>;
@group(0) @binding(3) var<storage, read> t2: array<f32>;
@group(0) @binding(4) var<storage, read> t3: array<f32>;
@group(0) @binding(5) var<storage, read> t4: array<f32>;
@group(0) @binding(6) var<storage, read> t5: array<f32>;
@group(0) @binding(7) var<storage, read> t6: array<f32>;
@group(0) @binding(8) var<storage, read_write> sum: array<f32>;

@compute @workgroup_size(256)
fn add_many(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var k = 0u; k < SPAN; k++) {
        let i = span_element(wid, nwg, lid, k);
        if i < p.n {
            sum[i] = terms_at(i);
        }
    }
}

fn terms_at(i: u32) -> f32 {
    var acc = t0[i];
    if ACCUMULATE {
        acc = sum[i] + acc;
    }
    if TERMS > 1u {
        acc += t1[i];
    }
    if TERMS > 2u {
        acc += t2[i];
    }
    if TERMS > 3u {
        acc += t3[i];
    }
    if TERMS > 4u {
        acc += t4[i];
    }
    if TERMS > 5u {
        acc += t5[i];
    }
    if TERMS > 6u {
        acc += t6[i];
    }
    return acc;
}
