//! PyTorch interop both ways on the fixtures of `tests/reference/interop.py`
//! (tests/fixtures/README.md, "Interop"):
//!
//! - PyTorch → sfhead: the state dict PyTorch's `safetensors.torch.save_file` wrote for a
//!   CTR-GCN (NW-UCLA) imports, and the imported checkpoint's eval-mode logits on two real clips
//!   equal PyTorch's within the float32 envelope the fixture records.
//! - sfhead → PyTorch: exported files hold exactly the keys, dtypes and shapes of the PyTorch
//!   `state_dict()` listings the script recorded, for plain CTR-GCN, a tap SF-Head checkpoint
//!   (heads dropped) and a trained in-line one (heads kept), and the values round-trip.
//! - Bad input is refused with errors naming the file and the key.
//!
//! With `SFHEAD_INTEROP_KEEP=DIR` the exported files and the engine's logits are also written to
//! DIR, for `tests/reference/interop.py --check-export` (docs/interop.md).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::parity::{envelope_bound, relative_l2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sfhead::data::{DataError, Place};
use sfhead::engine::{Data, Executor, Graph, Store};
use sfhead::gpu::Gpu;
use sfhead::interop::{InteropError, export, import};
use sfhead::model::ctrgcn::CtrGcn;
use sfhead::model::infogcn::Z_PRIOR;
use sfhead::model::network::Network;
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::sgd::SgdConfig;
use sfhead::testing::gpu;
use sfhead::train::{OutputTensor, TrainConfig, TrainStep, load, save, write_tensors};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn state_dict_fixture() -> PathBuf {
    fixture("interop_ucla_state_dict.safetensors")
}

/// NW-UCLA CTR-GCN with SF-Head `off`, `tap` or `inline` on every block.
fn ucla(sfhead: &str) -> TrainConfig {
    TrainConfig::preset("ctrgcn-ucla")
        .unwrap()
        .with_overrides(&[format!("sfhead={sfhead}")])
        .unwrap()
}

/// One tensor of a safetensors file as stored.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Stored {
    fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.dtype, Dtype::F32);
        bytemuck::pod_collect_to_vec(&self.bytes)
    }
}

/// Every tensor of a safetensors file by key, and its metadata.
fn read(path: &Path) -> (BTreeMap<String, Stored>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let stored = Stored {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (key, stored)
        })
        .collect();
    (tensors, header.metadata().clone().unwrap_or_default())
}

fn write(path: &Path, tensors: &BTreeMap<String, Stored>) {
    let views = tensors.iter().map(|(key, t)| {
        let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap();
        (key.clone(), view)
    });
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A section of `interop_ucla_state_dicts.txt`: (key, dtype, shape) in PyTorch order.
fn listing(section: &str) -> Vec<(String, Dtype, Vec<usize>)> {
    let path = fixture("interop_ucla_state_dicts.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut entries = Vec::new();
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            inside = header.split(']').next() == Some(section);
            continue;
        }
        if !inside {
            continue;
        }
        let [key, dtype, shape] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("{}: line {}: `{line}`", path.display(), i + 1);
        };
        let dtype = match dtype {
            "F32" => Dtype::F32,
            "I64" => Dtype::I64,
            other => panic!("{}: line {}: dtype {other}", path.display(), i + 1),
        };
        let shape = if shape == "scalar" {
            Vec::new()
        } else {
            shape.split('x').map(|d| d.parse().unwrap()).collect()
        };
        entries.push((key.to_string(), dtype, shape));
    }
    assert!(!entries.is_empty(), "no section `{section}`");
    entries
}

/// An exported file holds exactly the listing's keys, dtypes and shapes.
fn assert_matches_listing(tensors: &BTreeMap<String, Stored>, section: &str) {
    let want = listing(section);
    for (key, dtype, shape) in &want {
        let t = tensors
            .get(key)
            .unwrap_or_else(|| panic!("`{key}` of [{section}] is not exported"));
        assert_eq!((&t.dtype, &t.shape), (dtype, shape), "`{key}`");
    }
    let extra: Vec<&String> = tensors
        .keys()
        .filter(|k| !want.iter().any(|(w, _, _)| w == *k))
        .collect();
    assert!(extra.is_empty(), "not in [{section}]: {extra:?}");
}

