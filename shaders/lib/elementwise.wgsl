// Included by `//! include elementwise` (src/gpu/shader.rs): the elements an invocation of a
// 256-wide elementwise kernel covers. Workgroup w takes the SPAN·256 elements from w·SPAN·256 on,
// in SPAN passes; in pass k invocation lid takes element (w·SPAN + k)·256 + lid, so neighbouring
// lanes stay on neighbouring elements. SPAN is the adapter's `Tuning::elementwise_span`: 1 on
// GPUs; on CPU drivers, where each workgroup costs a fixed setup, fewer and longer workgroups.
override SPAN: u32 = 1u;

fn span_element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, k: u32) -> u32 {
    return ((wid.x + wid.y * nwg.x) * SPAN + k) * 256u + lid;
}

// Kernels over the rows of a matrix (`ops::dispatch_rows`): grid x covers a row as above, and
// the row is wid.y + wid.z·nwg.y, so that no element divides by the row length.
fn grid_row(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y + wid.z * nwg.y;
}

fn row_element(wid: vec3<u32>, lid: u32, k: u32) -> u32 {
    return (wid.x * SPAN + k) * 256u + lid;
}
