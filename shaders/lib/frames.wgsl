// Included by `//! include frames` (src/gpu/shader.rs): which elements of a written (B, C, F, V)
// tensor an invocation of the temporal kernels covers. One, or with ROWS (`Tuning::row_invocations`,
// CPU drivers) a whole frame row of V joints, its series and frame found once: integer divisions
// run lane by lane there. As (row, first joint, joints), row = series·F + frame.
override ROWS: bool = false;

fn coverage(e: u32) -> vec3<u32> {
    if ROWS {
        return vec3(e, 0u, p.joints);
    }
    return vec3(e / p.joints, e % p.joints, 1u);
}