/// The fixture's clips `x` (2, 3, 16, 20, 1), PyTorch's logits and their float32 envelope.
struct Clips {
    x: Vec<f32>,
    shape: Vec<usize>,
    logits: Vec<f32>,
    envelope: f32,
}

fn clips() -> Clips {
    let (t, _) = read(&fixture("interop_ucla_eval.safetensors"));
    Clips {
        x: t["x"].f32s(),
        shape: t["x"].shape.clone(),
        logits: t["logits"].f32s(),
        envelope: t["f32_envelope.logits"].f32s()[0],
    }
}

/// Eval-mode logits of `config`'s model on `x`, with the weights of `store`.
fn eval_logits(
    gpu: &Arc<Gpu>,
    store: &mut Store,
    config: &TrainConfig,
    x: &[f32],
    shape: &[usize],
) -> Vec<f32> {
    let mut g = Graph::new();
    let input = g.input("x", shape);
    let logits = CtrGcn::new(&mut g, config.model().unwrap(), config.seed).forward(
        &mut g,
        input,
        Mode::Eval,
    );
    let exe = Executor::compile(gpu, &g, store, &[logits]).unwrap();
    exe.write(input, x).unwrap();
    exe.run();
    exe.read(logits).unwrap()
}

/// Under `SFHEAD_INTEROP_KEEP`, keeps an exported file and the engine's logits beside it.
fn keep(exported: &Path, name: &str, x: &Clips, logits: Option<Vec<f32>>) {
    let Some(dir) = std::env::var_os("SFHEAD_INTEROP_KEEP") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(exported, dir.join(format!("{name}.safetensors"))).unwrap();
    if let Some(logits) = logits {
        let rows = x.shape[0];
        let tensors = [
            OutputTensor::f32("x", x.shape.clone(), x.x.clone()),
            OutputTensor::f32("logits", vec![rows, logits.len() / rows], logits),
        ];
        let path = dir.join(format!("{name}.logits.safetensors"));
        write_tensors(&path, &tensors, &BTreeMap::new()).unwrap();
    }
}

#[test]
fn a_pytorch_state_dict_imports_and_gives_pytorch_logits() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("imported.safetensors");
    let config = ucla("off");
    let report = import(&state_dict_fixture(), &config, &checkpoint).unwrap();
    assert_eq!(report.tensors, 822);
    assert!(!report.stripped_prefix && report.narrowed == 0 && report.initialised.is_empty());

    // A training checkpoint's metadata, at epoch 0, from which the model is rebuilt.
    let (_, metadata) = read(&checkpoint);
    assert_eq!(metadata["epoch"], "0");
    assert_eq!(metadata["model"], "ctrgcn");
    assert_eq!(metadata["dataset"], "ucla");
    assert_eq!(metadata["sfhead"], "off");
    assert_eq!(TrainConfig::from_toml(&metadata["config"]).unwrap(), config);

    let clips = clips();
    let gpu = gpu();
    let mut store = Store::new();
    // Compiling the graph creates the store's tensors with their initial values; the load
    // must overwrite every one.
    let before = eval_logits(&gpu, &mut store, &config, &clips.x, &clips.shape);
    let loaded = load(&gpu, &store, &checkpoint).unwrap();
    assert!(loaded.missing.is_empty() && loaded.unexpected.is_empty());
    assert_eq!(loaded.loaded.len(), 822);
    let logits = eval_logits(&gpu, &mut store, &config, &clips.x, &clips.shape);

    let error = relative_l2(&logits, &clips.logits);
    let bound = envelope_bound(clips.envelope);
    eprintln!(
        "imported logits: relative error {error:.2e}, bound {bound:.2e} (PyTorch float32 envelope {:.2e})",
        clips.envelope
    );
    assert!(
        error <= bound,
        "logits off by {error:.3e}, bound {bound:.3e}"
    );
    assert!(
        relative_l2(&before, &clips.logits) > 0.5,
        "the initial weights already give PyTorch's logits"
    );

    let exported = dir.path().join("exported.safetensors");
    export(&checkpoint, &exported).unwrap();
    keep(&exported, "ctrgcn", &clips, Some(logits));
}

