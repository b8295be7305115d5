// Tiled GEMM: C[z] = Σ_kb A[z, kb] · B[z, kb] (+ bias), the archetype behind every 1×1 conv and
// Linear layer, forward and backward.
//
// A is m×k, B is k×n, C is m×n, all row-major with leading dimensions lda, ldb, ldc. TRANS_A means
// A is stored k×m (A[i, l] at l·lda + i), TRANS_B that B is stored n×k (B[l, j] at j·ldb + l):
// the three layouts NN, NT and TN differ only in these flags. Independent products (grid z) nest
// up to three deep, z = (z2·n1 + z1)·n0 + z0, and each operand steps over them with a stride per
// level (a_s0, a_s1, a_s2; b_…; c_…), so that a grouped convolution or a product summed over
// branches reads its operands in place; the bias steps with z0 (bias_s0). a_kb / b_kb step over
// `kb` products that are summed into the same C (the batch axis of a weight gradient, or the
// branches of a graph aggregation).
//
// Split-K: the iterations (kb, k-tile) of each product are cut into `splits` contiguous ranges.
// Workgroup z = product·splits + split writes its partial C `split_stride` · split past where
// the product's C would be (in scratch, the products' Cs contiguous), and a reduction over
// splits finishes the sum (deterministically, no atomics).
//
// Entries (grid x, y over the tiles of C, z over products·splits, folded into y past 65,535):
//   gemm:        workgroup 16×16, a 64×64 tile of C per workgroup, 4×4 per invocation, k-tiles
//                of 16 staged in workgroup memory, for GPUs;
//   gemm_direct: workgroup LANES, 16 × 8 outputs per invocation, operands read straight from
//                storage, no workgroup memory and no barrier, for CPU drivers (the body is
//                shaders/lib/direct_gemm.wgsl, shared with the temporal convolution).
// Both add the products of each output in the same order (k ascending, padding adds exact zeros
// in `gemm`), so they give the same bits.
// Bindings: 0 params, 1 a, 2 b, 3 bias (length m if BIAS = 1, n if BIAS = 2; unused if 0), 4 c.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// 0: no bias, 1: bias[i] per row, 2: bias[j] per column.
override BIAS: u32 = 0u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    kb: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    splits: u32,
    iters_per_split: u32,
    a_kb: u32,
    b_kb: u32,
    n0: u32,
    n1: u32,
    a_s0: u32,
    a_s1: u32,
    a_s2: u32,
    b_s0: u32,
    b_s1: u32,
    b_s2: u32,
    c_s0: u32,
    c_s1: u32,
    c_s2: u32,
    bias_s0: u32,
    fold: u32,
    y_tiles: u32,
    z_count: u32,
    split_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const KT: u32 = 16u;

