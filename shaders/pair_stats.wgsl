// pair_stats: the three dot products of each row pair of two (rows × dim) matrices a and b,
// ab[i] = a_i·b_i, aa[i] = a_i·a_i, bb[i] = b_i·b_i, in one pass over a and b. Workgroup trees with
// a second pass over the chunk partials: no float atomics, a fixed summation order.
//
// Entries (grids folded over x and y, linearised as wid.x + wid.y·nwg.x):
//   pair_stats_partial (workgroup 256, one workgroup w = i·chunks + c per chunk c of row i): sums
//       the chunk_len elements of chunk c into dst_*[w]; with chunks = 1 dst_* are the results.
//       Bindings: 1 a, 2 b, 3 dst_ab, 4 dst_aa, 5 dst_bb.
//   pair_stats_final (workgroup 256, one workgroup per row): sums the `chunks` partials of row i.
//       Bindings: 1 part_ab, 2 part_aa, 3 part_bb, 4 ab, 5 aa, 6 bb.
//   pair_stats_backward (workgroup 256, rows as shaders/lib/elementwise.wgsl lays them out, SPAN
//       elements per invocation): with the per-row gradients
//       broadcast over the row, g_a = g_ab·b + 2·g_aa·a and g_b = g_ab·a + 2·g_bb·b.
//       Bindings: 1 a, 2 b, 3 g_ab, 4 g_aa, 5 g_bb, 6 g_a, 7 g_b.
//   pair_stats_backward_side (laid out as pair_stats_backward): one side only,
//       g_x = g_xy·y + 2·g_xx·x. Bindings: 1 x, 2 y, 3 g_xy, 4 g_xx, 5 g_x.
// Binding 0 is the params block in all. An output without a gradient has HAS_* = 0 and counts as
// zero; its binding then holds another gradient so that the layout stays the same.

override HAS_AB: u32 = 1u;
override HAS_AA: u32 = 1u;
override HAS_BB: u32 = 1u;

struct Params {
    rows: u32,
    dim: u32,
    chunks: u32,
    chunk_len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

//! include elementwise

var<workgroup> tree: array<vec3<f32>, 256>;

// As shaders/lib/tree_sum.wgsl, for three sums at once: with SERIAL_TREE (CPU drivers, where a
// barrier switches between all 256 invocations) invocation 0 alone adds the pairs after one
// barrier, in the parallel tree's order and so with its bits.
override SERIAL_TREE: bool = false;

// Sums `value` over the workgroup; every invocation must call it, and the result is that of
// invocation 0.
fn tree_sum(lid: u32, value: vec3<f32>) -> vec3<f32> {
    tree[lid] = value;
    workgroupBarrier();
    if SERIAL_TREE {
        if lid == 0u {
            for (var s = 128u; s > 0u; s >>= 1u) {
                for (var i = 0u; i < s; i++) {
                    tree[i] += tree[i + s];
                }
            }
        }
        return tree[0];
    }
    for (var s = 128u; s > 0u; s >>= 1u) {
        if lid < s {
            tree[lid] += tree[lid + s];
        }
        workgroupBarrier();
    }
    return tree[0];
}

@group(0) @binding(1) var<storage, read> part_a: array<f32>;
@group(0) @binding(2) var<storage, read> part_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> part_dst_ab: array<f32>;
@group(0) @binding(4) var<storage, read_write> part_dst_aa: array<f32>;
@group(0) @binding(5) var<storage, read_write> part_dst_bb: array<f32>;

@compute @workgroup_size(256)
fn pair_stats_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = wid.x + wid.y * nwg.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if w >= p.rows * p.chunks {
        return;
    }
    let row = w / p.chunks;
    let start = (w % p.chunks) * p.chunk_len;
    let end = min(start + p.chunk_len, p.dim);
    let base = row * p.dim;
    var acc = vec3(0.0);
    for (var e = start + lid; e < end; e += 256u) {
        let x = part_a[base + e];
        let y = part_b[base + e];
        acc += vec3(x * y, x * x, y * y);
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        part_dst_ab[w] = sum.x;
        part_dst_aa[w] = sum.y;
        part_dst_bb[w] = sum.z;
    }
}

@group(0) @binding(1) var<storage, read> final_ab_part: array<f32>;
@group(0) @binding(2) var<storage, read> final_aa_part: array<f32>;
@group(0) @binding(3) var<storage, read> final_bb_part: array<f32>;
@group(0) @binding(4) var<storage, read_write> final_ab: array<f32>;
@group(0) @binding(5) var<storage, read_write> final_aa: array<f32>;
@group(0) @binding(6) var<storage, read_write> final_bb: array<f32>;

@compute @workgroup_size(256)
fn pair_stats_final(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows {
        return;
    }
    var acc = vec3(0.0);
    for (var c = lid; c < p.chunks; c += 256u) {
        let at = row * p.chunks + c;
        acc += vec3(final_ab_part[at], final_aa_part[at], final_bb_part[at]);
    }
    let sum = tree_sum(lid, acc);
    if lid == 0u {
        final_ab[row] = sum.x;
        final_aa[row] = sum.y;
        final_bb[row] = sum.z;
    }
}

@group(0) @binding(1) var<storage, read> bwd_a: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_b: array<f32>;
@group(0) @binding(3) var<storage, read> bwd_g_ab: array<f32>;
@group(0) @binding(4) var<storage, read> bwd_g_aa: array<f32>;
@group(0) @binding(5) var<storage, read> bwd_g_bb: array<f32>;
@group(0) @binding(6) var<storage, read_write> bwd_g_a: array<f32>;
@group(0) @binding(7) var<storage, read_write> bwd_g_b: array<f32>;

@compute @workgroup_size(256)
fn pair_stats_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = grid_row(wid, nwg);
    if row >= p.rows {
        return;
    }
    let g_ab = select(0.0, bwd_g_ab[row], HAS_AB != 0u);
    let g_aa = select(0.0, bwd_g_aa[row], HAS_AA != 0u);
    let g_bb = select(0.0, bwd_g_bb[row], HAS_BB != 0u);
    for (var k = 0u; k < SPAN; k++) {
        let d = row_element(wid, lid, k);
        if d < p.dim {
            let e = row * p.dim + d;
            let x = bwd_a[e];
            let y = bwd_b[e];
            bwd_g_a[e] = g_ab * y + 2.0 * g_aa * x;
            bwd_g_b[e] = g_ab * x + 2.0 * g_bb * y;
        }
    }
}

@group(0) @binding(1) var<storage, read> side_x: array<f32>;
@group(0) @binding(2) var<storage, read> side_y: array<f32>;
@group(0) @binding(3) var<storage, read> side_g_xy: array<f32>;
@group(0) @binding(4) var<storage, read> side_g_xx: array<f32>;
@group(0) @binding(5) var<storage, read_write> side_g_x: array<f32>;

@compute @workgroup_size(256)
fn pair_stats_backward_side(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = grid_row(wid, nwg);
    if row >= p.rows {
        return;
    }
    let g_xy = select(0.0, side_g_xy[row], HAS_AB != 0u);
    let g_xx = select(0.0, side_g_xx[row], HAS_AA != 0u);
    for (var k = 0u; k < SPAN; k++) {
        let d = row_element(wid, lid, k);
        if d < p.dim {
            let e = row * p.dim + d;
            side_g_x[e] = g_xy * side_y[e] + 2.0 * g_xx * side_x[e];
        }
    }
}
