//! `sfhead import`: a PyTorch state dict into an sfhead checkpoint.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use super::InteropError;
use super::file::TensorFile;
use super::model::{self, Entry, SF_HEADS_PREFIX};
use crate::train::{OutputTensor, TrainConfig, write_tensors};

/// What `torch.nn.DataParallel` puts before every key of the model it wraps.
pub const DATA_PARALLEL_PREFIX: &str = "module.";

/// What an import read and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The network the configuration builds, in words.
    pub model: String,
    /// Tensors written to the checkpoint.
    pub tensors: usize,
    /// Every key of the file carried DataParallel's `module.` prefix, which was removed.
    pub stripped_prefix: bool,
    /// Tensors stored as F64 in the file, rounded to f32.
    pub narrowed: usize,
    /// Keys of training-only (tap) SF-Heads the file does not have (a PyTorch backbone has
    /// none): they take the initial values of the configuration's seed.
    pub initialised: Vec<String>,
    /// Buffers the official model keeps outside its state dict (InfoGCN's class prior), rebuilt
    /// from the configuration's seed.
    pub rebuilt: Vec<String>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} tensors", self.model, self.tensors)?;
        if self.stripped_prefix {
            write!(
                f,
                "\nremoved DataParallel's `{DATA_PARALLEL_PREFIX}` prefix from every key"
            )?;
        }
        if self.narrowed > 0 {
            write!(f, "\nrounded {} float64 tensors to float32", self.narrowed)?;
        }
        if !self.initialised.is_empty() {
            write!(
                f,
                "\nthe file has no SF-Head: its {} training-only tensors (`{SF_HEADS_PREFIX}*`) start from the configuration's initialisation",
                self.initialised.len()
            )?;
        }
        if !self.rebuilt.is_empty() {
            write!(
                f,
                "\nrebuilt from the seed, as the official model does, what its state dict does not hold: {}",
                self.rebuilt.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Reads the PyTorch state dict `state_dict` (safetensors, as `safetensors.torch.save_file`
/// writes `model.state_dict()`), checks it strictly against the model `config` builds (every
/// key present, no other key, shapes equal) and writes it to `out` as an sfhead checkpoint with
/// the metadata of a training checkpoint at epoch 0, without optimiser state (a fresh SGD).
///
/// Two allowances, both reported: DataParallel's `module.` prefix on every key is removed, and
/// with SF-Head as a training-only tap a file without any `sf_heads.*` key (a plain backbone)
/// gets the heads' initial values; InfoGCN's class prior, which the official state dict lacks,
/// is rebuilt from the seed.
pub fn import(
    state_dict: &Path,
    config: &TrainConfig,
    out: &Path,
) -> Result<ImportReport, InteropError> {
    let network = config.model()?;
    let description = model::describe(&network, &config.dataset);
    let entries = model::entries(&network, config.seed);
    let source = TensorFile::read(state_dict)?;
    let file = source.parse()?;
    let keys = file.keys();
    let stripped_prefix =
        !keys.is_empty() && keys.iter().all(|k| k.starts_with(DATA_PARALLEL_PREFIX));
    let model_key = |key| without_prefix(key, stripped_prefix);
    let file_key = |entry: &Entry| {
        if stripped_prefix {
            format!("{DATA_PARALLEL_PREFIX}{}", entry.key)
        } else {
            entry.key.clone()
        }
    };

    let aliases = model::aliases(&network, &entries);
    let known: HashSet<&str> = entries
        .iter()
        .map(|e| e.key.as_str())
        .chain(aliases.iter().map(|(alias, _)| alias.as_str()))
        .collect();
    let extra: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !known.contains(model_key(k)))
        .collect();
    if let Some(first) = extra.first() {
        let hint = if model_key(first).starts_with(SF_HEADS_PREFIX) {
            "; the file has SF-Head tensors: set `sfhead` to `inline` or `tap` and `sfhead_blocks` to match"
        } else {
            ""
        };
        return Err(file
            .fault(
                first,
                format!(
                    "not in the model the configuration builds ({description}); {} such keys{hint}",
                    extra.len()
                ),
            )
            .into());
    }

    let present: HashSet<&str> = keys.iter().map(|k| model_key(k)).collect();
    let fresh_heads =
        model::has_tap_heads(&network) && !present.iter().any(|k| k.starts_with(SF_HEADS_PREFIX));
    let initialised = |e: &Entry| {
        (fresh_heads && e.is_sf_head())
            || (e.is_outside_state_dict() && !present.contains(e.key.as_str()))
    };
    let missing: Vec<&Entry> = entries
        .iter()
        .filter(|e| !initialised(e))
        .filter(|e| !present.contains(e.key.as_str()))
        .collect();
    if let Some(first) = missing.first() {
        return Err(file
            .fault(
                &first.key,
                format!(
                    "missing: the model the configuration builds ({description}) has it; {} keys missing",
                    missing.len()
                ),
            )
            .into());
    }

    let mut tensors = Vec::with_capacity(entries.len());
    let mut report = ImportReport {
        model: description,
        tensors: entries.len(),
        stripped_prefix,
        narrowed: 0,
        initialised: Vec::new(),
        rebuilt: Vec::new(),
    };
    for entry in &entries {
        if initialised(entry) {
            if entry.is_outside_state_dict() {
                report.rebuilt.push(entry.key.clone());
            } else {
                report.initialised.push(entry.key.clone());
            }
            tensors.push(if entry.is_counter() {
                OutputTensor::counter(&entry.key, 0)
            } else {
                OutputTensor::f32(&entry.key, entry.shape.clone(), entry.init.clone())
            });
        } else if entry.is_counter() {
            let count = file.counter(&file_key(entry))?;
            tensors.push(OutputTensor::counter(&entry.key, count));
        } else {
            let (values, narrowed) = file.floats(&file_key(entry), &entry.shape)?;
            report.narrowed += usize::from(narrowed);
            tensors.push(OutputTensor::f32(&entry.key, entry.shape.clone(), values));
        }
    }
    for (alias, key) in &aliases {
        let file_alias = if stripped_prefix {
            format!("{DATA_PARALLEL_PREFIX}{alias}")
        } else {
            alias.clone()
        };
        if !present.contains(alias.as_str()) {
            continue;
        }
        let entry = entries
            .iter()
            .find(|e| e.key == *key)
            .expect("aliases name entries");
        let same = if entry.is_counter() {
            file.counter(&file_alias)? == file.counter(&file_key(entry))?
        } else {
            file.floats(&file_alias, &entry.shape)?.0
                == file.floats(&file_key(entry), &entry.shape)?.0
        };
        if !same {
            return Err(file
                .fault(
                    &file_alias,
                    format!("a second key of `{key}` in the official model, but its values differ"),
                )
                .into());
        }
    }
    let mut metadata = crate::train::checkpoint_metadata(config, 0, f64::NEG_INFINITY, 0);
    if let Some(name) = state_dict.file_name() {
        metadata.insert(
            "imported_from".to_string(),
            name.to_string_lossy().into_owned(),
        );
    }
    write_tensors(out, &tensors, &metadata)?;
    Ok(report)
}

/// `key` without DataParallel's prefix when `stripped`.
fn without_prefix(key: &str, stripped: bool) -> &str {
    match key.strip_prefix(DATA_PARALLEL_PREFIX) {
        Some(rest) if stripped => rest,
        _ => key,
    }
}
