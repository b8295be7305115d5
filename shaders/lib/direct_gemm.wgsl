// Included by `//! include direct_gemm` (src/gpu/shader.rs): the tiled kernels' block store and
// the direct-load entry body shared by the GEMM (gemm.wgsl) and the temporal convolution
// (temporal_conv.wgsl), which differ only in how they read operand values and where C lives.
//
// The including shader provides: `p` with fields m, n, k, kb, splits, iters_per_split; constants
// TILE (64) and KT (16); `fn origins(product: u32) -> vec4<u32>`, once per workgroup: where
// product `product` starts in A and the step to its next summed product (x, y), the same for B
// (z, w), in units that load_a and load_b read (an offset, or a sample), so that the kbi-th
// summed product is at x + kbi·y; `fn load_a(origin: u32, i: u32, l: u32) -> f32` and
// `fn load_b(origin: u32, l: u32, j: u32) -> f32`, A[i, l] and B[l, j] there;
// `fn c_origin(z: u32) -> vec2<u32>`, where C and its bias start for product-or-split z, once
// per workgroup; `fn store_c(origin: vec2<u32>, i: u32, j: u32, v: f32)`, which writes C[i, j]
// there with its bias.
//
// Split-K: the iterations (kb, k-tile) of one product are cut into `splits` contiguous ranges;
// workgroup z = product·splits + split.

// Writes the 4×4 block at (i0, j0) of the C at `origin`, what lies inside C.
fn store_block(origin: vec2<u32>, i0: u32, j0: u32, acc: array<array<f32, 4>, 4>) {
    for (var qi = 0u; qi < 4u; qi++) {
        for (var qj = 0u; qj < 4u; qj++) {
            if i0 + qi < p.m && j0 + qj < p.n {
                store_c(origin, i0 + qi, j0 + qj, acc[qi][qj]);
            }
        }
    }
}

// The direct-load body, for CPU drivers: no workgroup memory and no barrier. An invocation holds
// 16 × 8 outputs of C: 16 along the workgroup's uniform axis, the same for all its invocations,
// and 8 along its lane axis, LANES apart, so that a SIMD group's lanes touch neighbouring outputs.
// Values along the uniform axis are then the same in every lane: a CPU driver loads each once and
// broadcasts it, and only the lane axis's operand is gathered per lane. LANES_ON_ROWS picks the
// axes: false puts the lanes along C's columns (rows uniform), true along its rows, whichever
// wastes less of the tile on C's edges (src/ops/gemm.rs, `DirectShape`). The 128 accumulators
// are written out by hand because a CPU driver keeps named values in registers where it may
// keep an indexed array in memory (4× slower, measured). Products are added with k ascending,
// as the tiled kernels do, so every variant gives the same bits.
override LANES_ON_ROWS: bool = false;
// Invocations per workgroup: 8, 16, 32 or 64, the lane axis then covering 8·LANES outputs.
override LANES: u32 = 64u;

// The operand value along the uniform axis (index u) and along the lane axis (index v).
fn uniform_value(oa: u32, ob: u32, u: u32, l: u32) -> f32 {
    if LANES_ON_ROWS {
        return load_b(ob, l, u);
    }
    return load_a(oa, u, l);
}

fn lane_value(oa: u32, ob: u32, v: u32, l: u32) -> f32 {
    if LANES_ON_ROWS {
        return load_a(oa, v, l);
    }
    return load_b(ob, l, v);
}

// Stores the 16 outputs at uniform indices u0.. and lane index v of the C at `origin`, what lies
// inside C.
fn store_lane(origin: vec2<u32>, u0: u32, v: u32, acc: array<vec4<f32>, 4>) {
    var u_len = p.m;
    var v_len = p.n;
    if LANES_ON_ROWS {
        u_len = p.n;
        v_len = p.m;
    }
    if v >= v_len {
        return;
    }
    for (var q = 0u; q < 16u; q++) {
        if u0 + q < u_len {
            if LANES_ON_ROWS {
                store_c(origin, v, u0 + q, acc[q / 4u][q % 4u]);
            } else {
                store_c(origin, u0 + q, v, acc[q / 4u][q % 4u]);
            }
        }
    }
}

