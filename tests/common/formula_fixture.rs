//! Parity fixtures of one training step whose weights are not stored but computed on both sides
//! by one formula of (key, index) (tests/reference/make_stgcn_fixture.py): the decoder, the
//! formula, the gradient sketches and the check of an engine step against the fixture, shared by
//! the parity tests of every backbone but CTR-GCN.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::ctrgcn_fixture::{Named, Reader, Tensor};
use super::parity::{ENVELOPE_MULTIPLE, Tally, relative_l2};
use super::state_dict_listing::{self, Entry};
use safetensors::{Dtype, SafeTensors};
use sfhead::data::{DataError, Place};
use sfhead::engine::{Graph, Role, Store};
use sfhead::model::ctrgcn::CtrGcnConfig;
use sfhead::model::infogcn::{LATENT, Z_PRIOR};
use sfhead::model::network::Network;
use sfhead::model::protogcn::{CLASS_MEMORY, CSC_FEATURES, FEATURES as PROTOTYPE_FEATURES};
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::dropout::{DROPPED, KEPT};
use sfhead::testing::gpu;
use sfhead::train::{StepOptions, TrainStep};

/// Parameters up to this many values have their whole gradient recorded, larger ones a sketch.
pub const FULL_GRADIENT_MAX: usize = 4096;
/// Signed sums in a sketch; the sum and the sum of squares follow.
pub const SKETCH_VECTORS: usize = 8;
pub const SKETCH_LEN: usize = SKETCH_VECTORS + 2;
/// Every BN's `num_batches_tracked` before the step.
pub const BATCHES_TRACKED: i64 = 10;
/// The format of InfoGCN's fixture, which also records its latent sample and loss terms.
pub const INFOGCN_FORMAT: &str = "sfhead-infogcn-fixture-1";
/// The format of BlockGCN's fixture, which also records its topology branch's intermediates.
pub const BLOCKGCN_FORMAT: &str = "sfhead-blockgcn-fixture-1";
/// The format of HD-GCN's fixture, whose per-entry records are packed into a few tensors
/// (tests/hdgcn_parity.rs decodes it).
pub const HDGCN_FORMAT: &str = "sfhead-hdgcn-fixture-1";
/// InfoGCN's loss terms besides the total, as the training step names them.
const LATENT_TERMS: [&str; 3] = ["ce", "mmd", "l2_z_mean"];
/// The format of ProtoGCN's fixture, which also records its class memory, the PRN's dropout
/// mask and loss terms.
pub const PROTOGCN_FORMAT: &str = "sfhead-protogcn-fixture-1";
/// ProtoGCN's loss terms besides the total, as the training step names them.
const PROTOGCN_TERMS: [&str; 2] = ["ce", "csc"];

/// The weight formula of tests/reference/make_stgcn_fixture.py, with the rules
/// tests/reference/make_aagcn_fixture.py adds for MS-AAGCN's `alpha`, Conv1d and Linear weights.
pub mod formula {
    use std::collections::BTreeSet;

    /// The adjacency subsets of a graph unit.
    const SUBSETS: usize = 3;
    /// 2⁻⁵³, exactly.
    const UNIT: f64 = 1.0 / 9_007_199_254_740_992.0;

    /// The pseudo-random values of one label: splitmix64 of (FNV-1a-64 of the label) + index.
    pub struct Stream(u64);