// Tiles staged as [kk][i] and [kk][j], so the inner loop reads rows of both.
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn gemm(
    @builtin(workgroup_id) grid_id: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let wid = unfold(grid_id);
    if wid.z >= p.z_count {
        return;
    }
    let tid = lid.y * 16u + lid.x;
    let col0 = wid.x * TILE;
    let row0 = wid.y * TILE;
    let product = wid.z / p.splits;
    let split = wid.z % p.splits;
    let k_tiles = (p.k + KT - 1u) / KT;
    let first = split * p.iters_per_split;
    let last = min(first + p.iters_per_split, p.kb * k_tiles);
    let o = origins(product);

    var acc: array<array<f32, 4>, 4>;
    for (var it = first; it < last; it++) {
        let kbi = it / k_tiles;
        let k0 = (it % k_tiles) * KT;
        let a_base = o.x + kbi * o.y;
        let b_base = o.z + kbi * o.w;
        for (var r = 0u; r < 4u; r++) {
            let idx = tid + r * 256u;
            // Consecutive invocations walk the contiguous axis of each operand.
            var i: u32;
            var kk: u32;
            if TRANS_A {
                kk = idx / TILE;
                i = idx % TILE;
            } else {
                i = idx / KT;
                kk = idx % KT;
            }
            let gi = row0 + i;
            let gk = k0 + kk;
            var v = 0.0;
            if gi < p.m && gk < p.k {
                if TRANS_A {
                    v = a[a_base + gk * p.lda + gi];
                } else {
                    v = a[a_base + gi * p.lda + gk];
                }
            }
            a_tile[kk * TILE + i] = v;

            var j: u32;
            var kb_: u32;
            if TRANS_B {
                j = idx / KT;
                kb_ = idx % KT;
            } else {
                kb_ = idx / TILE;
                j = idx % TILE;
            }
            let gj = col0 + j;
            let gkb = k0 + kb_;
            var w = 0.0;
            if gj < p.n && gkb < p.k {
                if TRANS_B {
                    w = b[b_base + gj * p.ldb + gkb];
                } else {
                    w = b[b_base + gkb * p.ldb + gj];
                }
            }
            b_tile[kb_ * TILE + j] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var q = 0u; q < 4u; q++) {
                av[q] = a_tile[kk * TILE + lid.y * 4u + q];
                bv[q] = b_tile[kk * TILE + lid.x * 4u + q];
            }
            for (var qi = 0u; qi < 4u; qi++) {
                for (var qj = 0u; qj < 4u; qj++) {
                    acc[qi][qj] = fma(av[qi], bv[qj], acc[qi][qj]);
                }
            }
        }
        workgroupBarrier();
    }

    store_block(c_origin(wid.z), row0 + lid.y * 4u, col0 + lid.x * 4u, acc);
}

// More than 65,535 products (times splits) fold into grid y: `fold` of them per grid z, each
// `y_tiles` rows of workgroups. The workgroup's (x, y, z) as if grid z were unbounded.
fn unfold(grid_id: vec3<u32>) -> vec3<u32> {
    return vec3(grid_id.x, grid_id.y % p.y_tiles, grid_id.z * p.fold + grid_id.y / p.y_tiles);
}

// The offset of product z in an operand with strides s0, s1, s2 over its nesting levels.
fn nested(z: u32, s0: u32, s1: u32, s2: u32) -> u32 {
    let outer = z / p.n0;
    return (z % p.n0) * s0 + (outer % p.n1) * s1 + (outer / p.n1) * s2;
}

// Where product `product` starts in A and in B, and their steps between summed products.
fn origins(product: u32) -> vec4<u32> {
    let a0 = nested(product, p.a_s0, p.a_s1, p.a_s2);
    return vec4(a0, p.a_kb, nested(product, p.b_s0, p.b_s1, p.b_s2), p.b_kb);
}

// A[i, l] and B[l, j] of the product starting at `base`.
fn load_a(base: u32, i: u32, l: u32) -> f32 {
    if TRANS_A {
        return a[base + l * p.lda + i];
    }
    return a[base + i * p.lda + l];
}

fn load_b(base: u32, l: u32, j: u32) -> f32 {
    if TRANS_B {
        return b[base + j * p.ldb + l];
    }
    return b[base + l * p.ldb + j];
}

// C of product z / splits, its partial z % splits `split_stride` further on when split.
fn c_origin(z: u32) -> vec2<u32> {
    let product = z / p.splits;
    let c0 = nested(product, p.c_s0, p.c_s1, p.c_s2) + (z % p.splits) * p.split_stride;
    return vec2(c0, (product % p.n0) * p.bias_s0);
}

fn store_c(origin: vec2<u32>, i: u32, j: u32, v: f32) {
    var out = v;
    if BIAS == 1u {
        out += bias[origin.y + i];
    } else if BIAS == 2u {
        out += bias[origin.y + j];
    }
    c[origin.x + i * p.ldc + j] = out;
}

//! include direct_gemm

@compute @workgroup_size(LANES)
fn gemm_direct(
    @builtin(workgroup_id) grid_id: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let wid = unfold(grid_id);
    if wid.z < p.z_count {
        direct_block(wid, lid);
    }
}
