//! The datasets and feeders a configuration names, shared by training and evaluation.

use std::path::Path;
use std::sync::Arc;

use super::config::TrainConfig;
use crate::data::feed::{Feeder, NtuFeeder, PysklFeeder, UclaFeeder};
use crate::data::ntu::npz::NpzClips;
use crate::data::subset::{Subset, split_holdout};
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
    let dataset = config.dataset()?;
    // The split sets and feeders, before the held-out part is taken from the training set.
    let whole = |train: Arc<dyn ClipSet>, test, train_feeder, test_feeder: Arc<dyn Feeder>| Data {
        holdout: Arc::new(Subset::new(train.clone(), Vec::new())),
        train,
        test,
        train_feeder,
        val_feeder: test_feeder.clone(),
        test_feeder,
    };
    let pyskl = config.pipeline == PYSKL;
    let data = if dataset == crate::model::ctrgcn::Dataset::Ucla && !pyskl {
        let source = (!config.data.is_empty()).then(|| Path::new(&config.data));
        let splits = UclaSplits::open(source)?;
        let feeder = |train| UclaFeeder {
            frames: config.frames,
            ..UclaFeeder::new(train, stream, config.motion)
        };
        whole(
            Arc::new(splits.train),
            Arc::new(splits.test),
            Arc::new(feeder(true)),
            Arc::new(feeder(false)),
        )
    } else if pyskl {
        let model = config.model()?;
        let (sets, flip) = if dataset == crate::model::ctrgcn::Dataset::Ucla {
            let source = (!config.data.is_empty()).then(|| Path::new(&config.data));
            let splits = UclaSplits::open(source)?;
            let sets: (Arc<dyn ClipSet>, Arc<dyn ClipSet>) =
                (Arc::new(splits.train), Arc::new(splits.test));
            (sets, model.topology.flip().map(<[usize]>::to_vec))
        } else {
            let path = Path::new(&config.data);
            let sets: (Arc<dyn ClipSet>, Arc<dyn ClipSet>) = (
                Arc::new(PackedClips::open(path, Part::Train)?),
                Arc::new(PackedClips::open(path, Part::Test)?),
            );
            (sets, model.topology.flip().map(<[usize]>::to_vec))
        };
        let shaped = |feeder: PysklFeeder| PysklFeeder {
            clip_len: config.frames,
            persons: model.persons,
            ..feeder
        };
        let test = shaped(PysklFeeder {
            clips: config.test_clips,
            ..PysklFeeder::test(model.joints())
        });
        Data {
            val_feeder: Arc::new(PysklFeeder {
                clips: 1,
                ..test.clone()
            }),
            ..whole(
                sets.0,
                sets.1,
                Arc::new(shaped(PysklFeeder::train(model.joints(), flip))),
                Arc::new(test),
            )
        }
    } else {
        let path = Path::new(&config.data);
        let window = config.frames;
        // CTR-GCN's `.npz` layout (what `prepare pku` writes) or our packed file.
        let open = |part| -> anyhow::Result<Arc<dyn ClipSet>> {
            Ok(if path.extension().is_some_and(|e| e == "npz") {
                Arc::new(NpzClips::open(path, part)?)
            } else {
                Arc::new(PackedClips::open(path, part)?)
            })
        };
        whole(
            open(Part::Train)?,
            open(Part::Test)?,
            Arc::new(NtuFeeder {
                window,
                ..NtuFeeder::train(stream, config.motion)
            }),
            Arc::new(NtuFeeder {
                window,
                ..NtuFeeder::test(stream, config.motion)
            }),
        )
    };
    let (train, holdout) = split_holdout(data.train, config.seed, config.holdout);
    Ok(Data {
        train,
        holdout,
        ..data
    })
}
