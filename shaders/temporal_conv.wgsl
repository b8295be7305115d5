// Temporal convolution k×1 over (B, C, T, V) activations, as implicit GEMMs: the operands are read
// straight from the tensors with the convolution's index maps, never materialised (no im2col).
//
//   y[b, co, t', v] = bias[co] + Σ_{ci, j} w[co, ci, j]·x[b, ci, t'·s − pad + j·d, v]
//
// with zero padding outside [0, T). w is PyTorch's (C_out, C_in, k, 1). MODE picks the product:
//   0 forward:      C_b = W (C_out × C_in·k) · X̃_b (C_in·k × T_out·V), one product per sample b.
//   1 grad input:   gX_b = W̃ (C_in × C_out·k) · gỸ_b (C_out·k × T·V), one product per sample, where
//                   gỸ_b[(co, j), (t, v)] = gy[b, co, (t + pad − j·d)/s, v] when that division is
//                   exact and in range, else 0: the scatter-transpose of the forward as a gather.
//   2 grad weight:  gW (C_out × C_in·k) = Σ_b gY_b (C_out × T_out·V) · X̃_bᵀ (T_out·V × C_in·k), the
//                   samples summed as `kb` products; split along (kb, k-tile) like the GEMM, each
//                   split writing a partial C that a tree reduction sums (deterministic, no atomics).
//
// Entries (grid x, y over the tiles of C, z over products·splits; C of product or split z is
// contiguous at z·m·n):
//   tconv:        workgroup 16×16, a 64×64 tile of C per workgroup, 4×4 per invocation, k-tiles
//                 of 16 staged in workgroup memory so that each loaded operand value is used 64
//                 times, for GPUs;
//   tconv_direct: operands read through the index maps straight from storage, no workgroup
//                 memory or barrier, for CPU drivers (shaders/lib/direct_gemm.wgsl, workgroup
//                 LANES); the same order of sums, so the same bits.
// Bindings: 0 params, 1 a (w in modes 0 and 1, gy in mode 2), 2 b (x in modes 0 and 2, gy in
// mode 1), 3 bias (read only when BIAS), 4 c.

override MODE: u32 = 0u;
override BIAS: bool = false;

struct Params {
    m: u32,
    n: u32,
    // Depth of one product: C_in·k, C_out·k or T_out·V by mode.
    k: u32,
    kb: u32,
    splits: u32,
    iters_per_split: u32,
    cin: u32,
    cout: u32,
    t_in: u32,
    t_out: u32,
    joints: u32,
    ksize: u32,
    dilation: u32,
    stride: u32,
    pad: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// x[sample, ci, t, v] from binding b, zero in the padding.
fn x_at(sample: u32, ci: u32, t: i32, v: u32) -> f32 {
    if t < 0 || t >= i32(p.t_in) {
        return 0.0;
    }
    return b[((sample * p.cin + ci) * p.t_in + u32(t)) * p.joints + v];
}

// Input frame read by output frame t_out through tap j.
fn tap(t_out: u32, j: u32) -> i32 {
    return i32(t_out * p.stride + j * p.dilation) - i32(p.pad);
}

// The kbi-th summed product of product `product` reads sample product + kbi in both operands:
// mode 2 sums the samples as kb products; modes 0 and 1 have one product per sample and kb = 1.
fn origins(product: u32) -> vec4<u32> {
    return vec4(product, 1u, product, 1u);
}

// A[i, l] of `sample`; the caller keeps i < m and l < k.
fn load_a(sample: u32, i: u32, l: u32) -> f32 {
    switch MODE {
        case 1u: {
            // W̃[ci, (co, j)] = w[co, ci, j].
            let co = l / p.ksize;
            return a[(co * p.cin + i) * p.ksize + l % p.ksize];
        }
        case 2u: {
            return a[(sample * p.cout + i) * (p.t_out * p.joints) + l];
        }
        default: {
            return a[i * p.k + l];
        }
    }
}

// B[l, col] of `sample`; the caller keeps l < k and col < n.
fn load_b(sample: u32, l: u32, col: u32) -> f32 {
    switch MODE {
        case 1u: {
            let co = l / p.ksize;
            let j = l % p.ksize;
            let t = col / p.joints;
            let v = col % p.joints;
            let num = i32(t + p.pad) - i32(j * p.dilation);
            if num < 0 {
                return 0.0;
            }
            // Unit stride (every TCN but the strided blocks') needs no division.
            var to = u32(num);
            if p.stride != 1u {
                if to % p.stride != 0u {
                    return 0.0;
                }
                to /= p.stride;
            }
            if to >= p.t_out {
                return 0.0;
            }
            return b[((sample * p.cout + co) * p.t_out + to) * p.joints + v];
        }
        case 2u: {
            let to = l / p.joints;
            let v = l % p.joints;
            return x_at(sample, col / p.ksize, tap(to, col % p.ksize), v);
        }
        default: {
            let to = col / p.joints;
            let v = col % p.joints;
            return x_at(sample, l / p.ksize, tap(to, l % p.ksize), v);
        }
    }
}

@compute @workgroup_size(16, 16)
fn tconv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tid = lid.y * 16u + lid.x;
    let col0 = wid.x * TILE;
    let row0 = wid.y * TILE;
    // Modes 0 and 1 have one product per sample and kb = 1; mode 2 has one product and kb = B.
    let product = wid.z / p.splits;
    let split = wid.z % p.splits;
    let k_tiles = (p.k + KT - 1u) / KT;
    let first = split * p.iters_per_split;
    let last = min(first + p.iters_per_split, p.kb * k_tiles);

