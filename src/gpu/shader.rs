/// A WGSL source file from `shaders/`, embedded in the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// WGSL pieces several shaders share, from `shaders/lib/`: a line `//! include <name>` in a
/// shader stands for the piece's text.
const LIBRARY: [(&str, &str); 2] = [
    (
        "tree_sum",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/shaders/lib/tree_sum.wgsl"
        )),
    ),
    (
        "direct_gemm",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/shaders/lib/direct_gemm.wgsl"
        )),
    ),
];

/// `source` with every `//! include <name>` line replaced by that piece of the library; an
/// unknown name is an error naming it.
pub fn expand_includes(source: &str) -> Result<String, String> {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        match line.trim().strip_prefix("//! include ") {
            Some(name) => {
                let (_, piece) = LIBRARY
                    .iter()
                    .find(|(n, _)| *n == name.trim())
                    .ok_or_else(|| format!("unknown WGSL include `{}`", name.trim()))?;
                out.push_str(piece);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// Embeds `shaders/<name>.wgsl` as a [`Shader`].
#[macro_export]
macro_rules! shader {
    ($name:literal) => {
        $crate::gpu::Shader {
            name: $name,
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/shaders/",
                $name,
                ".wgsl"
            )),
        }
    };
}

/// One compute pipeline: a shader entry point plus values for its `override` constants. Each
/// distinct kernel is compiled once per device and cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
}

impl Kernel {
    pub fn new(shader: Shader, entry: &'static str) -> Self {
        Self {
            shader,
            entry,
            constants: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<f64>) -> Self {
        self.constants.push((name, value.into()));
        self
    }

    /// Key of the pipeline cache; constants compare by bit pattern.
    pub(crate) fn cache_key(&self) -> (&'static str, &'static str, Vec<(&'static str, u64)>) {
        (
            self.shader.name,
            self.entry,
            self.constants
                .iter()
                .map(|&(n, v)| (n, v.to_bits()))
                .collect(),
        )
    }
}

/// The most workgroups WebGPU allows along one grid dimension.
pub const MAX_WORKGROUPS_PER_DIM: u32 = 65_535;

/// A grid of at least `workgroups` workgroups, folded into two dimensions when one is not enough.
/// Shaders linearise it as `id.x + id.y * num_workgroups.x` and ignore the overshoot.
pub fn grid_1d(workgroups: u32) -> [u32; 3] {
    if workgroups <= MAX_WORKGROUPS_PER_DIM {
        return [workgroups.max(1), 1, 1];
    }
    let rows = workgroups.div_ceil(MAX_WORKGROUPS_PER_DIM);
    [workgroups.div_ceil(rows), rows, 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_the_count_within_limits() {
        for n in [1, 255, 65_535, 65_536, 102_400, 4_000_000] {
            let [x, y, z] = grid_1d(n);
            assert!(x <= MAX_WORKGROUPS_PER_DIM && y <= MAX_WORKGROUPS_PER_DIM && z == 1);
            assert!(u64::from(x) * u64::from(y) >= u64::from(n));
            assert!(u64::from(x) * u64::from(y) < u64::from(n) + u64::from(y));
        }
    }
}
