//! `sfhead export`: an sfhead checkpoint as a plain PyTorch state dict.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use super::InteropError;
use super::file::TensorFile;
use super::model::{self, SF_HEADS_PREFIX};
use crate::model::ctrgcn::Placement;
use crate::train::{OutputTensor, TrainConfig, write_tensors};

/// Prefix of optimiser state in checkpoints.
const OPTIMISER_PREFIX: &str = "optim.";
/// The checkpoint metadata entry holding the training configuration.
const CONFIG_KEY: &str = "__metadata__.config";

/// What an export wrote and left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The network of the checkpoint, in words.
    pub model: String,
    /// Tensors written: the PyTorch model's state dict.
    pub tensors: usize,
    /// Optimiser tensors (`optim.*`) left out.
    pub dropped_optimiser: usize,
    /// Tensors of training-only (tap) SF-Heads left out: the exported network is the plain
    /// backbone.
    pub dropped_sf_heads: usize,
    /// Tensors of in-line SF-Heads kept: the PyTorch counterpart has the heads in-line.
    pub kept_sf_heads: usize,
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} tensors", self.model, self.tensors)?;
        if self.dropped_optimiser > 0 {
            write!(
                f,
                "\nleft out {} optimiser tensors (`{OPTIMISER_PREFIX}*`)",
                self.dropped_optimiser
            )?;
        }
        if self.dropped_sf_heads > 0 {
            write!(
                f,
                "\nleft out the {} tensors of the training-only SF-Heads (`{SF_HEADS_PREFIX}*`): the exported network is the plain backbone",
                self.dropped_sf_heads
            )?;
        }
        if self.kept_sf_heads > 0 {
            write!(
                f,
                "\nkept the {} tensors of the in-line SF-Heads (`{SF_HEADS_PREFIX}*`): load it into CTR-GCN with SF-Head in-line",
                self.kept_sf_heads
            )?;
        }
        Ok(())
    }
}

/// Writes the model tensors of the sfhead checkpoint `checkpoint` to `out` as a plain state
/// dict: exactly the keys, shapes and dtypes of the PyTorch model's `state_dict()` (f32
/// parameters and buffers, int64 scalar `num_batches_tracked`). The checkpoint's configuration
/// (metadata `config`) says which model that is; every one of its tensors must be present.
/// Optimiser state is left out, and so are training-only (tap) SF-Heads; in-line heads are kept.
/// The metadata names the PyTorch counterpart: `dataset`, `sfhead` (`off` or `inline`) and, in
/// line, `sfhead_blocks` and `sfhead_groups`.
pub fn export(checkpoint: &Path, out: &Path) -> Result<ExportReport, InteropError> {
    let source = TensorFile::read(checkpoint)?;
    let file = source.parse()?;
    let text = file.metadata.get("config").ok_or_else(|| {
        file.fault(
            CONFIG_KEY,
            "missing: not an sfhead checkpoint (its training configuration names the model)",
        )
    })?;
    let config = TrainConfig::from_toml(text).map_err(|e| file.fault(CONFIG_KEY, e.to_string()))?;
    let network = config
        .model()
        .map_err(|e| file.fault(CONFIG_KEY, e.to_string()))?;
    let description = model::describe(&network, &config.dataset);
    let entries = model::entries(&network, config.seed);

    let aliases = model::aliases(&network, &entries);
    let known: HashSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let keys = file.keys();
    if let Some(unknown) = keys
        .iter()
        .find(|k| !known.contains(*k) && !k.starts_with(OPTIMISER_PREFIX))
    {
        return Err(file
            .fault(
                unknown,
                format!("not a tensor of the checkpoint's model ({description})"),
            )
            .into());
    }
    let tap = model::has_tap_heads(&network);
    let mut report = ExportReport {
        model: description,
        tensors: 0,
        dropped_optimiser: keys
            .iter()
            .filter(|k| k.starts_with(OPTIMISER_PREFIX))
            .count(),
        dropped_sf_heads: 0,
        kept_sf_heads: 0,
    };
    let mut tensors = Vec::with_capacity(entries.len());
    for entry in &entries {
        if tap && entry.is_sf_head() {
            report.dropped_sf_heads += 1;
            continue;
        }
        if entry.is_outside_state_dict() {
            continue;
        }
        report.kept_sf_heads += usize::from(entry.is_sf_head());
        tensors.push(if entry.is_counter() {
            OutputTensor::counter(&entry.key, file.counter(&entry.key)?)
        } else {
            let (values, _) = file.floats(&entry.key, &entry.shape)?;
            OutputTensor::f32(&entry.key, entry.shape.clone(), values)
        });
    }
    for (alias, key) in &aliases {
        let original = tensors
            .iter()
            .find(|t| t.name() == key)
            .expect("every aliased entry is exported");
        tensors.push(original.renamed(alias));
    }
    report.tensors = tensors.len();

    let mut metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("model".to_string(), config.model.clone()),
        ("dataset".to_string(), config.dataset.clone()),
        ("sfhead".to_string(), "off".to_string()),
    ]);
    if let Some(options) = network
        .sf_head
        .as_ref()
        .filter(|o| o.placement == Placement::Inline)
    {
        metadata.insert("sfhead".into(), "inline".into());
        metadata.insert("sfhead_blocks".into(), model::block_list(&options.blocks));
        metadata.insert("sfhead_groups".into(), options.groups.to_string());
    }
    if let Some(epoch) = file.metadata.get("epoch") {
        metadata.insert("epoch".into(), epoch.clone());
    }
    write_tensors(out, &tensors, &metadata)?;
    Ok(report)
}
