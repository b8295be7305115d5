//! Class names of each dataset and the ambiguous-action groups of the SF-Head paper's Fig. 3.

use crate::model::ctrgcn::Dataset;

const NTU120: &str = include_str!("../../assets/classes/ntu120.txt");
const UCLA: &str = include_str!("../../assets/classes/ucla.txt");
const PKU: &str = include_str!("../../assets/classes/pku.txt");

/// The dataset named by a work directory's `dataset` key.
pub fn parse_dataset(key: &str) -> Option<Dataset> {
    match key {
        "ntu60" => Some(Dataset::Ntu60),
        "ntu120" => Some(Dataset::Ntu120),
        "ucla" => Some(Dataset::Ucla),
        "pku" => Some(Dataset::Pku),
        _ => None,
    }
}

/// The class names of `dataset`, in label order. NTU60's classes are the first 60 of NTU120.
pub fn class_names(dataset: Dataset) -> Vec<&'static str> {
    let (text, count) = match dataset {
        Dataset::Ntu60 => (NTU120, 60),
        Dataset::Ntu120 => (NTU120, 120),
        Dataset::Ucla => (UCLA, 10),
        Dataset::Pku => (PKU, 51),
    };
    text.lines().take(count).collect()
}

pub fn is_ntu(dataset: Dataset) -> bool {
    matches!(dataset, Dataset::Ntu60 | Dataset::Ntu120)
}

/// The 9 groups of 23 ambiguous NTU actions of Fig. 3, as 0-based NTU labels in the paper's
/// order. All of them lie among NTU60's classes, so they apply to both NTU datasets.
pub const AMBIGUOUS_GROUPS: [&[usize]; 9] = [
    &[11, 29, 28, 10], // writing, typing on a keyboard, playing with phone, reading
    &[26, 25],         // jump up, hopping
    &[9, 33, 12],      // clapping, rub two hands together, tear up paper
    &[14, 13],         // take off jacket, wear jacket
    &[35, 34],         // shake head, nod head/bow
    &[8, 7],           // standing up, sitting down
    &[37, 31, 3, 22],  // salute, taking a selfie, brushing hair, hand waving
    &[16, 15],         // take off a shoe, wear a shoe
    &[17, 18],         // wear on glasses, take off glasses
];

/// The Fig. 3 actions as (group number from 1, label), in the paper's order.
pub fn ambiguous_actions() -> impl Iterator<Item = (usize, usize)> {
    AMBIGUOUS_GROUPS
        .iter()
        .enumerate()
        .flat_map(|(g, labels)| labels.iter().map(move |&l| (g + 1, l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dataset_has_its_class_count() {
        for dataset in [Dataset::Ntu60, Dataset::Ntu120, Dataset::Ucla, Dataset::Pku] {
            let names = class_names(dataset);
            assert_eq!(names.len(), dataset.config().classes, "{dataset:?}");
            assert!(names.iter().all(|n| !n.trim().is_empty()), "{dataset:?}");
        }
    }

    #[test]
    fn the_groups_hold_the_papers_23_actions() {
        let names = class_names(Dataset::Ntu60);
        let picked: Vec<&str> = ambiguous_actions().map(|(_, l)| names[l]).collect();
        assert_eq!(picked.len(), 23);
        assert_eq!(picked[0], "writing");
        assert_eq!(picked[22], "take off glasses");
    }
}
