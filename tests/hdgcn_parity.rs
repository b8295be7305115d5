//! HD-GCN (`model/HDGCN.py`, `Backbone::Hdgcn`) on the engine against the PyTorch reference
//! (tests/reference/hdgcn.py): one training step on four real NTU clips at 16 frames gives the
//! same logits, loss, BN running statistics and parameter gradients, each within
//! `ENVELOPE_MULTIPLE` × PyTorch's own float32 envelope plus the floor (tests/common/parity.rs);
//! the engine's initial `PA` is the reference's hierarchical graph bit for bit.
//!
//! As for ST-GCN, the fixture (tests/fixtures/README.md, `hdgcn_ntu60.safetensors`) holds no
//! weights: both sides compute them by the formula of tests/reference/make_stgcn_fixture.py with
//! the rows the later fixture scripts add (tests/common/formula_fixture.rs). Its 2,747 state
//! entries would take a header of 800 KB as one tensor per record, so the records are packed
//! in state-dict order into a few tensors, which this file decodes.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use common::ctrgcn_fixture::{Named, Reader, Tensor};
use common::formula_fixture::{
    Fixture, FormulaCheck, HDGCN_FORMAT, Reference, SKETCH_LEN, assert_declares_state_dict,
    check_training_step_with, formula, is_counter, parameter_count, rewritten,
};
use common::parity::envelope_bound;
use common::state_dict_listing::{self, Entry};
use safetensors::{Dtype, SafeTensors};
use sfhead::data::{DataError, Place};
use sfhead::engine::{Data, Graph};
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset};
use sfhead::model::network::Network;

/// The tensors of the packed layout (tests/fixtures/README.md).
const KEYS: [&str; 17] = [
    "x",
    "y",
    "logits",
    "loss",
    "graph",
    "f32_envelope.logits",
    "f32_envelope.loss",
    "formula.noise",
    "formula.value",
    "checksums",
    "after.running",
    "f32_envelope.after.running",
    "after.num_batches_tracked",
    "grads",
    "f32_envelope.grads",
    "sketches",
    "sketch_envelopes",
];

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hdgcn_ntu60.safetensors")
}

/// A decoded HD-GCN fixture: the step, the (L, 3, V, V) graph `PA` starts from officially, and
/// the float32 envelope of each BN running statistic after the step.
struct HdFixture {
    step: Fixture,
    graph: Tensor,
    running_envelope: HashMap<String, f32>,
}