    impl Stream {
        pub fn new(label: &str) -> Self {
            Self(label.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            }))
        }

        /// The sketch vector `j` of a state-dict key.
        pub fn sketch(key: &str, j: usize) -> Self {
            Self::new(&format!("{key}#sketch{j}"))
        }

        pub fn bits(&self, i: usize) -> u64 {
            let s = self
                .0
                .wrapping_add(i as u64)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (s ^ (s >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform on [−√3, √3): mean 0, variance 1.
        pub fn noise(&self, i: usize) -> f64 {
            (2.0 * ((self.bits(i) >> 11) as f64 * UNIT) - 1.0) * 3f64.sqrt()
        }

        /// ±1, +1 when the top bit is clear.
        pub fn sign(&self, i: usize) -> f64 {
            if self.bits(i) >> 63 == 0 { 1.0 } else { -1.0 }
        }
    }

    /// The module prefixes that are BatchNorms: those with a `running_mean` entry.
    pub fn batch_norms<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        keys.into_iter()
            .filter_map(|k| k.strip_suffix(".running_mean"))
            .map(String::from)
            .collect()
    }

    /// The values of a float state entry, row-major: f32 of a float64 value per the fixture
    /// script's table.
    pub fn entry_values(
        key: &str,
        shape: &[usize],
        batch_norms: &BTreeSet<String>,
    ) -> Result<Vec<f32>, String> {
        let (prefix, leaf) = key.rsplit_once('.').unwrap_or(("", key));
        let no_rule = || format!("{key} {shape:?}: no rule of the weight formula applies");
        let is_bn = batch_norms.contains(prefix);
        let identity_plus = |shape: &[usize]| -> Option<Box<dyn Fn(usize, f64) -> f64>> {
            let &[_, v, w] = shape else {
                return None;
            };
            (v == w).then(|| -> Box<dyn Fn(usize, f64) -> f64> {
                Box::new(move |i, u| {
                    let diagonal = if (i / v) % v == i % v { 1.0 } else { 0.0 };
                    diagonal + 0.1 * u
                })
            })
        };
        // ProtoGCN's rows (tests/reference/make_protogcn_fixture.py), BlockGCN's
        // (make_blockgcn_fixture.py; its `fc1` row is also HD-GCN's (L, S, V, V) `PA`,
        // make_hdgcn_fixture.py), then InfoGCN's (make_infogcn_fixture.py), before the others.
        let rule: Box<dyn Fn(usize, f64) -> f64> = if leaf == "A" && shape.len() == 3 {
            Box::new(|_, u| 0.04 + 0.02 * u)
        } else if matches!(leaf, "beta" | "add_coeff") {
            Box::new(|_, u| 0.5 + 0.1 * u)
        } else if let ("fc1" | "PA", &[_, _, v, w]) = (leaf, shape) {
            if v != w {
                return Err(no_rule());
            }
            Box::new(move |i, u| {
                let diagonal = if (i / v) % v == i % v { 1.0 } else { 0.0 };
                diagonal + 0.1 * u
            })
        } else if leaf == "rpe" {
            Box::new(|_, u| 0.1 + 0.05 * u)
        } else if key == "topo.pl.centres" {
            let spread = (1.0f64 / 12.0).sqrt();
            Box::new(move |_, u| 0.5 + spread * u)
        } else if key == "topo.pl.sharpness" {
            Box::new(|_, u| 2.0 + 0.2 * u)
        } else if !is_bn && key == "pos_embedding" {
            Box::new(|_, u| u)
        } else if !is_bn && leaf == "shared_topology" {
            identity_plus(shape).ok_or_else(no_rule)?
        } else if !is_bn && leaf == "weight" && shape.len() == 1 {
            Box::new(|_, u| 1.0 + 0.1 * u)
        } else if let (false, true, &[_, c]) = (is_bn, key.ends_with(".attn.to_qk.weight"), shape) {
            let std = (1.0 / (2 * c) as f64).sqrt();
            Box::new(move |_, u| std * u)
        } else if let (false, "decoder.weight", &[classes, _]) = (is_bn, key, shape) {
            let std = (2.0 / classes as f64).sqrt();
            Box::new(move |_, u| std * u)
        } else if !is_bn && key == "decoder.bias" {
            let std = (1.0f64 / 768.0).sqrt();
            Box::new(move |_, u| std * u)
        } else if is_bn {
            match leaf {
                "weight" => Box::new(|_, u| 1.0 + 0.1 * u),
                "bias" => Box::new(|_, u| 0.05 * u),
                "running_mean" => Box::new(|_, u| 0.1 * u),
                "running_var" => Box::new(|_, u| 1.0 + 0.3 * u.abs()),
                _ => return Err(no_rule()),
            }
        } else if leaf == "PA" {
            identity_plus(shape).ok_or_else(no_rule)?
        } else if let ("fc.weight", &[classes, _]) = (key, shape) {
            let std = (2.0 / classes as f64).sqrt();
            Box::new(move |_, u| std * u)
        } else if key == "fc.bias" {
            let std = (1.0f64 / 768.0).sqrt();
            Box::new(move |_, u| std * u)
        } else if leaf == "alpha" {
            Box::new(|_, u| 0.5 + 0.1 * u)
        } else if let ("weight", &[o, i, k]) = (leaf, shape) {
            // A Conv1d: xavier_normal's spread, fan_in = I·k, fan_out = O·k.
            let std = (2.0 / (i * k + o * k) as f64).sqrt();
            Box::new(move |_, u| std * u)
        } else if let ("weight", &[_, i]) = (leaf, shape) {
            // A Linear other than fc: kaiming_normal, fan in.
            let std = (2.0 / i as f64).sqrt();
            Box::new(move |_, u| std * u)
        } else if let ("weight", &[o, i, kh, kw]) = (leaf, shape) {
            // baseline.py and aagcn.py give each subset's conv a third of the variance.
            let fan = if key.contains(".conv_d.") {
                o * i * kh * SUBSETS
            } else {
                o * kh * kw
            };
            let std = (2.0 / fan as f64).sqrt();
            Box::new(move |_, u| std * u)
        } else if leaf == "bias" {
            Box::new(|_, u| 0.05 * u)
        } else {
            return Err(no_rule());
        };
        let stream = Stream::new(key);
        let n: usize = shape.iter().product();
        Ok((0..n).map(|i| rule(i, stream.noise(i)) as f32).collect())
    }
}

