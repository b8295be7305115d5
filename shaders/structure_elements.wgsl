// pytorch-topological's StructureElementLayer on 0-dimensional diagrams, whose bars are all born
// at 0: for sample n with deaths d[n, i] (N × B) and element k with centre c[k] and sharpness
// s[k] (K × 2 each),
//   out[n, k] = Σ_i e[n, k, i],  e = exp(−q),  q = s0²·c0² + s1²·(c1 − d[n, i])².
// The dimension column the reference carries is 0 and adds 0 to q.
//
// Entries (workgroup 256, one (n, k) per invocation, grid folded over x and y; the bars are
// summed serially in order):
//   se_forward:  out[n, k]. Bindings: 1 deaths, 2 centres, 3 sharpness, 4 out (N × K).
//   se_partials: g[n, k]·∂out[n, k]/∂θ[k, j] for j = 0, 1 into partial[n, k, j], θ the
//                centres (SHARPNESS false) or the sharpness (SHARPNESS true); their sum over n
//                (reduce.wgsl) is θ's gradient. With u = (c0, c1 − d):
//                ∂q/∂c_j = 2·s_j²·u_j and ∂q/∂s_j = 2·s_j·u_j², and ∂e = −e·∂q.
//                Bindings: 1 deaths, 2 centres, 3 sharpness, 4 g (N × K), 5 partial (N × K × 2).
// Binding 0 is the params block in both.

override SHARPNESS: bool = false;

struct Params {
    samples: u32,
    bars: u32,
    elements: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> deaths: array<f32>;
@group(0) @binding(2) var<storage, read> centres: array<f32>;
@group(0) @binding(3) var<storage, read> sharpness: array<f32>;

@group(0) @binding(4) var<storage, read_write> fwd_out: array<f32>;

@compute @workgroup_size(256)
fn se_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid);
    if at >= p.samples * p.elements {
        return;
    }
    let n = at / p.elements;
    let k = at % p.elements;
    let c = vec2(centres[2u * k], centres[2u * k + 1u]);
    let s = vec2(sharpness[2u * k], sharpness[2u * k + 1u]);
    let s2 = s * s;
    var sum = 0.0;
    for (var i = 0u; i < p.bars; i++) {
        let u = vec2(c.x, c.y - deaths[n * p.bars + i]);
        sum += exp(-(s2.x * u.x * u.x + s2.y * u.y * u.y));
    }
    fwd_out[at] = sum;
}

@group(0) @binding(4) var<storage, read> bwd_g: array<f32>;
@group(0) @binding(5) var<storage, read_write> bwd_partial: array<f32>;

@compute @workgroup_size(256)
fn se_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = flat_index(wid, nwg, lid);
    if at >= p.samples * p.elements {
        return;
    }
    let n = at / p.elements;
    let k = at % p.elements;
    let c = vec2(centres[2u * k], centres[2u * k + 1u]);
    let s = vec2(sharpness[2u * k], sharpness[2u * k + 1u]);
    let s2 = s * s;
    // Σ_i e·u and Σ_i e·u², per component.
    var eu = vec2(0.0);
    var euu = vec2(0.0);
    for (var i = 0u; i < p.bars; i++) {
        let u = vec2(c.x, c.y - deaths[n * p.bars + i]);
        let e = exp(-(s2.x * u.x * u.x + s2.y * u.y * u.y));
        eu += e * u;
        euu += e * u * u;
    }
    let scale = -2.0 * bwd_g[at];
    let partial = select(scale * s2 * eu, scale * s * euu, SHARPNESS);
    bwd_partial[2u * at] = partial.x;
    bwd_partial[2u * at + 1u] = partial.y;
}
