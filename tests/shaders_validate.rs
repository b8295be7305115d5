//! Every WGSL file in `shaders/`, with its includes from `shaders/lib/` expanded, parses and
//! validates with naga, independent of any adapter. The library's pieces are validated where
//! they are included: some use what the including shader declares.

use std::path::Path;

fn validate(path: &Path) -> Result<(), String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let source = sfhead::gpu::expand_includes(&text).map_err(|e| format!("{name}: {e}"))?;
    let module = naga::front::wgsl::parse_str(&source)
        .map_err(|e| e.emit_to_string_with_path(&source, &name))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string_with_path(&source, &name))?;
    Ok(())
}

#[test]
fn every_shader_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("shaders/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no shaders found in {}", dir.display());
    let failures: Vec<String> = paths.iter().filter_map(|p| validate(p).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
