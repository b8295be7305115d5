// A copying axis permutation of a contiguous tensor: out[o_0, …, o_{r−1}] = x[i] with
// i_{perm[k]} = o_k, the input seen through a view of rank r ≤ 8. For each output axis k (the
// last varying fastest) the params hold its size and the input stride of axis perm[k], in the
// last `rank` slots: the Rust side drops size-1 axes and merges neighbours that stay neighbours,
// so that few divisions find an element's source.
//
// Entry `permute` (workgroup 256, grid folded over x and y). Bindings: 0 params, 1 x, 2 out.
// One output element per invocation, or with ROWS (`Tuning::row_invocations`) one row of the
// last output axis, its source found once and then stepped by that axis's stride.

struct Params {
    total: u32,
    rank: u32,
    _pad0: u32,
    _pad1: u32,
    dims: array<vec4<u32>, 2>,
    strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override ROWS: bool = false;

fn source_of(e: u32) -> u32 {
    var rest = e;
    var offset = 0u;
    for (var i = 0u; i < p.rank; i++) {
        let k = 7u - i;
        let dim = p.dims[k / 4u][k % 4u];
        offset += (rest % dim) * p.strides[k / 4u][k % 4u];
        rest /= dim;
    }
    return offset;
}

@compute @workgroup_size(256)
fn permute(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.x + wid.y * nwg.x) * 256u + lid;
    if !ROWS {
        if e < p.total {
            out[e] = x[source_of(e)];
        }
        return;
    }
    let len = p.dims[1].w;
    let start = e * len;
    if start >= p.total {
        return;
    }
    var src = source_of(start);
    let step = p.strides[1].w;
    for (var i = 0u; i < len; i++) {
        out[start + i] = x[src];
        src += step;
    }
}
