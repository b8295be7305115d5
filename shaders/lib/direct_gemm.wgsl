// Included by `//! include direct_gemm` (src/gpu/shader.rs): the block store and the direct-load
// entry body shared by the GEMM (gemm.wgsl) and the temporal convolution (temporal_conv.wgsl),
// which differ only in how they read operand values and where C lives.
//
// The including shader provides: `p` with fields m, n, k, kb, splits, iters_per_split; constants
// TILE (64) and KT (16); `fn a_origin(product: u32, kbi: u32) -> u32` and `b_origin`, which
// locate the kbi-th summed product of product `product` in each operand (an offset, or a
// sample), once per k-tile; `fn load_a(origin: u32, i: u32, l: u32) -> f32` and
// `fn load_b(origin: u32, l: u32, j: u32) -> f32`, A[i, l] and B[l, j] there;
// `fn store_c(z: u32, i: u32, j: u32, v: f32)`, which writes C[i, j] of product-or-split z with
// its bias.
//
// Split-K: the iterations (kb, k-tile) of one product are cut into `splits` contiguous ranges;
// workgroup z = product·splits + split.

// Writes the 4×4 block at (i0, j0) of product-or-split z, what lies inside C.
fn store_block(z: u32, i0: u32, j0: u32, acc: array<array<f32, 4>, 4>) {
    for (var qi = 0u; qi < 4u; qi++) {
        for (var qj = 0u; qj < 4u; qj++) {
            if i0 + qi < p.m && j0 + qj < p.n {
                store_c(z, i0 + qi, j0 + qj, acc[qi][qj]);
            }
        }
    }
}

// One invocation's 4×4 block of C, its operands read straight from storage: no workgroup memory
// and no barrier, for CPU drivers. Products are added with k ascending, as the tiled kernels do,
// so both give the same bits; an invocation whose block lies outside C returns at once.
fn direct_block(wid: vec3<u32>, lid: vec3<u32>) {
    let i0 = wid.y * TILE + lid.y * 4u;
    let j0 = wid.x * TILE + lid.x * 4u;
    if i0 >= p.m || j0 >= p.n {
        return;
    }
    let product = wid.z / p.splits;
    let split = wid.z % p.splits;
    let k_tiles = (p.k + KT - 1u) / KT;
    let first = split * p.iters_per_split;
    let last = min(first + p.iters_per_split, p.kb * k_tiles);
    // Rows and columns past C's edge read its last one (in bounds) and are not stored.
    var rows: array<u32, 4>;
    var cols: array<u32, 4>;
    for (var q = 0u; q < 4u; q++) {
        rows[q] = min(i0 + q, p.m - 1u);
        cols[q] = min(j0 + q, p.n - 1u);
    }

    var acc: array<array<f32, 4>, 4>;
    for (var it = first; it < last; it++) {
        let kbi = it / k_tiles;
        let k0 = (it % k_tiles) * KT;
        let k1 = min(k0 + KT, p.k);
        let oa = a_origin(product, kbi);
        let ob = b_origin(product, kbi);
        for (var l = k0; l < k1; l++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var q = 0u; q < 4u; q++) {
                av[q] = load_a(oa, rows[q], l);
                bv[q] = load_b(ob, l, cols[q]);
            }
            for (var qi = 0u; qi < 4u; qi++) {
                for (var qj = 0u; qj < 4u; qj++) {
                    acc[qi][qj] = fma(av[qi], bv[qj], acc[qi][qj]);
                }
            }
        }
    }
    store_block(wid.z, i0, j0, acc);
}