fn direct_block(wid: vec3<u32>, lid: vec3<u32>) {
    var u_last = p.m - 1u;
    var v_last = p.n - 1u;
    if LANES_ON_ROWS {
        u_last = p.n - 1u;
        v_last = p.m - 1u;
    }
    let u_base = wid.y * 16u;
    let v_base = wid.x * 8u * LANES + lid.x;
    let product = wid.z / p.splits;
    let split = wid.z % p.splits;
    let k_tiles = (p.k + KT - 1u) / KT;
    let first = split * p.iters_per_split;
    let last = min(first + p.iters_per_split, p.kb * k_tiles);
    let o = origins(product);
    // Indices past C's edge read its last row or column (in bounds) and are not stored.
    let u0 = min(u_base + 0u, u_last);
    let u1 = min(u_base + 1u, u_last);
    let u2 = min(u_base + 2u, u_last);
    let u3 = min(u_base + 3u, u_last);
    let u4 = min(u_base + 4u, u_last);
    let u5 = min(u_base + 5u, u_last);
    let u6 = min(u_base + 6u, u_last);
    let u7 = min(u_base + 7u, u_last);
    let u8 = min(u_base + 8u, u_last);
    let u9 = min(u_base + 9u, u_last);
    let u10 = min(u_base + 10u, u_last);
    let u11 = min(u_base + 11u, u_last);
    let u12 = min(u_base + 12u, u_last);
    let u13 = min(u_base + 13u, u_last);
    let u14 = min(u_base + 14u, u_last);
    let u15 = min(u_base + 15u, u_last);
    let v0 = min(v_base + 0u * LANES, v_last);
    let v1 = min(v_base + 1u * LANES, v_last);
    let v2 = min(v_base + 2u * LANES, v_last);
    let v3 = min(v_base + 3u * LANES, v_last);
    let v4 = min(v_base + 4u * LANES, v_last);
    let v5 = min(v_base + 5u * LANES, v_last);
    let v6 = min(v_base + 6u * LANES, v_last);
    let v7 = min(v_base + 7u * LANES, v_last);
    var acc00 = vec4<f32>();
    var acc01 = vec4<f32>();
    var acc02 = vec4<f32>();
    var acc03 = vec4<f32>();
    var acc10 = vec4<f32>();
    var acc11 = vec4<f32>();
    var acc12 = vec4<f32>();
    var acc13 = vec4<f32>();
    var acc20 = vec4<f32>();
    var acc21 = vec4<f32>();
    var acc22 = vec4<f32>();
    var acc23 = vec4<f32>();
    var acc30 = vec4<f32>();
    var acc31 = vec4<f32>();
    var acc32 = vec4<f32>();
    var acc33 = vec4<f32>();
    var acc40 = vec4<f32>();
    var acc41 = vec4<f32>();
    var acc42 = vec4<f32>();
    var acc43 = vec4<f32>();
    var acc50 = vec4<f32>();
    var acc51 = vec4<f32>();
    var acc52 = vec4<f32>();
    var acc53 = vec4<f32>();
    var acc60 = vec4<f32>();
    var acc61 = vec4<f32>();
    var acc62 = vec4<f32>();
    var acc63 = vec4<f32>();
    var acc70 = vec4<f32>();
    var acc71 = vec4<f32>();
    var acc72 = vec4<f32>();
    var acc73 = vec4<f32>();
    for (var it = first; it < last; it++) {
        let kbi = it / k_tiles;
        let k0 = (it % k_tiles) * KT;
        let k1 = min(k0 + KT, p.k);
        let oa = o.x + kbi * o.y;
        let ob = o.z + kbi * o.w;
        for (var l = k0; l < k1; l++) {
            let w0 = vec4<f32>(
                uniform_value(oa, ob, u0, l), uniform_value(oa, ob, u1, l),
                uniform_value(oa, ob, u2, l), uniform_value(oa, ob, u3, l),
            );
            let w1 = vec4<f32>(
                uniform_value(oa, ob, u4, l), uniform_value(oa, ob, u5, l),
                uniform_value(oa, ob, u6, l), uniform_value(oa, ob, u7, l),
            );
            let w2 = vec4<f32>(
                uniform_value(oa, ob, u8, l), uniform_value(oa, ob, u9, l),
                uniform_value(oa, ob, u10, l), uniform_value(oa, ob, u11, l),
            );
            let w3 = vec4<f32>(
                uniform_value(oa, ob, u12, l), uniform_value(oa, ob, u13, l),
                uniform_value(oa, ob, u14, l), uniform_value(oa, ob, u15, l),
            );
            let x0 = vec4<f32>(lane_value(oa, ob, v0, l));
            let x1 = vec4<f32>(lane_value(oa, ob, v1, l));
            let x2 = vec4<f32>(lane_value(oa, ob, v2, l));
            let x3 = vec4<f32>(lane_value(oa, ob, v3, l));
            let x4 = vec4<f32>(lane_value(oa, ob, v4, l));
            let x5 = vec4<f32>(lane_value(oa, ob, v5, l));
            let x6 = vec4<f32>(lane_value(oa, ob, v6, l));
            let x7 = vec4<f32>(lane_value(oa, ob, v7, l));
            acc00 = fma(w0, x0, acc00); acc01 = fma(w1, x0, acc01);
            acc02 = fma(w2, x0, acc02); acc03 = fma(w3, x0, acc03);
            acc10 = fma(w0, x1, acc10); acc11 = fma(w1, x1, acc11);
            acc12 = fma(w2, x1, acc12); acc13 = fma(w3, x1, acc13);
            acc20 = fma(w0, x2, acc20); acc21 = fma(w1, x2, acc21);
            acc22 = fma(w2, x2, acc22); acc23 = fma(w3, x2, acc23);
            acc30 = fma(w0, x3, acc30); acc31 = fma(w1, x3, acc31);
            acc32 = fma(w2, x3, acc32); acc33 = fma(w3, x3, acc33);
            acc40 = fma(w0, x4, acc40); acc41 = fma(w1, x4, acc41);
            acc42 = fma(w2, x4, acc42); acc43 = fma(w3, x4, acc43);
            acc50 = fma(w0, x5, acc50); acc51 = fma(w1, x5, acc51);
            acc52 = fma(w2, x5, acc52); acc53 = fma(w3, x5, acc53);
            acc60 = fma(w0, x6, acc60); acc61 = fma(w1, x6, acc61);
            acc62 = fma(w2, x6, acc62); acc63 = fma(w3, x6, acc63);
            acc70 = fma(w0, x7, acc70); acc71 = fma(w1, x7, acc71);
            acc72 = fma(w2, x7, acc72); acc73 = fma(w3, x7, acc73);
        }
    }
    let origin = c_origin(wid.z);
    store_lane(origin, u_base, v_base + 0u * LANES, array(acc00, acc01, acc02, acc03));
    store_lane(origin, u_base, v_base + 1u * LANES, array(acc10, acc11, acc12, acc13));
    store_lane(origin, u_base, v_base + 2u * LANES, array(acc20, acc21, acc22, acc23));
    store_lane(origin, u_base, v_base + 3u * LANES, array(acc30, acc31, acc32, acc33));
    store_lane(origin, u_base, v_base + 4u * LANES, array(acc40, acc41, acc42, acc43));
    store_lane(origin, u_base, v_base + 5u * LANES, array(acc50, acc51, acc52, acc53));
    store_lane(origin, u_base, v_base + 6u * LANES, array(acc60, acc61, acc62, acc63));
    store_lane(origin, u_base, v_base + 7u * LANES, array(acc70, acc71, acc72, acc73));
}
