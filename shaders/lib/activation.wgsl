// Included by `//! include activation` (src/gpu/shader.rs): the activation a kernel applies to
// its output, chosen by ACT (0: none, 1: ReLU, 2: sigmoid), and the gradient through it from the
// output y. The arithmetic is relu.wgsl's and sigmoid.wgsl's, so a fused activation gives their
// bits.
override ACT: u32 = 0u;

// σ(x) through e^−|x|, so that no exponential overflows: e ∈ (0, 1], σ(x) = 1/(1 + e) for x ≥ 0
// and e/(1 + e) for x < 0.
fn sigmoid_of(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e, 1.0, x >= 0.0) / (1.0 + e);
}

fn activate(y: f32) -> f32 {
    switch ACT {
        case 1u: {
            return max(y, 0.0);
        }
        case 2u: {
            return sigmoid_of(y);
        }
        default: {
            return y;
        }
    }
}

// The gradient g of the activation's output y, taken back through it.
fn activation_grad(g: f32, y: f32) -> f32 {
    switch ACT {
        case 1u: {
            return select(0.0, g, y > 0.0);
        }
        case 2u: {
            return g * y * (1.0 - y);
        }
        default: {
            return g;
        }
    }
}
