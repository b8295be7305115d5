// axis_max: the maximum over one axis of a contiguous tensor viewed as (outer, n, inner); line
// l = o·inner + i holds the n elements x[(o·n + j)·inner + i]. The scan goes in ascending j with a
// strict `>`, so a tie goes to the first maximal element, PyTorch's CPU index.
//
// The backward recomputes each line's argmax from x (no index tensor is saved) and writes the whole
// line of gx: the line's incoming gradient at the argmax, zero elsewhere. Each element of gx has
// exactly one writer, so there are no atomics and no zeroing pass.
//
// Entries (workgroup 256, one invocation per line, grids folded over x and y):
//   max_forward:  1 x, 2 y (outer, inner)
//   max_backward: 1 x, 2 gy (outer, inner), 3 gx (outer, n, inner)
// Binding 0 is the params block in both.

struct Params {
    lines: u32,
    n: u32,
    inner: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;

fn line_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// Index of the line's first element in x.
fn line_start(l: u32) -> u32 {
    return (l / p.inner) * p.n * p.inner + l % p.inner;
}

// Position j of the first maximum of the line starting at x[start].
fn line_argmax(start: u32) -> u32 {
    var best_j = 0u;
    var best = x[start];
    for (var j = 1u; j < p.n; j++) {
        let v = x[start + j * p.inner];
        if v > best {
            best = v;
            best_j = j;
        }
    }
    return best_j;
}

@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn max_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let l = line_of(wid, nwg, lid);
    if l >= p.lines {
        return;
    }
    let start = line_start(l);
    fwd_y[l] = x[start + line_argmax(start) * p.inner];
}

@group(0) @binding(2) var<storage, read> bwd_gy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_gx: array<f32>;

@compute @workgroup_size(256)
fn max_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let l = line_of(wid, nwg, lid);
    if l >= p.lines {
        return;
    }
    let start = line_start(l);
    let at = line_argmax(start);
    let g = bwd_gy[l];
    for (var j = 0u; j < p.n; j++) {
        bwd_gx[start + j * p.inner] = select(0.0, g, j == at);
    }
}
