//! The standard NTU benchmarks and CTR-GCN's sample order within each split.

use super::{Edition, SampleName};

/// Performers of the NTU RGB+D 60 cross-subject training set.
const NTU60_TRAIN_PERFORMERS: [u16; 20] = [
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,
];
/// Performers of the NTU RGB+D 120 cross-subject training set: the 20 above and 33 more.
const NTU120_TRAIN_PERFORMERS: [u16; 53] = [
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50,
    52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95,
    97, 98, 100, 103,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benchmark {
    /// NTU RGB+D 60 cross-subject (CTR-GCN's `CS`).
    Ntu60XSub,
    /// NTU RGB+D 60 cross-view (`CV`): cameras 2 and 3 train, camera 1 tests.
    Ntu60XView,
    /// NTU RGB+D 120 cross-subject (`CSub`).
    Ntu120XSub,
    /// NTU RGB+D 120 cross-setup (`CSet`): even setups train, odd setups test.
    Ntu120XSet,
}

/// Indices into a name list: the training and test samples, each in CTR-GCN's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

impl Benchmark {
    pub fn edition(self) -> Edition {
        match self {
            Benchmark::Ntu60XSub | Benchmark::Ntu60XView => Edition::Ntu60,
            Benchmark::Ntu120XSub | Benchmark::Ntu120XSet => Edition::Ntu120,
        }
    }

    /// A short name for titles, e.g. `NTU60 X-Sub`.
    pub fn title(self) -> &'static str {
        match self {
            Benchmark::Ntu60XSub => "NTU60 X-Sub",
            Benchmark::Ntu60XView => "NTU60 X-View",
            Benchmark::Ntu120XSub => "NTU120 X-Sub",
            Benchmark::Ntu120XSet => "NTU120 X-Set",
        }
    }

    /// The file stem of our packed output, e.g. `ntu60_xsub`.
    pub fn stem(self) -> &'static str {
        match self {
            Benchmark::Ntu60XSub => "ntu60_xsub",
            Benchmark::Ntu60XView => "ntu60_xview",
            Benchmark::Ntu120XSub => "ntu120_xsub",
            Benchmark::Ntu120XSet => "ntu120_xset",
        }
    }

    /// The file name CTR-GCN gives this benchmark's `.npz`.
    pub fn npz_file_name(self) -> &'static str {
        match self {
            Benchmark::Ntu60XSub => "NTU60_CS.npz",
            Benchmark::Ntu60XView => "NTU60_CV.npz",
            Benchmark::Ntu120XSub => "NTU120_CSub.npz",
            Benchmark::Ntu120XSet => "NTU120_CSet.npz",
        }
    }

    /// The id this benchmark splits on.
    fn key(self, name: &SampleName) -> u16 {
        match self {
            Benchmark::Ntu60XSub | Benchmark::Ntu120XSub => name.performer,
            Benchmark::Ntu60XView => name.camera,
            Benchmark::Ntu120XSet => name.setup,
        }
    }

    /// The training ids and the test ids, each in the order CTR-GCN visits them.
    fn ids(self) -> (Vec<u16>, Vec<u16>) {
        let complement = |train: &[u16], all: u16| -> Vec<u16> {
            (1..=all).filter(|id| !train.contains(id)).collect()
        };
        match self {
            Benchmark::Ntu60XSub => (
                NTU60_TRAIN_PERFORMERS.to_vec(),
                complement(&NTU60_TRAIN_PERFORMERS, 40),
            ),
            Benchmark::Ntu60XView => (vec![2, 3], vec![1]),
            Benchmark::Ntu120XSub => (
                NTU120_TRAIN_PERFORMERS.to_vec(),
                complement(&NTU120_TRAIN_PERFORMERS, 106),
            ),
            Benchmark::Ntu120XSet => ((2..=32).step_by(2).collect(), (1..=31).step_by(2).collect()),
        }
    }

    /// Splits a name list. Within each side the samples are grouped by id, the groups in the
    /// order of the benchmark's id list and each group in list order (CTR-GCN concatenates
    /// `np.where(ids == id)` over the id list). Samples with an id on neither side are left out.
    pub fn split(self, names: &[SampleName]) -> Split {
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); usize::from(u16::MAX) + 1];
        for (i, name) in names.iter().enumerate() {
            groups[usize::from(self.key(name))].push(i);
        }
        let gather = |ids: &[u16]| -> Vec<usize> {
            ids.iter()
                .flat_map(|&id| groups[usize::from(id)].iter().copied())
                .collect()
        };
        let (train, test) = self.ids();
        Split {
            train: gather(&train),
            test: gather(&test),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<SampleName> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn groups_by_id_not_by_list_position() {
        let list = names(&[
            "S001C001P003R001A001",
            "S001C002P001R001A001",
            "S001C003P002R001A001",
            "S002C001P001R001A001",
            "S002C003P003R001A001",
        ]);
        let xview = Benchmark::Ntu60XView.split(&list);
        assert_eq!(xview.train, [1, 2, 4]);
        assert_eq!(xview.test, [0, 3]);
        let xsub = Benchmark::Ntu60XSub.split(&list);
        assert_eq!(xsub.train, [1, 3, 2]);
        assert_eq!(xsub.test, [0, 4]);
        let xset = Benchmark::Ntu120XSet.split(&list);
        assert_eq!(xset.train, [3, 4]);
        assert_eq!(xset.test, [0, 1, 2]);
    }

    #[test]
    fn ntu120_cross_subject_extends_ntu60() {
        assert_eq!(
            &NTU120_TRAIN_PERFORMERS[..20],
            &NTU60_TRAIN_PERFORMERS[..],
            "the NTU120 list starts with the NTU60 one"
        );
        let (train, test) = Benchmark::Ntu120XSub.ids();
        assert_eq!(train.len() + test.len(), 106);
    }
}