use formula::Stream;

/// What the fixture holds of one parameter's float64 gradient.
#[derive(Debug, Clone)]
pub enum Reference {
    /// The whole gradient and the envelope of its relative L2 error.
    Full { grad: Tensor, envelope: f32 },
    /// The sketch (`sketch`) and the envelope of each of its quantities.
    Sketch {
        values: Vec<f64>,
        envelope: Vec<f32>,
    },
}

/// One recorded output of the formula: the weight of `label` at `index`, or with a
/// `KEY#sketchJ` label the sign of sketch vector J.
#[derive(Debug, Clone)]
pub struct FormulaCheck {
    pub label: String,
    pub index: usize,
    pub noise: f64,
    pub value: f32,
}

/// A fixture of one training step with formula weights, decoded.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub path: PathBuf,
    pub metadata: HashMap<String, String>,
    /// The state dict: keys, shapes, parameter or buffer, in PyTorch's order.
    pub entries: Vec<Entry>,
    /// (N, 3, T, V, M).
    pub x: Tensor,
    pub y: Vec<i64>,
    pub logits: Tensor,
    pub loss: f32,
    pub logits_envelope: f32,
    pub loss_envelope: f32,
    pub formula_checks: Vec<FormulaCheck>,
    /// Σv and Σv² in float64 of every float state entry.
    pub checksums: Named<Vec<f64>>,
    pub grads: Named<Reference>,
    pub running_after: Named<Tensor>,
    pub batches_tracked_after: Named<i64>,
    /// InfoGCN's latent sample and loss terms.
    pub latent: Option<Latent>,
    /// BlockGCN's topology branch.
    pub topology: Option<TopologyBranch>,
    /// ProtoGCN's class memory, dropout mask and loss terms.
    pub class_memory: Option<ClassMemory>,
}

/// What a ProtoGCN fixture adds: the CSC class memory (256, K) before the step and after it
/// with the float32 envelope of its update (after − before), the PRN's dropout keep mask in the
/// engine's noise layout (N·V·V, C), the samples that are true positives, and each loss term
/// with its float32 envelope.
#[derive(Debug, Clone)]
pub struct ClassMemory {
    pub memory: Tensor,
    pub memory_after: Tensor,
    pub update_envelope: f32,
    pub keep: Vec<bool>,
    pub true_positives: Vec<usize>,
    /// (name, float64 reference value, envelope of the relative error).
    pub terms: Vec<(String, f32, f32)>,
}

/// What a BlockGCN fixture adds: the persistence deaths (N, V − 1) and structure-element
/// features (N, 64) of its batch with their float32 envelopes, and the hop table (V, V).
#[derive(Debug, Clone)]
pub struct TopologyBranch {
    pub deaths: Tensor,
    pub deaths_envelope: f32,
    pub features: Tensor,
    pub features_envelope: f32,
    pub hops: Vec<i64>,
}

/// What an InfoGCN fixture adds: the noise of its latent sample, the class prior (not in the
/// state dict) and each loss term with its float32 envelope.
#[derive(Debug, Clone)]
pub struct Latent {
    pub eps: Tensor,
    pub z_prior: Tensor,
    /// (name, float64 reference value, envelope of the relative error).
    pub terms: Vec<(String, f32, f32)>,
}

pub fn is_counter(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

/// Every key a fixture of this state dict holds; `latent` for InfoGCN's, `topology` for
/// BlockGCN's.
fn expected_keys(entries: &[Entry], latent: bool, topology: bool) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = [
        "x",
        "y",
        "logits",
        "loss",
        "f32_envelope.logits",
        "f32_envelope.loss",
        "formula.noise",
        "formula.value",
    ]
    .map(String::from)
    .into();
    if topology {
        for key in ["deaths", "topo_features"] {
            keys.extend([key.to_string(), format!("f32_envelope.{key}")]);
        }
        keys.insert("hops".into());
    }
    if latent {
        keys.extend(["eps".to_string(), "z_prior".to_string()]);
        for term in LATENT_TERMS {
            keys.extend([format!("loss.{term}"), format!("f32_envelope.loss.{term}")]);
        }
    }
    for e in entries {
        let prefixes: &[&str] = if is_counter(&e.key) {
            &["after"]
        } else if !e.is_parameter() {
            &["checksum", "after"]
        } else if e.numel() <= FULL_GRADIENT_MAX {
            &["checksum", "grad", "f32_envelope"]
        } else {
            &["checksum", "sketch", "sketch_envelope"]
        };
        keys.extend(prefixes.iter().map(|p| format!("{p}.{}", e.key)));
    }
    keys
}

