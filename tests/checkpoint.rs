//! Checkpoints: a store survives a save/load round trip, and bad files are named in errors.

use std::collections::BTreeMap;

use sfhead::engine::{Executor, Graph, Store};
use sfhead::testing::gpu;
use sfhead::train::{CheckpointError, load, save};

fn store_with(names: &[(&str, &[usize], f32)]) -> Store {
    let gpu = gpu();
    let mut g = Graph::new();
    for &(name, shape, value) in names {
        g.parameter(name, shape, vec![value; shape.iter().product()]);
    }
    let mut store = Store::new();
    Executor::compile(&gpu, &g, &mut store, &[]).unwrap();
    store
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sfhead-ckpt-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn round_trip_restores_every_tensor_and_the_metadata() {
    let gpu = gpu();
    let source = store_with(&[("a.weight", &[3, 2, 1, 1], 1.5), ("a.bias", &[3], -2.0)]);
    let dir = temp_dir("round");
    let path = dir.join("model.safetensors");
    let meta = BTreeMap::from([("epoch".to_string(), "7".to_string())]);
    save(&gpu, &source, &path, &meta).unwrap();
    assert!(!dir.join("model.safetensors.tmp").exists());

    let target = store_with(&[
        ("a.weight", &[3, 2, 1, 1], 0.0),
        ("a.bias", &[3], 0.0),
        ("b", &[2], 0.0),
    ]);
    let loaded = load(&gpu, &target, &path).unwrap();
    assert_eq!(loaded.loaded, vec!["a.bias", "a.weight"]);
    assert_eq!(loaded.missing, vec!["b"]);
    assert!(loaded.unexpected.is_empty());
    assert_eq!(loaded.metadata.get("epoch").map(String::as_str), Some("7"));
    assert_eq!(target.read(&gpu, "a.weight").unwrap(), vec![1.5; 6]);
    assert_eq!(target.read(&gpu, "a.bias").unwrap(), vec![-2.0; 3]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_shape_mismatch_names_the_key() {
    let gpu = gpu();
    let dir = temp_dir("shape");
    let path = dir.join("m.safetensors");
    save(
        &gpu,
        &store_with(&[("w", &[4], 1.0)]),
        &path,
        &BTreeMap::new(),
    )
    .unwrap();
    let err = load(&gpu, &store_with(&[("w", &[5], 0.0)]), &path).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Key { key, .. } if key == "w"),
        "{err}"
    );
    assert!(err.to_string().contains("m.safetensors: key `w`"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_truncated_file_is_refused_with_its_path() {
    let gpu = gpu();
    let dir = temp_dir("trunc");
    let path = dir.join("t.safetensors");
    save(
        &gpu,
        &store_with(&[("w", &[64], 1.0)]),
        &path,
        &BTreeMap::new(),
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = load(&gpu, &store_with(&[("w", &[64], 0.0)]), &path).unwrap_err();
    assert!(matches!(err, CheckpointError::Format { .. }), "{err}");
    assert!(err.to_string().contains("t.safetensors"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn batch_norm_counters_are_pytorch_int64_scalars() {
    let gpu = gpu();
    let mut g = Graph::new();
    sfhead::ops::batch_norm::BatchNorm::new(&mut g, "bn", 2);
    let mut store = Store::new();
    Executor::compile(&gpu, &g, &mut store, &[]).unwrap();
    store.write(&gpu, "bn.num_batches_tracked", &[7.0]).unwrap();
    let dir = temp_dir("counter");
    let path = dir.join("bn.safetensors");
    save(&gpu, &store, &path, &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let counter = file.tensor("bn.num_batches_tracked").unwrap();
    assert_eq!(counter.dtype(), safetensors::Dtype::I64);
    assert!(counter.shape().is_empty());
    assert_eq!(counter.data(), 7i64.to_le_bytes());
    store.write(&gpu, "bn.num_batches_tracked", &[0.0]).unwrap();
    load(&gpu, &store, &path).unwrap();
    assert_eq!(
        store.read(&gpu, "bn.num_batches_tracked").unwrap(),
        vec![7.0]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A checkpoint from before parameters were packed keeps each packed parameter's momentum under
/// its own name: loading writes it into its part of the pack's momentum, and nothing is missing.
#[test]
fn momenta_of_packed_parameters_load_into_their_pack() {
    let gpu = gpu();
    let source = store_with(&[
        ("a", &[2], 1.0),
        ("b", &[3], 2.0),
        ("optim.momentum.a", &[2], 1.5),
        ("optim.momentum.b", &[3], -2.0),
    ]);
    let dir = temp_dir("packed");
    let path = dir.join("model.safetensors");
    save(&gpu, &source, &path, &BTreeMap::new()).unwrap();

    let mut g = Graph::new();
    let a = g.parameter("a", &[2], vec![0.0; 2]);
    let b = g.parameter("b", &[3], vec![0.0; 3]);
    g.pack("a+b", &[a, b]);
    g.state("optim.momentum.a+b", &[5], vec![0.0; 5]);
    let mut target = Store::new();
    Executor::compile(&gpu, &g, &mut target, &[]).unwrap();
    let loaded = load(&gpu, &target, &path).unwrap();
    assert!(loaded.missing.is_empty(), "{:?}", loaded.missing);
    assert!(loaded.unexpected.is_empty(), "{:?}", loaded.unexpected);
    assert_eq!(target.read(&gpu, "b").unwrap(), vec![2.0; 3]);
    assert_eq!(
        target.read(&gpu, "optim.momentum.a+b").unwrap(),
        vec![1.5, 1.5, -2.0, -2.0, -2.0]
    );
    std::fs::remove_dir_all(dir).unwrap();
}