#[test]
fn exporting_an_imported_state_dict_gives_back_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("imported.safetensors");
    let exported = dir.path().join("exported.safetensors");
    import(&state_dict_fixture(), &ucla("off"), &checkpoint).unwrap();
    let report = export(&checkpoint, &exported).unwrap();
    assert_eq!(report.tensors, 822);
    assert_eq!(
        (
            report.dropped_optimiser,
            report.dropped_sf_heads,
            report.kept_sf_heads
        ),
        (0, 0, 0)
    );

    let (original, _) = read(&state_dict_fixture());
    let (back, metadata) = read(&exported);
    assert_matches_listing(&back, "ctrgcn");
    assert_eq!(original.len(), back.len());
    for (key, t) in &original {
        assert_eq!(Some(t), back.get(key), "`{key}` did not round-trip");
    }
    assert_eq!(
        (metadata["dataset"].as_str(), metadata["sfhead"].as_str()),
        ("ucla", "off")
    );
}

#[test]
fn dataparallel_prefixes_and_float64_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (original, _) = read(&state_dict_fixture());
    let widened: BTreeMap<String, Stored> = original
        .iter()
        .map(|(key, t)| {
            let t = if t.dtype == Dtype::F32 {
                let values: Vec<f64> = t.f32s().into_iter().map(f64::from).collect();
                Stored {
                    dtype: Dtype::F64,
                    shape: t.shape.clone(),
                    bytes: bytemuck::cast_slice(&values).to_vec(),
                }
            } else {
                t.clone()
            };
            (format!("module.{key}"), t)
        })
        .collect();
    let variant = dir.path().join("dataparallel_f64.safetensors");
    write(&variant, &widened);

    let plain = dir.path().join("plain.safetensors");
    let from_variant = dir.path().join("variant.safetensors");
    import(&state_dict_fixture(), &ucla("off"), &plain).unwrap();
    let report = import(&variant, &ucla("off"), &from_variant).unwrap();
    assert!(report.stripped_prefix);
    let floats = original.values().filter(|t| t.dtype == Dtype::F32).count();
    assert_eq!(report.narrowed, floats);
    assert!(report.to_string().contains("module."), "{report}");
    assert_eq!(read(&plain).0, read(&from_variant).0);
}

#[test]
fn a_trained_inline_checkpoint_exports_with_its_heads() {
    let config = ucla("inline");
    let clips = clips();
    let gpu = gpu();
    let mut store = Store::new();
    let model = config.model().unwrap();
    let sgd = SgdConfig {
        momentum: config.momentum,
        weight_decay: config.weight_decay,
        nesterov: config.nesterov,
    };
    let step = TrainStep::new(&gpu, &mut store, &clips.shape, sgd, |g, x, _labels| {
        CtrGcn::new(g, model.clone(), config.seed).forward_with_losses(g, x, Mode::Train)
    })
    .unwrap();
    step.step(&clips.x, &[0, 9], 0.1).unwrap();
    let logits = eval_logits(&gpu, &mut store, &config, &clips.x, &clips.shape);

    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("trained.safetensors");
    let metadata = BTreeMap::from([
        ("config".to_string(), config.to_toml()),
        ("epoch".to_string(), "1".to_string()),
    ]);
    save(&gpu, &store, &checkpoint, &metadata).unwrap();
    let exported = dir.path().join("exported.safetensors");
    let report = export(&checkpoint, &exported).unwrap();
    let optimiser = store.names().filter(|n| n.starts_with("optim.")).count();
    assert!(optimiser > 0);
    assert_eq!(report.dropped_optimiser, optimiser);
    assert_eq!((report.kept_sf_heads, report.dropped_sf_heads), (300, 0));
    assert!(report.to_string().contains("in-line"), "{report}");

    let (tensors, metadata) = read(&exported);
    assert_matches_listing(&tensors, "ctrgcn-sfhead-inline");
    assert_eq!(metadata["sfhead"], "inline");
    assert_eq!(metadata["sfhead_blocks"], "1,2,3,4,5,6,7,8,9,10");
    assert_eq!(metadata["sfhead_groups"], "8");
    // The exported values are the trained ones, which the step moved away from the start.
    let mut g = Graph::new();
    CtrGcn::new(&mut g, model, config.seed);
    for (key, t) in &tensors {
        let stored = store.read(&gpu, key).unwrap();
        if t.dtype == Dtype::I64 {
            assert_eq!(
                bytemuck::pod_read_unaligned::<i64>(&t.bytes),
                stored[0] as i64,
                "`{key}`"
            );
        } else {
            assert_eq!(t.f32s(), stored, "`{key}`");
        }
    }
    for key in [
        "fc.weight",
        "sf_heads.0.w",
        "sf_heads.9.cv.conv.conv.weight",
    ] {
        let id = g.find(key).unwrap();
        let init = match &g.tensor(id).init {
            Some(Data::F32(v)) => v.clone(),
            other => panic!("`{key}`: {other:?}"),
        };
        assert_ne!(
            init,
            store.read(&gpu, key).unwrap(),
            "`{key}` did not train"
        );
    }

    // Back into sfhead: the same tensors, heads included.
    let reimported = dir.path().join("reimported.safetensors");
    let report = import(&exported, &config, &reimported).unwrap();
    assert_eq!(report.tensors, 1122);
    assert!(report.initialised.is_empty());
    let (back, _) = read(&reimported);
    let (saved, _) = read(&checkpoint);
    for (key, t) in &back {
        assert_eq!(Some(t), saved.get(key), "`{key}`");
    }
    keep(&exported, "ctrgcn_sfhead_inline", &clips, Some(logits));
}

