//! The standard benchmarks, derived from the shipped CTR-GCN name lists.

use sfhead::data::ntu::{Benchmark, Edition, SampleName, shipped_names};

#[test]
fn shipped_lists_have_every_available_sample() {
    let ntu60 = shipped_names(Edition::Ntu60);
    let ntu120 = shipped_names(Edition::Ntu120);
    assert_eq!((ntu60.len(), ntu120.len()), (56_578, 113_945));
    assert!(ntu60.is_sorted() && ntu120.is_sorted());
    let first17: Vec<SampleName> = ntu120.iter().copied().filter(|n| n.setup <= 17).collect();
    assert_eq!(first17, ntu60, "NTU120 restricted to S001–S017 is NTU60");
}

#[test]
fn benchmark_sizes_are_the_published_ones() {
    let ntu60 = shipped_names(Edition::Ntu60);
    let ntu120 = shipped_names(Edition::Ntu120);
    for (benchmark, names, train, test) in [
        (Benchmark::Ntu60XSub, &ntu60, 40_091, 16_487),
        (Benchmark::Ntu60XView, &ntu60, 37_646, 18_932),
        (Benchmark::Ntu120XSub, &ntu120, 63_026, 50_919),
        (Benchmark::Ntu120XSet, &ntu120, 54_468, 59_477),
    ] {
        let split = benchmark.split(names);
        assert_eq!(
            (split.train.len(), split.test.len()),
            (train, test),
            "{}",
            benchmark.title()
        );
        let mut all: Vec<usize> = split.train.iter().chain(&split.test).copied().collect();
        all.sort();
        assert_eq!(
            all,
            (0..names.len()).collect::<Vec<_>>(),
            "{}: a partition",
            benchmark.title()
        );
    }
}

/// Each side is a run of id groups in the benchmark's id order, each group in list order.
fn assert_grouped(names: &[SampleName], side: &[usize], key: fn(&SampleName) -> u16, ids: &[u16]) {
    let mut group = 0;
    for pair in side.windows(2) {
        let (a, b) = (&names[pair[0]], &names[pair[1]]);
        if key(a) == key(b) {
            assert!(pair[0] < pair[1], "a group keeps list order");
        } else {
            let next = ids.iter().position(|&id| id == key(b)).unwrap();
            assert!(next > group, "groups follow the id list");
            group = next;
        }
    }
}

#[test]
fn sides_are_grouped_by_id_in_ctrgcn_order() {
    let ntu60 = shipped_names(Edition::Ntu60);
    let xsub = Benchmark::Ntu60XSub.split(&ntu60);
    let train_ids = [
        1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,
    ];
    assert_grouped(&ntu60, &xsub.train, |n| n.performer, &train_ids);
    let test_ids: Vec<u16> = (1..=40).filter(|p| !train_ids.contains(p)).collect();
    assert_grouped(&ntu60, &xsub.test, |n| n.performer, &test_ids);
    // Not file order: the first training samples are all of performer 1, across setups.
    assert_eq!(ntu60[xsub.train[0]].to_string(), "S001C001P001R001A001");
    assert!(xsub.train[..100].iter().all(|&i| ntu60[i].performer == 1));
    assert!(!xsub.train.is_sorted());

    let xview = Benchmark::Ntu60XView.split(&ntu60);
    assert_grouped(&ntu60, &xview.train, |n| n.camera, &[2, 3]);
    assert!(xview.test.is_sorted(), "one camera: list order");

    let ntu120 = shipped_names(Edition::Ntu120);
    let xset = Benchmark::Ntu120XSet.split(&ntu120);
    let even: Vec<u16> = (2..=32).step_by(2).collect();
    assert_grouped(&ntu120, &xset.train, |n| n.setup, &even);
}
