use super::clip::UclaClip;
use super::source::read_clips;
use crate::data::{DataError, InMemoryClips, Place};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// CTR-GCN's `val_label` list (file name, length, label): the order in which the test clips are
/// evaluated and their scores saved.
const TEST_ORDER_TSV: &str = include_str!("../../../assets/nw-ucla-val_label.tsv");
const TEST_ORDER_NAME: &str = "assets/nw-ucla-val_label.tsv";

/// The bundled `all_sqe.tar.gz` (the default dataset of `sfhead train`), resolved in the crate
/// directory this program was built from.
pub fn bundled_archive() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/all_sqe.tar.gz")
}

/// NW-UCLA's cross-view split: train = views 1 and 2, test = view 3.
#[derive(Debug, Clone, PartialEq)]
pub struct UclaSplits {
    /// In name order.
    pub train: InMemoryClips,
    /// In CTR-GCN's `val_label` order; view-3 clips missing from that list follow in name order.
    pub test: InMemoryClips,
}

impl UclaSplits {
    /// Reads `source` (an `all_sqe` directory or tar.gz), or the bundled archive when `None`.
    /// Fails on the first bad clip; [`read_clips`] goes on past bad clips instead.
    pub fn open(source: Option<&Path>) -> Result<Self, DataError> {
        let source = source.map_or_else(bundled_archive, Path::to_path_buf);
        let clips = read_clips(&source, || {})?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_clips(clips)
    }

    /// Splits clips by view and puts each split in its order; a clip name seen twice is an error.
    pub fn from_clips(mut clips: Vec<UclaClip>) -> Result<Self, DataError> {
        let order = test_order()?;
        clips.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = clips.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(DataError::new(
                &pair[1].name,
                Place::File,
                "a second clip with this name",
            ));
        }
        let (mut test, train): (Vec<_>, Vec<_>) =
            clips.into_iter().partition(|c| c.fields.view == 3);
        let unlisted = order.len();
        test.sort_by(|a, b| {
            let rank = |c: &UclaClip| order.get(c.name.as_str()).copied().unwrap_or(unlisted);
            rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name))
        });
        Ok(Self {
            train: collect(train),
            test: collect(test),
        })
    }
}

fn collect(clips: Vec<UclaClip>) -> InMemoryClips {
    let mut set = InMemoryClips::new();
    for clip in clips {
        set.push(clip.name, clip.fields.label, clip.skeleton);
    }
    set
}

/// The position of each name in the test order.
fn test_order() -> Result<HashMap<&'static str, usize>, DataError> {
    let mut lines = TEST_ORDER_TSV.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.starts_with("file_name\t") => {}
        _ => {
            return Err(DataError::new(
                TEST_ORDER_NAME,
                Place::Line(1),
                "expected the header `file_name<TAB>length<TAB>label`",
            ));
        }
    }
    let mut order = HashMap::new();
    for (i, line) in lines {
        let name = line.split('\t').next().unwrap_or_default();
        if name.is_empty() || order.insert(name, order.len()).is_some() {
            return Err(DataError::new(
                TEST_ORDER_NAME,
                Place::Line(i + 1),
                "expected a new clip name",
            ));
        }
    }
    Ok(order)
}
