// reparameterize: InfoGCN's latent sample z = eps·std + mu with std = min(exp(ratio·logvar), cap);
// the clamp keeps NaN (as PyTorch's clamp does) because it selects the cap only where e > cap.
// The backward gives logvar's gradient g·eps·ratio·e where e < cap and 0 elsewhere, e being
// exp(ratio·logvar): PyTorch's clamp with a scalar bound passes no gradient at the bound itself.
// Entries (workgroup 256, one element per invocation, grid folded over x and y):
//   reparameterize_forward:  1 mu, 2 logvar, 3 eps, 4 z
//   reparameterize_backward: 1 logvar, 2 eps, 3 gz, 4 glogvar
// Binding 0 is the params block in both.

struct Params {
    n: u32,
    ratio: f32,
    cap: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@group(0) @binding(1) var<storage, read> fwd_mu: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_logvar: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_eps: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_z: array<f32>;

@compute @workgroup_size(256)
fn reparameterize_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i < p.n {
        let e = exp(p.ratio * fwd_logvar[i]);
        let sigma = select(e, p.cap, e > p.cap);
        fwd_z[i] = fwd_eps[i] * sigma + fwd_mu[i];
    }
}

@group(0) @binding(1) var<storage, read> bwd_logvar: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_eps: array<f32>;
@group(0) @binding(3) var<storage, read> bwd_gz: array<f32>;
@group(0) @binding(4) var<storage, read_write> bwd_glogvar: array<f32>;

@compute @workgroup_size(256)
fn reparameterize_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i < p.n {
        let e = exp(p.ratio * bwd_logvar[i]);
        // select, not a product with a 0/1 mask: an overflowed e = inf would give inf·0 = NaN.
        bwd_glogvar[i] = select(0.0, bwd_gz[i] * bwd_eps[i] * p.ratio * e, e < p.cap);
    }
}