    var acc: array<array<f32, 4>, 4>;
    for (var it = first; it < last; it++) {
        let sample = product + it / k_tiles;
        let k0 = (it % k_tiles) * KT;
        for (var r = 0u; r < 4u; r++) {
            let idx = tid + r * 256u;
            // A: consecutive invocations walk l (contiguous in w and gy).
            let i = idx / KT;
            let kk = idx % KT;
            var av = 0.0;
            if row0 + i < p.m && k0 + kk < p.k {
                av = load_a(sample, row0 + i, k0 + kk);
            }
            a_tile[kk * TILE + i] = av;

            // B: consecutive invocations walk the frame-major (t, v) axis, which is the column in
            // modes 0 and 1 and the depth in mode 2.
            var j: u32;
            var kb_: u32;
            if MODE == 2u {
                j = idx / KT;
                kb_ = idx % KT;
            } else {
                kb_ = idx / TILE;
                j = idx % TILE;
            }
            var bv = 0.0;
            if col0 + j < p.n && k0 + kb_ < p.k {
                bv = load_b(sample, k0 + kb_, col0 + j);
            }
            b_tile[kb_ * TILE + j] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var q = 0u; q < 4u; q++) {
                ar[q] = a_tile[kk * TILE + lid.y * 4u + q];
                br[q] = b_tile[kk * TILE + lid.x * 4u + q];
            }
            for (var qi = 0u; qi < 4u; qi++) {
                for (var qj = 0u; qj < 4u; qj++) {
                    acc[qi][qj] = fma(ar[qi], br[qj], acc[qi][qj]);
                }
            }
        }
        workgroupBarrier();
    }

    store_block(c_origin(wid.z), row0 + lid.y * 4u, col0 + lid.x * 4u, acc);
}

fn c_origin(z: u32) -> vec2<u32> {
    return vec2(z * p.m * p.n, 0u);
}

fn store_c(origin: vec2<u32>, i: u32, j: u32, v: f32) {
    var out = v;
    if BIAS {
        out += bias[i];
    }
    c[origin.x + i * p.n + j] = out;
}

//! include direct_gemm

@compute @workgroup_size(LANES)
fn tconv_direct(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    direct_block(wid, lid);
}
