/// A WGSL source file from `shaders/`, embedded in the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// WGSL pieces several shaders share, from `shaders/lib/`: a line `//! include <name>` in a
/// shader stands for the piece's text.
const LIBRARY: [(&str, &str); 5] = [
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
    (
        "activation",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/shaders/lib/activation.wgsl"
        )),
    ),
    (
        "elementwise",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/shaders/lib/elementwise.wgsl"
        )),
    ),
    (
        "frames",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/shaders/lib/frames.wgsl"
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

/// The parameter struct an entry point reads: the uniform at group 0, binding 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsLayout {
    /// Bytes, as WGSL lays the struct out.
    pub size: u32,
    /// Every byte belongs to a 4-byte scalar (alone, in a vector or in an array): WGSL adds no
    /// implicit padding, so a `#[repr(C)]` Rust struct of the same scalars in the same order
    /// lays out alike without hand padding.
    pub dense: bool,
}

/// The [`ParamsLayout`] of each entry point of `source` that reads a uniform at group 0,
/// binding 0, from naga's reflection of the expanded WGSL.
pub fn params_layouts(source: &str) -> Result<Vec<(String, ParamsLayout)>, String> {
    let source = expand_includes(source)?;
    let module = naga::front::wgsl::parse_str(&source).map_err(|e| e.emit_to_string(&source))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(&source))?;
    let uniforms: Vec<_> = module
        .global_variables
        .iter()
        .filter(|(_, v)| {
            v.space == naga::AddressSpace::Uniform
                && v.binding
                    .as_ref()
                    .is_some_and(|b| b.group == 0 && b.binding == 0)
        })
        .collect();
    let mut out = Vec::new();
    for (i, ep) in module.entry_points.iter().enumerate() {
        // One module may declare several binding-0 uniforms, one per entry point.
        let used = uniforms
            .iter()
            .find(|(h, _)| !info.get_entry_point(i)[*h].is_empty());
        if let Some((_, var)) = used {
            let size = module.types[var.ty].inner.size(module.to_ctx());
            let mut slots = Vec::new();
            scalar_slots(&module, var.ty, 0, &mut slots);
            slots.sort_unstable();
            let dense = slots.iter().copied().eq((0..size / 4).map(|k| 4 * k));
            out.push((ep.name.clone(), ParamsLayout { size, dense }));
        }
    }
    Ok(out)
}

/// Byte offsets of the 4-byte scalars of type `ty` placed at `base`; other scalars are left
/// out, so they show as holes.
fn scalar_slots(
    module: &naga::Module,
    ty: naga::Handle<naga::Type>,
    base: u32,
    out: &mut Vec<u32>,
) {
    match &module.types[ty].inner {
        naga::TypeInner::Scalar(s) if s.width == 4 => out.push(base),
        naga::TypeInner::Vector { size, scalar } if scalar.width == 4 => {
            out.extend((0..*size as u32).map(|k| base + 4 * k));
        }
        naga::TypeInner::Struct { members, .. } => {
            for m in members {
                scalar_slots(module, m.ty, base + m.offset, out);
            }
        }
        naga::TypeInner::Array {
            base: element,
            size: naga::ArraySize::Constant(n),
            stride,
        } => {
            for k in 0..n.get() {
                scalar_slots(module, *element, base + k * stride, out);
            }
        }
        _ => {}
    }
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

    #[test]
    fn parameter_layouts_come_from_the_entry_points_own_uniform() {
        let wgsl = "
            struct A { n: u32, scale: f32, shape: vec4<u32>, strides: array<vec4<u32>, 2> }
            struct B { n: u32, v: vec3<f32> }
            @group(0) @binding(0) var<uniform> a: A;
            @group(0) @binding(0) var<uniform> b: B;
            @group(0) @binding(1) var<storage, read_write> out: array<f32>;
            @compute @workgroup_size(1) fn first() { out[0] = a.scale * f32(a.n + a.shape.x + a.strides[1].w); }
            @compute @workgroup_size(1) fn second() { out[0] = b.v.x; }
            @compute @workgroup_size(1) fn neither() { out[0] = 0.0; }
        ";
        let layouts = params_layouts(wgsl).unwrap();
        // `A`: n, scale, then a vec4 at 16 after an 8-byte hole; `B`: a vec3 aligned to 16.
        assert_eq!(
            layouts,
            [
                (
                    "first".to_string(),
                    ParamsLayout {
                        size: 64,
                        dense: false
                    }
                ),
                (
                    "second".to_string(),
                    ParamsLayout {
                        size: 32,
                        dense: false
                    }
                ),
            ]
        );
        let dense = "
            struct P { n: u32, pad: u32, scale: vec2<f32>, shape: vec4<u32>, strides: array<vec4<u32>, 2> }
            @group(0) @binding(0) var<uniform> p: P;
            @group(0) @binding(1) var<storage, read_write> out: array<f32>;
            @compute @workgroup_size(1) fn main() { out[0] = p.scale.x + f32(p.n + p.shape.x + p.strides[1].w); }
        ";
        assert_eq!(
            params_layouts(dense).unwrap(),
            [(
                "main".to_string(),
                ParamsLayout {
                    size: 64,
                    dense: true
                }
            )]
        );
    }
}