/// An F64 tensor of shape `shape`, row-major.
fn f64s(
    path: &Path,
    tensors: &SafeTensors<'_>,
    key: &str,
    shape: &[usize],
) -> Result<Vec<f64>, DataError> {
    let fault = |message: String| DataError::new(path, Place::Key(key.into()), message);
    let view = tensors.tensor(key).map_err(|_| fault("missing".into()))?;
    if view.dtype() != Dtype::F64 {
        return Err(fault(format!("expected F64, found {:?}", view.dtype())));
    }
    if view.shape() != shape {
        return Err(fault(format!(
            "expected shape {shape:?}, found {:?}",
            view.shape()
        )));
    }
    Ok(view
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

/// Splits `values` into consecutive runs of `lengths`, which must add up to its length.
fn split<T: Clone>(
    values: &[T],
    lengths: &[usize],
    fault: impl Fn(String) -> DataError,
) -> Result<Vec<Vec<T>>, DataError> {
    let need: usize = lengths.iter().sum();
    if values.len() != need {
        let m = format!(
            "holds {} values, the state dict's entries need {need}",
            values.len()
        );
        return Err(fault(m));
    }
    let mut rest = values;
    Ok(lengths
        .iter()
        .map(|&n| {
            let (part, tail) = rest.split_at(n);
            rest = tail;
            part.to_vec()
        })
        .collect())
}

fn decode(path: &Path, bytes: &[u8]) -> Result<HdFixture, DataError> {
    let file = Reader::new(path, bytes)?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| DataError::new(path, Place::File, format!("not safetensors: {e}")))?;
    let metadata = file.metadata()?;
    let meta_fault = |key: &str, message: String| {
        DataError::new(path, Place::Key(format!("__metadata__.{key}")), message)
    };
    let meta = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| meta_fault(key, "missing".into()))
    };
    if meta("format")? != HDGCN_FORMAT {
        let m = format!("expected `{HDGCN_FORMAT}`, found `{}`", meta("format")?);
        return Err(meta_fault("format", m));
    }
    let entries = state_dict_listing::parse(meta("state_dict")?, path)
        .map_err(|e| meta_fault("state_dict", format!("{}: {}", e.place, e.message)))?;
    let full_max: usize = meta("full_gradient_max")?
        .parse()
        .map_err(|_| meta_fault("full_gradient_max", "not a count".into()))?;
    file.expect_exactly(&KEYS.map(String::from).into())?;

    let mut labels = Vec::new();
    for (n, line) in meta("formula_checks")?.lines().enumerate() {
        let parsed = line
            .split_once(' ')
            .and_then(|(label, i)| Some((label.to_string(), i.parse().ok()?)));
        let Some(check) = parsed else {
            let m = format!("line {}: expected `label index`, found `{line}`", n + 1);
            return Err(meta_fault("formula_checks", m));
        };
        labels.push(check);
    }
    let noise = f64s(path, &tensors, "formula.noise", &[labels.len()])?;
    let values = file.f32("formula.value", Some(&[labels.len()]))?.data;
    let formula_checks = labels
        .into_iter()
        .zip(noise.into_iter().zip(values))
        .map(|((label, index), (noise, value))| FormulaCheck {
            label,
            index,
            noise,
            value,
        })
        .collect();

    let x = file.f32("x", None)?;
    let n = x.shape.first().copied().unwrap_or(0);
    let entry = |key: &str| entries.iter().find(|e| e.key == key);
    let classes = entry("fc.bias").map_or(0, Entry::numel);
    let graph_shape = entry("l1.gcn1.PA").map_or(vec![0], |e| e.shape.clone());
    let scalar = |key: &str| -> Result<f32, DataError> { Ok(file.f32(key, Some(&[]))?.data[0]) };
    let key_fault = |key: &'static str| {
        move |message: String| DataError::new(path, Place::Key(key.into()), message)
    };

    let floats: Vec<&Entry> = entries.iter().filter(|e| !is_counter(&e.key)).collect();
    let checksums = f64s(path, &tensors, "checksums", &[floats.len(), 2])?;
    let running: Vec<&Entry> = floats
        .iter()
        .copied()
        .filter(|e| !e.is_parameter())
        .collect();
    let counters: Vec<&Entry> = entries.iter().filter(|e| is_counter(&e.key)).collect();
    let parameters: Vec<&Entry> = entries.iter().filter(|e| e.is_parameter()).collect();
    let (full, sketched): (Vec<&Entry>, Vec<&Entry>) =
        parameters.iter().partition(|e| e.numel() <= full_max);

    let after = file.f32("after.running", None)?.data;
    let sizes = |entries: &[&Entry]| -> Vec<usize> { entries.iter().map(|e| e.numel()).collect() };
    let after = split(&after, &sizes(&running), key_fault("after.running"))?;
    let running_envelope = file
        .f32("f32_envelope.after.running", Some(&[running.len()]))?
        .data;
    let running_envelope = running
        .iter()
        .map(|e| e.key.clone())
        .zip(running_envelope)
        .collect();
    let tracked = file.i64("after.num_batches_tracked", &[counters.len()])?;
    let total: usize = sizes(&full).iter().sum();
    let grads = file.f24("grads", &[total])?.data;
    let grads = split(&grads, &sizes(&full), key_fault("grads"))?;
    let envelopes = file.f32("f32_envelope.grads", Some(&[full.len()]))?.data;
    let sketches = f64s(path, &tensors, "sketches", &[sketched.len(), SKETCH_LEN])?;
    let sketch_envelopes = file
        .f32("sketch_envelopes", Some(&[sketched.len(), SKETCH_LEN]))?
        .data;

    let mut reference: HashMap<&str, Reference> = HashMap::new();
    for ((e, grad), envelope) in full.iter().zip(grads).zip(envelopes) {
        let grad = Tensor {
            shape: e.shape.clone(),
            data: grad,
        };
        reference.insert(&e.key, Reference::Full { grad, envelope });
    }
    for (j, e) in sketched.iter().enumerate() {
        let rows = j * SKETCH_LEN..(j + 1) * SKETCH_LEN;
        let values = sketches[rows.clone()].to_vec();
        let envelope = sketch_envelopes[rows].to_vec();
        reference.insert(&e.key, Reference::Sketch { values, envelope });
    }
    let grads = parameters
        .iter()
        .map(|e| {
            (
                e.key.clone(),
                reference.remove(e.key.as_str()).expect("one per parameter"),
            )
        })
        .collect();
    let step = Fixture {
        path: path.to_path_buf(),
        y: file.i64("y", &[n])?,
        logits: file.f32("logits", Some(&[n, classes]))?,
        loss: scalar("loss")?,
        logits_envelope: scalar("f32_envelope.logits")?,
        loss_envelope: scalar("f32_envelope.loss")?,
        x,
        formula_checks,
        checksums: Named {
            entries: floats
                .iter()
                .zip(checksums.chunks_exact(2))
                .map(|(e, c)| (e.key.clone(), c.to_vec()))
                .collect(),
        },
        grads: Named { entries: grads },
        running_after: Named {
            entries: running
                .iter()
                .zip(after)
                .map(|(e, data)| {
                    let shape = e.shape.clone();
                    (e.key.clone(), Tensor { shape, data })
                })
                .collect(),
        },
        batches_tracked_after: Named {
            entries: counters
                .iter()
                .zip(tracked)
                .map(|(e, t)| (e.key.clone(), t))
                .collect(),
        },
        metadata: metadata.clone(),
        entries: entries.clone(),
        latent: None,
        topology: None,
        class_memory: None,
    };
    let graph = file.f32("graph", Some(&graph_shape))?;
    Ok(HdFixture {
        step,
        graph,
        running_envelope,
    })
}