impl ClassMemory {
    /// The ProtoGCN part of a fixture whose batch has shape `x_shape` (N, 3, T, V, M).
    fn decode(
        path: &Path,
        file: &Reader<'_>,
        tensors: &SafeTensors<'_>,
        x_shape: &[usize],
        classes: usize,
    ) -> Result<Self, DataError> {
        let scalar =
            |key: &str| -> Result<f32, DataError> { Ok(file.f32(key, Some(&[]))?.data[0]) };
        let meta_fault = |message: String| {
            DataError::new(
                path,
                Place::Key("__metadata__.true_positives".into()),
                message,
            )
        };
        let (n, v) = (x_shape[0], x_shape.get(3).copied().unwrap_or(0));
        let channels = PROTOTYPE_FEATURES;
        let packed = u8s(path, tensors, "prn_keep", &[n, v * v, channels / 8])?;
        let keep = packed
            .iter()
            .flat_map(|&byte| (0..8).map(move |bit| (byte >> bit) & 1 == 1))
            .collect();
        let metadata = file.metadata()?;
        let listed = metadata
            .get("true_positives")
            .ok_or_else(|| meta_fault("missing".into()))?;
        let true_positives = listed
            .split(',')
            .map(|i| match i.parse::<usize>() {
                Ok(i) if i < n => Ok(i),
                _ => Err(meta_fault(format!(
                    "`{i}` is not a sample of the batch of {n}"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let terms = PROTOGCN_TERMS
            .iter()
            .map(|&term| {
                let value = scalar(&format!("loss.{term}"))?;
                let envelope = scalar(&format!("f32_envelope.loss.{term}"))?;
                Ok((term.to_string(), value, envelope))
            })
            .collect::<Result<_, DataError>>()?;
        let memory_shape = [CSC_FEATURES, classes];
        Ok(Self {
            memory: file.f32("memory", Some(&memory_shape))?,
            memory_after: file.f32("memory_after", Some(&memory_shape))?,
            update_envelope: scalar("f32_envelope.memory_update")?,
            keep,
            true_positives,
            terms,
        })
    }

    /// The recorded keep mask as the dropout's noise: kept +8, dropped −8.
    pub fn noise(&self) -> Vec<f32> {
        self.keep
            .iter()
            .map(|&kept| if kept { KEPT } else { DROPPED })
            .collect()
    }
}

/// The keys a ProtoGCN fixture adds to [`expected_keys`].
fn class_memory_keys() -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = [
        "memory",
        "memory_after",
        "f32_envelope.memory_update",
        "prn_keep",
    ]
    .map(String::from)
    .into();
    for term in PROTOGCN_TERMS {
        keys.extend([format!("loss.{term}"), format!("f32_envelope.loss.{term}")]);
    }
    keys
}

/// A U8 tensor of shape `shape`.
fn u8s<'a>(
    path: &Path,
    tensors: &SafeTensors<'a>,
    key: &str,
    shape: &[usize],
) -> Result<&'a [u8], DataError> {
    let fault = |message: String| DataError::new(path, Place::Key(key.into()), message);
    let view = tensors.tensor(key).map_err(|_| fault("missing".into()))?;
    if view.dtype() != Dtype::U8 {
        return Err(fault(format!("expected U8, found {:?}", view.dtype())));
    }
    if view.shape() != shape {
        return Err(fault(format!(
            "expected shape {shape:?}, found {:?}",
            view.shape()
        )));
    }
    Ok(view.data())
}

/// An F64 vector of `len` values.
fn f64s(
    path: &Path,
    tensors: &SafeTensors<'_>,
    key: &str,
    len: usize,
) -> Result<Vec<f64>, DataError> {
    let fault = |message: String| DataError::new(path, Place::Key(key.into()), message);
    let view = tensors.tensor(key).map_err(|_| fault("missing".into()))?;
    if view.dtype() != Dtype::F64 {
        return Err(fault(format!("expected F64, found {:?}", view.dtype())));
    }
    if view.shape() != [len] {
        return Err(fault(format!(
            "expected shape [{len}], found {:?}",
            view.shape()
        )));
    }
    Ok(view
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

impl Fixture {
    /// Reads a fixture whose `format` metadata must be `format`.
    pub fn load(path: &Path, format: &str) -> Result<Self, DataError> {
        let bytes = std::fs::read(path)
            .map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))?;
        Self::decode(path, &bytes, format)
    }

    /// Decodes the bytes of a fixture; `path` names it in errors.
    pub fn decode(path: &Path, bytes: &[u8], format: &str) -> Result<Self, DataError> {
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
        if meta("format")? != format {
            return Err(meta_fault(
                "format",
                format!("expected `{format}`, found `{}`", meta("format")?),
            ));
        }
        let entries = state_dict_listing::parse(meta("state_dict")?, path)
            .map_err(|e| meta_fault("state_dict", format!("{}: {}", e.place, e.message)))?;
        let latent = format == INFOGCN_FORMAT;
        let topology = format == BLOCKGCN_FORMAT;
        let class_memory = format == PROTOGCN_FORMAT;
        let mut expected = expected_keys(&entries, latent, topology);
        if class_memory {
            expected.extend(class_memory_keys());
        }
        file.expect_exactly(&expected)?;

        let mut checks = Vec::new();
        for (n, line) in meta("formula_checks")?.lines().enumerate() {
            let parsed = line
                .split_once(' ')
                .and_then(|(label, i)| Some((label.to_string(), i.parse().ok()?)));
            let Some((label, index)) = parsed else {
                return Err(meta_fault(
                    "formula_checks",
                    format!("line {}: expected `label index`, found `{line}`", n + 1),
                ));
            };
            checks.push((label, index));
        }
        let noise = f64s(path, &tensors, "formula.noise", checks.len())?;
        let values = file.f32("formula.value", Some(&[checks.len()]))?.data;
        let formula_checks = checks
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
        // InfoGCN's classifier is `decoder`; its `fc` is a hidden layer. ProtoGCN's is the
        // official recognizer's head.
        let classifier = if latent {
            "decoder.bias"
        } else if class_memory {
            "cls_head.fc_cls.bias"
        } else {
            "fc.bias"
        };
        let classes = entries
            .iter()
            .find(|e| e.key == classifier)
            .map_or(0, Entry::numel);
        let scalar =
            |key: &str| -> Result<f32, DataError> { Ok(file.f32(key, Some(&[]))?.data[0]) };
        let mut fixture = Fixture {
            path: path.to_path_buf(),
            y: file.i64("y", &[n])?,
            logits: file.f32("logits", Some(&[n, classes]))?,
            loss: scalar("loss")?,
            logits_envelope: scalar("f32_envelope.logits")?,
            loss_envelope: scalar("f32_envelope.loss")?,
            x,
            formula_checks,
            checksums: Named::default(),
            grads: Named::default(),
            running_after: Named::default(),
            batches_tracked_after: Named::default(),
            metadata: HashMap::new(),
            entries: Vec::new(),
            latent: None,
            topology: None,
            class_memory: None,
        };
        if topology {
            let v = fixture.x.shape.get(3).copied().unwrap_or(0);
            fixture.topology = Some(TopologyBranch {
                deaths: file.f32("deaths", Some(&[n, v.saturating_sub(1)]))?,
                deaths_envelope: scalar("f32_envelope.deaths")?,
                features: file.f32("topo_features", None)?,
                features_envelope: scalar("f32_envelope.topo_features")?,
                hops: file.i64("hops", &[v, v])?,
            });
        }
        if latent {
            let terms = LATENT_TERMS
                .iter()
                .map(|&term| {
                    let value = scalar(&format!("loss.{term}"))?;
                    let envelope = scalar(&format!("f32_envelope.loss.{term}"))?;
                    Ok((term.to_string(), value, envelope))
                })
                .collect::<Result<_, DataError>>()?;
            fixture.latent = Some(Latent {
                eps: file.f32("eps", Some(&[n, LATENT]))?,
                z_prior: file.f32("z_prior", Some(&[classes, LATENT]))?,
                terms,
            });
        }
        if class_memory {
            fixture.class_memory = Some(ClassMemory::decode(
                path,
                &file,
                &tensors,
                &fixture.x.shape,
                classes,
            )?);
        }
        for e in &entries {
            let key = e.key.clone();
            if is_counter(&key) {
                let after = file.i64(&format!("after.{key}"), &e.shape)?[0];
                fixture.batches_tracked_after.entries.push((key, after));
                continue;
            }
            let checksum = f64s(path, &tensors, &format!("checksum.{key}"), 2)?;
            fixture.checksums.entries.push((key.clone(), checksum));
            if !e.is_parameter() {
                let after = file.f32(&format!("after.{key}"), Some(&e.shape))?;
                fixture.running_after.entries.push((key, after));
            } else if e.numel() <= FULL_GRADIENT_MAX {
                let grad = file.f24(&format!("grad.{key}"), &e.shape)?;
                let envelope = scalar(&format!("f32_envelope.{key}"))?;
                let reference = Reference::Full { grad, envelope };
                fixture.grads.entries.push((key, reference));
            } else {
                let values = f64s(path, &tensors, &format!("sketch.{key}"), SKETCH_LEN)?;
                let envelope = file
                    .f32(&format!("sketch_envelope.{key}"), Some(&[SKETCH_LEN]))?
                    .data;
                let reference = Reference::Sketch { values, envelope };
                fixture.grads.entries.push((key, reference));
            }
        }
        fixture.metadata = metadata;
        fixture.entries = entries;
        Ok(fixture)
    }

    fn fault(&self, key: &str, message: String) -> DataError {
        DataError::new(&self.path, Place::Key(key.into()), message)
    }

    /// Every float state entry by the formula, after checking the formula against the recorded
    /// outputs (bit for bit) and each entry against its checksum.
    pub fn weights(&self) -> Result<Named<Vec<f32>>, DataError> {
        let bns = formula::batch_norms(self.entries.iter().map(|e| e.key.as_str()));
        let values_of = |key: &str, shape: &[usize]| {
            formula::entry_values(key, shape, &bns).map_err(|m| self.fault(key, m))
        };
        for (n, c) in self.formula_checks.iter().enumerate() {
            let place = format!("check {n} (`{}` at {})", c.label, c.index);
            let noise = Stream::new(&c.label).noise(c.index);
            if noise.to_bits() != c.noise.to_bits() {
                let m = format!(
                    "{place}: the formula's noise is {noise:e}, the fixture's {:e}",
                    c.noise
                );
                return Err(self.fault("formula.noise", m));
            }
            let value = match c.label.split_once("#sketch") {
                Some((key, j)) => {
                    let j = j.parse().map_err(|_| {
                        self.fault("formula.value", format!("{place}: bad sketch number"))
                    })?;
                    Stream::sketch(key, j).sign(c.index) as f32
                }
                None => {
                    let e = self.entries.iter().find(|e| e.key == c.label);
                    let e = e.ok_or_else(|| {
                        self.fault("formula.value", format!("{place}: no such entry"))
                    })?;
                    let values = values_of(&e.key, &e.shape)?;
                    *values.get(c.index).ok_or_else(|| {
                        self.fault("formula.value", format!("{place}: past the entry's end"))
                    })?
                }
            };
            if value.to_bits() != c.value.to_bits() {
                let m = format!(
                    "{place}: the formula gives {value:e}, the fixture {:e}",
                    c.value
                );
                return Err(self.fault("formula.value", m));
            }
        }
        let mut weights = Named::default();
        for e in self.entries.iter().filter(|e| !is_counter(&e.key)) {
            let values = values_of(&e.key, &e.shape)?;
            let (sum, squares) = values.iter().fold((0.0, 0.0), |(s, q), &v| {
                let v = f64::from(v);
                (s + v, q + v * v)
            });
            let want = self.checksums.get(&e.key).expect("one checksum per entry");
            // Summing in another order moves a float64 sum by far less than 1e-12 of
            // Σ|v| ≤ √(n·Σv²).
            let n = values.len() as f64;
            let slack = 1e-12 * (n * squares).sqrt();
            if (sum - want[0]).abs() > slack || (squares - want[1]).abs() > 1e-12 * want[1] {
                let m = format!(
                    "the formula's values have Σv = {sum:e}, Σv² = {squares:e}; the reference's {:e}, {:e}",
                    want[0], want[1]
                );
                return Err(self.fault(&format!("checksum.{}", e.key), m));
            }
            weights.entries.push((e.key.clone(), values));
        }
        Ok(weights)
    }
}

/// The ten sketch quantities of a gradient, in float64.
pub fn sketch(key: &str, g: &[f32]) -> Vec<f64> {
    let mut quantities: Vec<f64> = (0..SKETCH_VECTORS)
        .map(|j| {
            let signs = Stream::sketch(key, j);
            g.iter()
                .enumerate()
                .map(|(i, &v)| signs.sign(i) * f64::from(v))
                .sum()
        })
        .collect();
    quantities.push(g.iter().map(|&v| f64::from(v)).sum());
    quantities.push(g.iter().map(|&v| f64::from(v).powi(2)).sum());
    quantities
}

/// Per quantity: |Δ| / ‖g_ref‖₂ for the signed sums and the sum (each estimates the relative L2
/// error), |Δ| / Σg_ref² for the sum of squares.
pub fn sketch_errors(got: &[f64], want: &[f64]) -> Vec<f64> {
    let squares = want[SKETCH_LEN - 1];
    let norm = squares.sqrt();
    let mut errors: Vec<f64> = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / norm)
        .collect();
    errors[SKETCH_LEN - 1] = (got[SKETCH_LEN - 1] - squares).abs() / squares;
    errors
}

fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The persistent tensors of a model: names, shapes, roles in declaration order.
pub fn declared(config: CtrGcnConfig) -> Vec<(String, Vec<usize>, Role)> {
    let mut g = Graph::new();
    Network::new(&mut g, config, 0);
    g.tensors()
        .filter(|(_, t)| t.role.is_stored())
        .map(|(_, t)| (t.name.clone(), t.shape.clone(), t.role))
        .collect()
}

/// The parameter count of a model.
pub fn parameter_count(config: CtrGcnConfig) -> usize {
    declared(config)
        .iter()
        .filter(|(_, _, role)| *role == Role::Parameter)
        .map(|(_, shape, _)| shape.iter().product::<usize>())
        .sum()
}

/// Asserts that `config` declares the fixture's state dict, in order, and then at most InfoGCN's
/// class prior or ProtoGCN's class memory, which the official models keep outside it; PyTorch's scalar
/// `num_batches_tracked` is a one-value tensor here.
pub fn assert_declares_state_dict(f: &Fixture, config: CtrGcnConfig) {
    let want: Vec<(String, Vec<usize>, bool)> = f
        .entries
        .iter()
        .map(|e| {
            let shape = if e.shape.is_empty() {
                vec![1]
            } else {
                e.shape.clone()
            };
            (e.key.clone(), shape, e.is_parameter())
        })
        .collect();
    let got: Vec<(String, Vec<usize>, bool)> = declared(config)
        .into_iter()
        .filter(|(name, _, role)| {
            !((name == Z_PRIOR || name == CLASS_MEMORY) && *role == Role::State)
        })
        .map(|(name, shape, role)| (name, shape, role == Role::Parameter))
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

/// The fixture's bytes with the tensors `keep` accepts and `edit` applied to the metadata.
pub fn rewritten(
    bytes: &[u8],
    keep: impl Fn(&str) -> bool,
    edit: impl FnOnce(&mut HashMap<String, String>),
) -> Vec<u8> {
    let tensors = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap_or_default();
    edit(&mut metadata);
    let kept: Vec<_> = tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| keep(name))
        .collect();
    safetensors::serialize(kept, Some(metadata)).unwrap()
}

/// ProtoGCN's step: the engine's true positives (argmax = label) are the fixture's, on which the
/// memory update depends, and its update of the class memory, `after` − the initial memory, lies
/// within the envelope of the reference's.
fn check_class_memory(
    tally: &mut Tally,
    class_memory: &ClassMemory,
    labels: &[i64],
    logits: &[f32],
    after: &[f32],
) {
    let classes = logits.len() / labels.len();
    let true_positives: Vec<usize> = logits
        .chunks_exact(classes)
        .zip(labels)
        .enumerate()
        .filter_map(|(i, (row, &label))| {
            let argmax = (0..classes).fold(0, |best, k| if row[k] > row[best] { k } else { best });
            (argmax as i64 == label).then_some(i)
        })
        .collect();
    assert_eq!(
        true_positives, class_memory.true_positives,
        "samples whose argmax is their label"
    );
    let before = &class_memory.memory.data;
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for ((&got, &want), &m) in after
        .iter()
        .zip(&class_memory.memory_after.data)
        .zip(before)
    {
        let (got, want) = (
            f64::from(got) - f64::from(m),
            f64::from(want) - f64::from(m),
        );
        diff += (got - want).powi(2);
        norm += want.powi(2);
    }
    let error = (diff / norm.max(1e-300)).sqrt();
    tally.check("class memory update", error, class_memory.update_envelope);
}

/// One training step of `config` from the fixture's weights against the reference: logits,
/// loss, every gradient (whole or sketched) within its float32 envelope, and the BN running
/// statistics after the step. Gradients `cancelled` names have an exact value of zero (a bias
/// that a training-mode BN removes) and must be rounding noise: 1e-5 of the largest gradient, or
/// `ENVELOPE_MULTIPLE` × the fixture's `cancelled_envelope` where it records one. The noise the
/// fixture records is fed as the step's (InfoGCN's latent ε, ProtoGCN's dropout mask), with the
/// state it adds (the class prior, the class memory), and its loss terms are checked.
pub fn check_training_step(
    f: &Fixture,
    config: CtrGcnConfig,
    cancelled: impl Fn(&str) -> bool,
    name: &str,
) {
    check_training_step_with(f, config, cancelled, name, |_| 1e-4);
}

/// [`check_training_step`] with `running_bar(key)` the largest relative L2 error of each BN
/// running statistic after the step, where 1e-4 is not enough (HD-GCN's float32 kNN picks
/// differ from float64's and move the batch statistics after them).
pub fn check_training_step_with(
    f: &Fixture,
    config: CtrGcnConfig,
    cancelled: impl Fn(&str) -> bool,
    name: &str,
    running_bar: impl Fn(&str) -> f64,
) {
    let weights = f.weights().unwrap_or_else(|e| panic!("{e}"));
    let gpu = gpu();
    let mut store = Store::new();
    let options = StepOptions {
        sgd: None,
        keep_gradients: true,
    };
    let step = TrainStep::build(&gpu, &mut store, &f.x.shape, options, |g, x, labels| {
        Network::new(g, config, 0).forward(g, x, Some(labels), Mode::Train)
    })
    .unwrap();
    if let Some(latent) = &f.latent {
        step.fix_noise(latent.eps.data.clone());
        store.write(&gpu, Z_PRIOR, &latent.z_prior.data).unwrap();
    }
    if let Some(class_memory) = &f.class_memory {
        step.fix_noise(class_memory.noise());
        store
            .write(&gpu, CLASS_MEMORY, &class_memory.memory.data)
            .unwrap();
    }
    for (key, values) in &weights.entries {
        store.write(&gpu, key, values).unwrap();
    }
    for e in f.entries.iter().filter(|e| is_counter(&e.key)) {
        store
            .write(&gpu, &e.key, &[BATCHES_TRACKED as f32])
            .unwrap();
    }
    let labels: Vec<u32> = f.y.iter().map(|&y| y as u32).collect();
    let loss = step.step(&f.x.data, &labels, 0.0).unwrap();

    let mut tally = Tally::default();
    let logits = step.logits().unwrap();
    tally.check(
        "logits",
        relative_l2(&logits, &f.logits.data),
        f.logits_envelope,
    );
    let relative =
        |got: f32, want: f32| (f64::from(got) - f64::from(want)).abs() / f64::from(want).abs();
    tally.check("loss", relative(loss, f.loss), f.loss_envelope);
    let recorded_terms = f
        .latent
        .as_ref()
        .map(|latent| &latent.terms)
        .or(f.class_memory.as_ref().map(|c| &c.terms));
    if let Some(recorded) = recorded_terms {
        let got = step.loss_terms().unwrap();
        let names: Vec<&str> = got.iter().map(|t| t.0).collect();
        let want: Vec<&str> = recorded.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, want, "loss terms");
        for ((name, value), (_, want, envelope)) in got.iter().zip(recorded) {
            tally.check(&format!("loss.{name}"), relative(*value, *want), *envelope);
        }
    }
    if let Some(class_memory) = &f.class_memory {
        check_class_memory(
            &mut tally,
            class_memory,
            &f.y,
            &logits,
            &store.read(&gpu, CLASS_MEMORY).unwrap(),
        );
    }

