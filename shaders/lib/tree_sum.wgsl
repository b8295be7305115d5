// Included by `//! include tree_sum` (src/gpu/shader.rs): a fixed-order workgroup sum of 256
// values, the second half of every deterministic reduction (no float atomics).
//
// SERIAL_TREE: invocation 0 alone does the pairwise sums after one barrier, in the same order
// (so with the same bits) as the parallel tree's eight barriers; for CPU drivers, where each
// barrier switches between all 256 invocations of the workgroup.
override SERIAL_TREE: bool = false;

var<workgroup> tree: array<f32, 256>;

// Sums the workgroup's values pairwise (tree[i] += tree[i + s] for s = 128, 64, …, 1); every
// invocation must call it, and the result is that of invocation 0.
fn tree_sum(lid: u32, value: f32) -> f32 {
    tree[lid] = value;
    return tree_total(lid);
}

// Invocations of a workgroup whose entry point plays the tree's 256 lanes in turn, 256 / LANES
// each (`for (var v = lid; v < 256u; v += TREE_LANES)`): on a CPU driver every barrier switches
// between all invocations of a workgroup, so fewer invocations make barriers cheap, while the
// sums keep the order (and the bits) of 256 invocations.
override TREE_LANES: u32 = 256u;

// The sum of tree[0, 256) as `tree_sum` adds it, after the caller has filled it; every
// invocation must call it, and the result is that of invocation 0.
fn tree_total(lid: u32) -> f32 {
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
        for (var i = lid; i < s; i += TREE_LANES) {
            tree[i] += tree[i + s];
        }
        workgroupBarrier();
    }
    return tree[0];
}