/// A checkpoint of `config`'s initial model as training writes it, plus one optimiser tensor.
fn initial_checkpoint(config: &TrainConfig, path: &Path) {
    let mut g = Graph::new();
    Network::new(&mut g, config.model().unwrap(), config.seed);
    let mut tensors: Vec<OutputTensor> = g
        .tensors()
        .filter(|(_, t)| t.role.is_stored())
        .map(|(_, t)| match &t.init {
            _ if t.name.ends_with("num_batches_tracked") => OutputTensor::counter(&t.name, 3),
            Some(Data::F32(v)) => OutputTensor::f32(&t.name, t.shape.clone(), v.clone()),
            other => panic!("`{}`: {other:?}", t.name),
        })
        .collect();
    tensors.push(OutputTensor::f32(
        "optim.momentum.fc.weight",
        vec![10, 256],
        vec![0.5; 2560],
    ));
    let metadata = BTreeMap::from([("config".to_string(), config.to_toml())]);
    write_tensors(path, &tensors, &metadata).unwrap();
}

#[test]
fn a_tap_checkpoint_exports_as_plain_ctrgcn_and_imports_back() {
    let config = ucla("tap");
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("tap.safetensors");
    initial_checkpoint(&config, &checkpoint);
    let exported = dir.path().join("exported.safetensors");
    let report = export(&checkpoint, &exported).unwrap();
    assert_eq!(
        (
            report.tensors,
            report.dropped_sf_heads,
            report.dropped_optimiser
        ),
        (822, 300, 1)
    );
    assert!(
        report.to_string().contains("the plain backbone"),
        "{report}"
    );
    let (tensors, metadata) = read(&exported);
    assert_matches_listing(&tensors, "ctrgcn");
    assert_eq!(metadata["sfhead"], "off");
    let (saved, _) = read(&checkpoint);
    for (key, t) in &tensors {
        assert_eq!(Some(t), saved.get(key), "`{key}`");
    }

    // Imported into the tap configuration, the heads start from its initialisation again.
    let reimported = dir.path().join("reimported.safetensors");
    let report = import(&exported, &config, &reimported).unwrap();
    assert_eq!(report.initialised.len(), 300);
    assert!(
        report
            .initialised
            .iter()
            .all(|k| k.starts_with("sf_heads."))
    );
    let (back, metadata) = read(&reimported);
    assert_eq!(metadata["sfhead"], "tap");
    assert_eq!(back.len(), 1122);
    for (key, t) in &back {
        let want = saved.get(key).unwrap();
        if key.starts_with("sf_heads.") && key.ends_with("num_batches_tracked") {
            assert_eq!(bytemuck::pod_read_unaligned::<i64>(&t.bytes), 0, "`{key}`");
        } else {
            assert_eq!(t, want, "`{key}`");
        }
    }
    keep(&exported, "ctrgcn_sfhead_tap", &clips(), None);
}

