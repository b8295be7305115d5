// Dropout in training from N(0, 1) noise: an element is kept where noise ≥ threshold (the host's
// Φ⁻¹(p), so with probability 1 − p) and scaled by 1/(1 − p), as `nn.Dropout(p)`. The map is
// linear in its first operand, so one entry serves the forward (a = x) and the backward (a = g).
// out = a · (scale or 0): a product rather than a select, so dropped elements are ±0 with the
// sign of a and non-finite values propagate, as PyTorch's `input * mask * scale`.
// Entry (workgroup 256, one element per invocation, grid folded over x and y):
//   dropout_apply: 1 a, 2 noise, 3 out
// Binding 0 is the params block.

struct Params {
    n: u32,
    threshold: f32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> noise: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn dropout_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if i < p.n {
        out[i] = a[i] * select(0.0, p.scale, noise[i] >= p.threshold);
    }
}