    let gradients = step.gradients().unwrap();
    let got_keys: Vec<&str> = gradients.iter().map(|(k, _)| k.as_str()).collect();
    let want_keys: Vec<&str> = f.grads.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got_keys, want_keys, "parameters with a gradient");
    let largest = gradients
        .iter()
        .map(|(_, g)| max_abs(g))
        .fold(0.0, f32::max);
    // Where the fixture records what PyTorch's float32 runs leave of the cancelled gradients
    // (InfoGCN's nine blocks leave ten times more than one block's 1e-5), the envelope rule.
    let cancelled_bar = f.metadata.get("cancelled_envelope").map_or(1e-5, |e| {
        let envelope: f32 = e.parse().expect("cancelled_envelope is a number");
        ENVELOPE_MULTIPLE as f32 * envelope
    });
    for (key, got) in &gradients {
        if cancelled(key) {
            assert!(
                max_abs(got) <= cancelled_bar * largest,
                "{key}: {} of the largest gradient {largest}, over {cancelled_bar:e} of it",
                max_abs(got)
            );
            continue;
        }
        match f.grads.get(key).unwrap() {
            Reference::Full { grad, envelope } => {
                tally.check(
                    &format!("grad.{key}"),
                    relative_l2(got, &grad.data),
                    *envelope,
                );
            }
            Reference::Sketch { values, envelope } => {
                let errors = sketch_errors(&sketch(key, got), values);
                for (j, (error, bar)) in errors.iter().zip(envelope).enumerate() {
                    tally.check(&format!("grad.{key} sketch[{j}]"), *error, *bar);
                }
            }
        }
    }
    tally.finish(name);
    for (key, want) in &f.running_after.entries {
        let got = store.read(&gpu, key).unwrap();
        let (error, bar) = (relative_l2(&got, &want.data), running_bar(key));
        assert!(error <= bar, "{key} after the step: {error:e} over {bar:e}");
    }
    for (key, want) in &f.batches_tracked_after.entries {
        assert_eq!(
            store.read(&gpu, key).unwrap(),
            [*want as f32],
            "{key} after the step"
        );
    }
}