#[test]
fn infogcn_exports_without_its_class_prior_and_imports_rebuilding_it() {
    let config = TrainConfig::preset("infogcn-ucla").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("infogcn.safetensors");
    initial_checkpoint(&config, &checkpoint);
    let exported = dir.path().join("exported.safetensors");
    let report = export(&checkpoint, &exported).unwrap();
    assert!(
        report.to_string().starts_with("InfoGCN for ucla"),
        "{report}"
    );
    let (tensors, _) = read(&exported);
    let (saved, _) = read(&checkpoint);
    assert!(!tensors.contains_key(Z_PRIOR));
    // Everything else of the checkpoint but the optimiser tensor.
    assert_eq!(tensors.len(), saved.len() - 2);
    let reimported = dir.path().join("reimported.safetensors");
    let report = import(&exported, &config, &reimported).unwrap();
    assert_eq!(report.rebuilt, [Z_PRIOR]);
    assert!(report.initialised.is_empty());
    let (back, _) = read(&reimported);
    assert_eq!(
        back.get(Z_PRIOR),
        saved.get(Z_PRIOR),
        "the seed's prior again"
    );
    for (key, t) in &tensors {
        assert_eq!(Some(t), back.get(key), "`{key}`");
    }
}

#[test]
fn hdgcn_exports_the_official_second_keys_and_imports_checking_them() {
    let config = TrainConfig::preset("hdgcn-ucla").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("hdgcn.safetensors");
    initial_checkpoint(&config, &checkpoint);
    let exported = dir.path().join("exported.safetensors");
    export(&checkpoint, &exported).unwrap();
    let (mut tensors, _) = read(&exported);
    let (saved, _) = read(&checkpoint);
    // conv_d.* repeats the last level's conv.5.* of every block's graph unit, as the official
    // state dict does.
    let aliases: Vec<&String> = tensors.keys().filter(|k| k.contains(".conv_d.")).collect();
    let per_unit = saved
        .keys()
        .filter(|k| k.starts_with("l2.gcn1.conv.5."))
        .count();
    assert_eq!(aliases.len(), 10 * per_unit);
    assert_eq!(
        tensors["l4.gcn1.conv_d.3.conv.0.weight"],
        saved["l4.gcn1.conv.5.3.conv.0.weight"]
    );
    assert_eq!(tensors.len(), saved.len() - 1 + aliases.len());
    let reimported = dir.path().join("reimported.safetensors");
    import(&exported, &config, &reimported).unwrap();
    let (back, _) = read(&reimported);
    assert_eq!(back.len(), saved.len() - 1);
    assert!(back.keys().all(|k| !k.contains(".conv_d.")));

    // A second key that disagrees with its original is refused, naming it.
    let key = "l4.gcn1.conv_d.3.conv.0.weight".to_string();
    let mut changed = tensors[&key].clone();
    changed.bytes[0] ^= 1;
    tensors.insert(key.clone(), changed);
    let tampered = dir.path().join("tampered.safetensors");
    write(&tampered, &tensors);
    let e = input_error(import(
        &tampered,
        &config,
        &dir.path().join("no.safetensors"),
    ));
    assert_eq!(e.place, Place::Key(key));
    assert!(e.message.contains("l4.gcn1.conv.5.3.conv.0.weight"), "{e}");
}