fn fixture() -> HdFixture {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode(&path, &bytes).unwrap_or_else(|e| panic!("{e}"))
}

fn model(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Hdgcn)
}

#[test]
fn the_formula_reproduces_the_reference_weights() {
    let f = fixture().step;
    let weights = f.weights().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(weights.entries.len(), f.checksums.entries.len());
}

#[test]
fn the_engine_declares_the_reference_state_dict() {
    assert_declares_state_dict(&fixture().step, model(Dataset::Ntu60));
}

#[test]
fn parameter_counts_are_the_reference_counts() {
    // tests/reference/hdgcn.py; NTU120's is backbones spec §6's.
    for (dataset, count) in [
        (Dataset::Ntu60, 1_659_980),
        (Dataset::Ntu120, 1_675_400),
        (Dataset::Ucla, 1_606_450),
    ] {
        assert_eq!(parameter_count(model(dataset)), count, "{dataset:?}");
    }
}

#[test]
fn every_pa_starts_at_the_reference_graph() {
    let f = fixture();
    assert_eq!(f.step.metadata["com"], "21");
    let mut g = Graph::new();
    Network::new(&mut g, model(Dataset::Ntu60), 0);
    let want: Vec<u32> = f.graph.data.iter().map(|v| v.to_bits()).collect();
    let mut blocks = BTreeSet::new();
    for (_, t) in g.tensors().filter(|(_, t)| t.name.ends_with(".gcn1.PA")) {
        let Some(Data::F32(init)) = &t.init else {
            panic!("{} has no initial values", t.name);
        };
        let got: Vec<u32> = init.iter().map(|v| v.to_bits()).collect();
        assert_eq!(t.shape, f.graph.shape, "{}", t.name);
        assert!(
            got == want,
            "{} does not start at the hierarchical graph",
            t.name
        );
        blocks.insert(t.name.clone());
    }
    assert_eq!(blocks.len(), 10, "one PA per block");
}

#[test]
fn a_damaged_fixture_is_refused_with_its_place() {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap();
    let missing = rewritten(&bytes, |k| k != "graph", |_| {});
    let e = decode(&path, &missing).err().expect("refused");
    assert_eq!(e.place, Place::Key("graph".into()));
    // A larger `full_gradient_max` asks for more whole gradients than `grads` holds.
    let short = rewritten(
        &bytes,
        |_| true,
        |m| {
            let max: usize = m["full_gradient_max"].parse().unwrap();
            m.insert("full_gradient_max".into(), (max * 2).to_string());
        },
    );
    let e = decode(&path, &short).err().expect("refused");
    assert_eq!(e.place, Place::Key("grads".into()), "{e}");
}

/// The parameters a training-mode BN removes (their exact gradient is zero): every conv bias
/// and the MS-TCN's separate `bias` (each feeds a BN), and in block 1, which sums its levels
/// into `gcn1.bn`, the aggregation branches' BN biases; `aha.aggregate.bias` reaches a sigmoid.
fn cancelled(f: &Fixture) -> impl Fn(&str) -> bool {
    let bns = formula::batch_norms(f.entries.iter().map(|e| e.key.as_str()));
    move |key: &str| {
        let Some(prefix) = key.strip_suffix(".bias") else {
            return false;
        };
        if prefix == "fc" || prefix.ends_with(".aha.aggregate") {
            return false;
        }
        if !bns.contains(prefix) {
            return true;
        }
        // `l1.gcn1.conv.{l}.{s}.1`, s < 3 (`conv.{l}.3` is the EdgeConv).
        prefix
            .strip_prefix("l1.gcn1.conv.")
            .and_then(|rest| rest.split('.').nth(1))
            .is_some_and(|subset| subset != "3")
    }
}

#[test]
fn one_training_step_matches_pytorch() {
    let HdFixture {
        step: f,
        running_envelope,
        ..
    } = fixture();
    assert_eq!(
        (f.metadata["dataset"].as_str(), f.metadata["com"].as_str()),
        ("ntu60", "21")
    );
    let cancelled = cancelled(&f);
    let count = f.entries.iter().filter(|e| cancelled(&e.key)).count();
    assert_eq!(count, 332, "as make_hdgcn_fixture.py finds");
    // A BN after a kNN pick that float32 makes differently sees other batch statistics: its
    // running statistics are held to their envelope where that is above the usual 1e-4.
    let running_bar = |key: &str| envelope_bound(running_envelope[key]).max(1e-4);
    check_training_step_with(
        &f,
        model(Dataset::Ntu60),
        cancelled,
        "HD-GCN step",
        running_bar,
    );
}
