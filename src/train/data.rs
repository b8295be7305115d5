//! The datasets and feeders a configuration names, shared by training and evaluation.

use std::path::Path;
use std::sync::Arc;

use super::config::TrainConfig;
use crate::data::feed::{Feeder, NtuFeeder, PysklFeeder, UclaFeeder};
use crate::data::ntu::npz::NpzClips;
use crate::data::subset::split_holdout;
use crate::data::ucla::UclaSplits;
use crate::data::{ClipSet, PackedClips, Part};

/// The parts of a dataset a run uses, with the feeders of training and of testing.
pub struct Data {
    /// The training set less the held-out part.
    pub train: Arc<dyn ClipSet>,
    /// The held-out part of the training set (empty unless `holdout` > 0).
    pub holdout: Arc<dyn ClipSet>,
    pub test: Arc<dyn ClipSet>,
    pub train_feeder: Arc<dyn Feeder>,
    /// The deterministic feeder: for the test set and the held-out part.
    pub test_feeder: Arc<dyn Feeder>,
    /// The feeder of the evaluation after each training epoch: the test feeder with one clip
    /// per sample (pyskl's validation pipeline) where testing takes several.
    pub val_feeder: Arc<dyn Feeder>,
}

/// The `pipeline` value of ProtoGCN's pyskl-style data pipeline (`docs/pyskl.md`).
pub const PYSKL: &str = "pyskl";

/// Opens the data `config` names (its `data` path, or the bundled NW-UCLA set).
pub fn open(config: &TrainConfig) -> anyhow::Result<Data> {
    let stream = config.stream()?;
    let ucla = config.dataset()? == crate::model::ctrgcn::Dataset::Ucla;
    // The split sets, before the held-out part is taken from the training set.
    let (train, test): (Arc<dyn ClipSet>, Arc<dyn ClipSet>) = if ucla {
        let source = (!config.data.is_empty()).then(|| Path::new(&config.data));
        let splits = UclaSplits::open(source)?;
        (Arc::new(splits.train), Arc::new(splits.test))
    } else {
        let path = Path::new(&config.data);
        // CTR-GCN's `.npz` layout (what `prepare pku` writes) or our packed file.
        let open = |part| -> anyhow::Result<Arc<dyn ClipSet>> {
            Ok(if path.extension().is_some_and(|e| e == "npz") {
                Arc::new(NpzClips::open(path, part)?)
            } else {
                Arc::new(PackedClips::open(path, part)?)
            })
        };
        (open(Part::Train)?, open(Part::Test)?)
    };
    let (train_feeder, test_feeder, val_feeder): (Arc<dyn Feeder>, Arc<dyn Feeder>, _) =
        if config.pipeline == PYSKL {
            let model = config.model()?;
            let shaped = |feeder: PysklFeeder| PysklFeeder {
                clip_len: config.frames,
                persons: model.persons,
                ..feeder
            };
            let flip = model.topology.flip().map(<[usize]>::to_vec);
            let test = shaped(PysklFeeder::test(model.joints()));
            (
                Arc::new(shaped(PysklFeeder::train(model.joints(), flip))),
                Arc::new(PysklFeeder {
                    clips: config.test_clips,
                    ..test.clone()
                }),
                Some(Arc::new(PysklFeeder { clips: 1, ..test }) as Arc<dyn Feeder>),
            )
        } else if ucla {
            let feeder = |train| UclaFeeder {
                frames: config.frames,
                ..UclaFeeder::new(train, stream, config.motion)
            };
            (Arc::new(feeder(true)), Arc::new(feeder(false)), None)
        } else {
            let window = config.frames;
            (
                Arc::new(NtuFeeder {
                    window,
                    ..NtuFeeder::train(stream, config.motion)
                }),
                Arc::new(NtuFeeder {
                    window,
                    ..NtuFeeder::test(stream, config.motion)
                }),
                None,
            )
        };
    let (train, holdout) = split_holdout(train, config.seed, config.holdout);
    Ok(Data {
        train,
        holdout,
        test,
        train_feeder,
        val_feeder: val_feeder.unwrap_or_else(|| test_feeder.clone()),
        test_feeder,
    })
}