/// The input error of a failed import or export.
fn input_error(result: Result<impl std::fmt::Debug, InteropError>) -> DataError {
    match result {
        Err(InteropError::Input(e)) => e,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn bad_state_dicts_are_refused_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (original, _) = read(&state_dict_fixture());
    let out = dir.path().join("out.safetensors");
    let refuse = |name: &str, change: &dyn Fn(&mut BTreeMap<String, Stored>)| {
        let mut tensors = original.clone();
        change(&mut tensors);
        let path = dir.path().join(name);
        write(&path, &tensors);
        let e = input_error(import(&path, &ucla("off"), &out));
        assert_eq!(e.path, path);
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(!out.exists(), "{name}: an output was written");
        e
    };
    let key = |e: &DataError| match &e.place {
        Place::Key(k) => k.clone(),
        other => panic!("{e}: place {other:?}"),
    };

    let e = refuse("missing.safetensors", &|t| {
        t.remove("l3.tcn1.branches.0.1.running_var");
    });
    assert_eq!(key(&e), "l3.tcn1.branches.0.1.running_var");
    assert!(e.message.contains("missing"), "{e}");

    let e = refuse("shape.safetensors", &|t| {
        t.get_mut("fc.weight").unwrap().shape = vec![10, 128, 2];
    });
    assert_eq!(key(&e), "fc.weight");
    assert!(
        e.message.contains("[10, 128, 2]") && e.message.contains("[10, 256]"),
        "{e}"
    );

    let e = refuse("extra.safetensors", &|t| {
        let pa = t["l1.gcn1.PA"].clone();
        t.insert("l1.gcn1.A".into(), pa);
    });
    assert_eq!(key(&e), "l1.gcn1.A");
    assert!(e.message.contains("not in the model"), "{e}");

    let e = refuse("heads.safetensors", &|t| {
        let w = t["fc.bias"].clone();
        t.insert("sf_heads.0.w".into(), w);
    });
    assert_eq!(key(&e), "sf_heads.0.w");
    assert!(e.message.contains("sfhead"), "{e}");

    let e = refuse("half.safetensors", &|t| {
        let bias = t.get_mut("fc.bias").unwrap();
        bias.dtype = Dtype::F16;
        bias.bytes.truncate(bias.bytes.len() / 2);
    });
    assert_eq!(key(&e), "fc.bias");
    assert!(e.message.contains("F16"), "{e}");

    let e = refuse("nan.safetensors", &|t| {
        t.get_mut("l2.gcn1.alpha").unwrap().bytes = f32::NAN.to_le_bytes().to_vec();
    });
    assert_eq!(key(&e), "l2.gcn1.alpha");
    assert!(e.message.contains("value 0"), "{e}");

    let e = refuse("counter.safetensors", &|t| {
        let counter = t.get_mut("data_bn.num_batches_tracked").unwrap();
        counter.dtype = Dtype::F32;
        counter.bytes = 1.0f32.to_le_bytes().to_vec();
    });
    assert_eq!(key(&e), "data_bn.num_batches_tracked");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a tensor file").unwrap();
    let e = input_error(import(&garbage, &ucla("off"), &out));
    assert_eq!((e.path, e.place), (garbage, Place::File));

    // The wrong dataset: the shapes say so.
    let e = input_error(import(
        &state_dict_fixture(),
        &TrainConfig::preset("ctrgcn-ntu60")
            .unwrap()
            .with_overrides(&["data=unused.sfpk".into()])
            .unwrap(),
        &out,
    ));
    assert_eq!(key(&e), "data_bn.weight");
    assert!(
        e.message.contains("[60]") && e.message.contains("[150]"),
        "{e}"
    );
}

#[test]
fn export_needs_an_sfhead_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    // A plain state dict has no training configuration.
    let e = input_error(export(&state_dict_fixture(), &out));
    assert_eq!(e.place, Place::Key("__metadata__.config".into()));

    let checkpoint = dir.path().join("incomplete.safetensors");
    initial_checkpoint(&ucla("off"), &checkpoint);
    let (mut tensors, _) = read(&checkpoint);
    tensors.remove("l10.tcn1.branches.3.1.running_mean");
    let config = ucla("off").to_toml();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, t)| {
            let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap();
            (k.clone(), view)
        })
        .collect();
    let metadata = HashMap::from([("config".to_string(), config)]);
    safetensors::serialize_to_file(views, Some(metadata), &checkpoint).unwrap();
    let e = input_error(export(&checkpoint, &out));
    assert_eq!(
        e.place,
        Place::Key("l10.tcn1.branches.3.1.running_mean".into())
    );
    assert!(!out.exists());
}

#[test]
fn listings_agree_with_the_engine_model() {
    // The fixture's listings are PyTorch's; the engine declares the same tensors in the same
    // order (PyTorch's scalar counters being one value here).
    for (section, sfhead) in [("ctrgcn", "off"), ("ctrgcn-sfhead-inline", "inline")] {
        let config = ucla(sfhead);
        let mut g = Graph::new();
        CtrGcn::new(&mut g, config.model().unwrap(), config.seed);
        let declared: Vec<(String, Vec<usize>)> = g
            .tensors()
            .filter(|(_, t)| t.role.is_stored())
            .map(|(_, t)| (t.name.clone(), t.shape.clone()))
            .collect();
        let want: Vec<(String, Vec<usize>)> = listing(section)
            .into_iter()
            .map(|(k, _, s)| (k, if s.is_empty() { vec![1] } else { s }))
            .collect();
        assert_eq!(declared, want, "[{section}]");
    }
}
