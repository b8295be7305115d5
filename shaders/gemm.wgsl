// Tiled GEMM: C[z] = Σ_kb A[z, kb] · B[z, kb] (+ bias), the archetype behind every 1×1 conv and
// Linear layer, forward and backward.
//
// A is m×k, B is k×n, C is m×n, all row-major with leading dimensions lda, ldb, ldc. TRANS_A means
// A is stored k×m (A[i, l] at l·lda + i), TRANS_B that B is stored n×k (B[l, j] at j·ldb + l):
// the three layouts NN, NT and TN differ only in these flags. Strides a_batch / b_batch / c_batch
// step over independent products (grid z); a_kb / b_kb step over `kb` products that are summed
// into the same C (the batch axis of a weight gradient).
//
// Split-K: the iterations (kb, k-tile) of one product are cut into `splits` contiguous ranges.
// With splits > 1 there must be a single product; workgroup z = split writes its partial C at
// z·c_batch, and a reduction over splits finishes the sum (deterministically, no atomics).
//
// Entries (grid x, y over the tiles of C, z over products·splits):
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
    a_batch: u32,
    b_batch: u32,
    c_batch: u32,
    iters_per_split: u32,
    a_kb: u32,
    b_kb: u32,
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
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tid = lid.y * 16u + lid.x;
    let col0 = wid.x * TILE;
    let row0 = wid.y * TILE;
    let product = wid.z / p.splits;
    let split = wid.z % p.splits;
    let k_tiles = (p.k + KT - 1u) / KT;
    let first = split * p.iters_per_split;
    let last = min(first + p.iters_per_split, p.kb * k_tiles);

    var acc: array<array<f32, 4>, 4>;
    for (var it = first; it < last; it++) {
        let kbi = it / k_tiles;
        let k0 = (it % k_tiles) * KT;
        let a_base = product * p.a_batch + kbi * p.a_kb;
        let b_base = product * p.b_batch + kbi * p.b_kb;
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

    store_block(wid.z, row0 + lid.y * 4u, col0 + lid.x * 4u, acc);
}

// Where the kbi-th summed product of product `product` starts in A and in B.
fn a_origin(product: u32, kbi: u32) -> u32 {
    return product * p.a_batch + kbi * p.a_kb;
}

fn b_origin(product: u32, kbi: u32) -> u32 {
    return product * p.b_batch + kbi * p.b_kb;
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

fn store_c(z: u32, i: u32, j: u32, v: f32) {
    var out = v;
    if BIAS == 1u {
        out += bias[i];
    } else if BIAS == 2u {
        out += bias[j];
    }
    c[z * p.c_batch + i * p.ldc + j] = out;
}

//! include direct_gemm

@compute @workgroup_size(LANES)
fn gemm_direct(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    direct_block(wid, lid);
}
