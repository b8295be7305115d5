//! `sfhead ensemble`: score sets join by sample name whatever their order, sets that differ
//! are refused with what differs, presets weigh their streams, and the weight search on
//! held-out scores beats equal weights when a stream is noise.

use std::path::{Path, PathBuf};

use sfhead::ensemble::{
    DEFAULT_GRID, EnsembleError, Preset, Stream, TopK, Weights, accuracy, fuse, run, search,
};
use sfhead::scores::{Scores, WORK_DIR_HOLDOUT_SCORES};

/// xorshift64*: uniform values in [-1, 1), reproducible without a generator crate's API.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i:03}")).collect()
}

fn set(names: &[String], classes: usize, values: Vec<f32>, labels: Option<Vec<u32>>) -> Scores {
    assert_eq!(names.len() * classes, values.len());
    Scores {
        names: names.to_vec(),
        classes,
        values,
        labels,
        features: None,
    }
}

fn random_set(names: &[String], classes: usize, seed: u64) -> Scores {
    let mut noise = Noise(seed);
    let values = (0..names.len() * classes)
        .map(|_| noise.next() * 3.0)
        .collect();
    set(names, classes, values, None)
}

/// The samples of `scores` in the order `order` (indices into its rows).
fn reordered(scores: &Scores, order: &[usize]) -> Scores {
    Scores {
        names: order.iter().map(|&i| scores.names[i].clone()).collect(),
        classes: scores.classes,
        values: order
            .iter()
            .flat_map(|&i| scores.row(i).iter().copied())
            .collect(),
        labels: scores
            .labels
            .as_ref()
            .map(|l| order.iter().map(|&i| l[i]).collect()),
        features: None,
    }
}

fn stream(name: &str, scores: Scores) -> Stream {
    Stream::new(name, scores)
}

#[test]
fn joining_by_name_equals_fusing_aligned_sets() {
    let n = names(7);
    let labels: Vec<u32> = (0..7).map(|i| (i * 3 % 4) as u32).collect();
    let (a, b, c) = (
        random_set(&n, 4, 1),
        random_set(&n, 4, 2),
        random_set(&n, 4, 3),
    );
    let b = Scores {
        labels: Some(labels.clone()),
        ..b
    };
    let weights = [0.6, 0.6, 0.4];
    // The weighted sum written out on the aligned sets.
    let expected: Vec<f32> = (0..a.values.len())
        .map(|i| 0.6 * a.values[i] + 0.6 * b.values[i] + 0.4 * c.values[i])
        .collect();
    let shuffled_b = reordered(&b, &[3, 0, 6, 1, 5, 2, 4]);
    let shuffled_c = reordered(&c, &[6, 5, 4, 3, 2, 1, 0]);
    let fused = fuse(
        &[
            stream("a", a.clone()),
            stream("b", shuffled_b),
            stream("c", shuffled_c),
        ],
        &weights,
    )
    .unwrap();
    assert_eq!(fused.names, n, "the first set's order");
    assert_eq!(fused.classes, 4);
    for (got, want) in fused.values.iter().zip(&expected) {
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
    assert_eq!(fused.labels, Some(labels), "labels follow their samples");
    // The same with the first set shuffled: its order leads.
    let order = [2, 4, 6, 0, 1, 3, 5];
    let fused2 = fuse(
        &[
            stream("a", reordered(&a, &order)),
            stream("b", b),
            stream("c", c),
        ],
        &weights,
    )
    .unwrap();
    assert_eq!(fused2, reordered(&fused, &order));
}

#[test]
fn sets_with_other_samples_are_refused_naming_them() {
    let n = names(12);
    let a = random_set(&n, 3, 4);
    // b lacks s003 and s010 and has two samples a lacks.
    let mut other: Vec<String> = n
        .iter()
        .filter(|s| *s != "s003" && *s != "s010")
        .cloned()
        .collect();
    other.extend(["x1".to_string(), "x2".to_string()]);
    other.push("x3".to_string());
    let b = random_set(&other, 3, 5);
    let err = fuse(
        &[stream("runs/j/a.pkl", a.clone()), stream("runs/b/b.pkl", b)],
        &[1.0, 1.0],
    )
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "runs/j/a.pkl holds 12 samples, runs/b/b.pkl holds 13",
        "2 samples of runs/j/a.pkl are missing from runs/b/b.pkl: `s003`, `s010`",
        "3 samples of runs/b/b.pkl are missing from runs/j/a.pkl: `x1`, `x2`, `x3`",
    ] {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
    // Long lists are cut short.
    let few = random_set(&n[..4], 3, 6);
    let text = fuse(&[stream("a", a), stream("few", few)], &[1.0, 1.0])
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(
            "8 samples of a are missing from few: `s004`, `s005`, `s006`, `s007`, `s008` and 3 more"
        ),
        "{text}"
    );
}

#[test]
fn duplicates_classes_and_labels_must_agree() {
    let n = names(3);
    let a = random_set(&n, 3, 7);
    let mut twice = a.clone();
    twice.names[2] = "s000".into();
    let err = fuse(
        &[stream("a", a.clone()), stream("twice", twice)],
        &[1.0, 1.0],
    )
    .unwrap_err();
    assert!(
        matches!(&err, EnsembleError::Duplicate { file, name } if file == "twice" && name == "s000"),
        "{err}"
    );
    let wide = random_set(&n, 4, 8);
    let text = fuse(&[stream("a", a.clone()), stream("wide", wide)], &[1.0, 1.0])
        .unwrap_err()
        .to_string();
    assert_eq!(text, "a has 3 classes, wide has 4");
    let with = |labels: Vec<u32>| Scores {
        labels: Some(labels),
        ..a.clone()
    };
    let text = fuse(
        &[
            stream("x", with(vec![0, 1, 2])),
            stream("y", with(vec![0, 2, 2])),
        ],
        &[1.0, 1.0],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(text, "sample `s001` has label 1 in x and 2 in y");
    let text = fuse(&[stream("a", a.clone())], &[1.0, 2.0])
        .unwrap_err()
        .to_string();
    assert_eq!(text, "2 weights for 1 score sets");
    assert!(matches!(
        fuse(&[stream("a", a)], &[f32::NAN]),
        Err(EnsembleError::BadWeight(_))
    ));
    assert!(matches!(fuse(&[], &[]), Err(EnsembleError::NoInputs)));
}

#[test]
fn presets_are_the_published_weights() {
    assert_eq!(Preset::Ctrgcn4.weights(), [0.6, 0.6, 0.4, 0.4]);
    assert_eq!(
        Preset::Ctrgcn4.streams(),
        ["joint", "bone", "joint-motion", "bone-motion"]
    );
    assert_eq!(Preset::Infogcn6.weights(), [1.5, 1.5, 1.5, 1.0, 1.0, 1.0]);
    assert_eq!(
        Preset::Infogcn6.streams(),
        ["k1", "k2", "k8", "k1-motion", "k2-motion", "k8-motion"]
    );
    use clap::ValueEnum;
    assert_eq!(Preset::from_str("ctrgcn4", false), Ok(Preset::Ctrgcn4));
    assert_eq!(Preset::from_str("infogcn6", false), Ok(Preset::Infogcn6));
}

fn write(dir: &Path, file: &str, scores: &Scores) -> PathBuf {
    let path = dir.join(file);
    if file.ends_with(".pkl") {
        scores.write_pickle(&path).unwrap();
    } else {
        scores.write_safetensors(&path).unwrap();
    }
    path
}

#[test]
fn run_applies_a_preset_to_files_and_work_directories() {
    let dir = tempfile::tempdir().unwrap();
    let n = names(9);
    let labels: Vec<u32> = (0..9).map(|i| (i % 5) as u32).collect();
    let sets: Vec<Scores> = (0..4).map(|s| random_set(&n, 5, 10 + s)).collect();
    let joint = Scores {
        labels: Some(labels.clone()),
        ..sets[0].clone()
    };
    // A work directory (its evaluation), our pickle, CTR-GCN-style order reversal, safetensors.
    std::fs::create_dir_all(dir.path().join("j/eval")).unwrap();
    let inputs = vec![
        {
            write(dir.path(), "j/eval/scores.safetensors", &joint);
            dir.path().join("j")
        },
        write(dir.path(), "b.pkl", &sets[1]),
        write(
            dir.path(),
            "jm.pkl",
            &reordered(&sets[2], &[8, 7, 6, 5, 4, 3, 2, 1, 0]),
        ),
        write(dir.path(), "bm.safetensors", &sets[3]),
    ];
    let out = dir.path().join("fused.safetensors");
    let report = run(&inputs, Weights::Preset(Preset::Ctrgcn4), Some(&out)).unwrap();
    let expected: Vec<f32> = (0..sets[0].values.len())
        .map(|i| {
            0.6 * sets[0].values[i]
                + 0.6 * sets[1].values[i]
                + 0.4 * sets[2].values[i]
                + 0.4 * sets[3].values[i]
        })
        .collect();
    for (got, want) in report.fused.values.iter().zip(&expected) {
        assert!((got - want).abs() <= 1e-5, "{got} vs {want}");
    }
    assert_eq!(report.weights, [0.6, 0.6, 0.4, 0.4]);
    // Rows: each stream on the joined labels, then the fusion.
    assert_eq!(report.rows.len(), 5);
    assert!(
        report.rows[0].name.starts_with("joint ("),
        "{}",
        report.rows[0].name
    );
    assert!(report.rows[0].name.contains("eval/scores.safetensors"));
    assert!(report.rows[2].name.starts_with("joint-motion ("));
    let hits = |values: &[f32]| {
        values
            .chunks(5)
            .zip(&labels)
            .filter(|(row, l)| (0..5).all(|c| row[c] < row[**l as usize] || c == **l as usize))
            .count() as f64
            / 9.0
    };
    for (s, set) in sets.iter().enumerate() {
        assert_eq!(
            report.rows[s].accuracy.unwrap().top1,
            hits(&set.values),
            "stream {s}"
        );
        assert_eq!(report.rows[s].weight, Some(Preset::Ctrgcn4.weights()[s]));
    }
    let fusion = report.rows[4].accuracy.unwrap();
    assert_eq!(fusion.top1, hits(&report.fused.values));
    assert_eq!(
        fusion.top5, 1.0,
        "five classes: every label is in the top 5"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Both outputs, read back.
    let pickle = dir.path().join("fused.pkl");
    assert_eq!(report.written, [out.clone(), pickle.clone()]);
    assert_eq!(Scores::read(&out).unwrap(), report.fused);
    assert_eq!(Scores::read(&pickle).unwrap().values, report.fused.values);
    // The table.
    let table = report.to_string();
    assert!(table.lines().next().unwrap().contains("weight"), "{table}");
    assert!(table.contains("0.60") && table.contains("0.40"), "{table}");
    let fusion_line = table.lines().find(|l| l.starts_with("fusion")).unwrap();
    assert!(
        fusion_line.contains(&format!("{:.2}", fusion.top1 * 100.0)),
        "{table}"
    );
    assert!(fusion_line.contains("100.00"), "{table}");
    // A preset for another number of streams.
    let text = run(&inputs[..3], Weights::Preset(Preset::Ctrgcn4), None)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("ctrgcn4 weighs 4 streams, in this order: joint, bone, joint-motion, bone-motion; 3 score sets given"),
        "{text}"
    );
}

#[test]
fn without_labels_there_is_no_accuracy_but_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let n = names(4);
    let inputs = [
        write(dir.path(), "a.pkl", &random_set(&n, 3, 20)),
        write(dir.path(), "b.pkl", &random_set(&n, 3, 21)),
    ];
    let report = run(&inputs, Weights::Equal, None).unwrap();
    assert_eq!(report.weights, [1.0, 1.0]);
    assert!(report.rows.iter().all(|r| r.accuracy.is_none()));
    assert!(report.warnings[0].contains("no input carries labels"));
    assert!(
        report
            .to_string()
            .contains("warning: no input carries labels")
    );
}

/// A labelled set where streams 0 and 1 see the label through noise and stream 2 is louder
/// noise alone.
fn noisy_streams(n: usize, classes: usize, seed: u64) -> Vec<Stream> {
    let samples = names(n);
    let labels: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
    let mut noise = Noise(seed);
    let levels = [(1.0, 1.0), (1.0, 1.2), (0.0, 3.0)];
    levels
        .iter()
        .enumerate()
        .map(|(s, &(signal, loud))| {
            let values = (0..n * classes)
                .map(|j| {
                    let hit = labels[j / classes] as usize == j % classes;
                    signal * f32::from(u8::from(hit)) + loud * noise.next()
                })
                .collect();
            stream(
                &format!("stream{s}"),
                set(&samples, classes, values, Some(labels.clone())),
            )
        })
        .collect()
}

fn top1(streams: &[Stream], weights: &[f32]) -> f64 {
    accuracy(&fuse(streams, weights).unwrap()).unwrap().top1
}

#[test]
fn search_beats_equal_weights_when_a_stream_is_noise() {
    let holdout = noisy_streams(600, 5, 99);
    let weights = search(&holdout, &DEFAULT_GRID).unwrap();
    assert_eq!(weights[2], 0.0, "the noise stream is dropped: {weights:?}");
    assert!(weights[0] > 0.0 && weights[1] > 0.0, "{weights:?}");
    let equal = top1(&holdout, &[1.0; 3]);
    let fitted = top1(&holdout, &weights);
    assert!(fitted > equal + 0.15, "{fitted} vs {equal}");
    // Fitted on the holdout, better on other samples too.
    let test = noisy_streams(600, 5, 7);
    assert!(top1(&test, &weights) > top1(&test, &[1.0; 3]) + 0.15);
    // Deterministic, and the search does not depend on the sample order.
    assert_eq!(search(&holdout, &DEFAULT_GRID).unwrap(), weights);
    let order: Vec<usize> = (0..600).rev().collect();
    let mut shuffled = holdout.clone();
    shuffled[1].scores = reordered(&shuffled[1].scores, &order);
    assert_eq!(search(&shuffled, &DEFAULT_GRID).unwrap(), weights);
    // Where nothing is gained, nothing moves.
    let same: Vec<Stream> = (0..3).map(|_| holdout[0].clone()).collect();
    assert_eq!(search(&same, &DEFAULT_GRID).unwrap(), [1.0; 3]);
}

#[test]
fn search_needs_labels() {
    let n = names(5);
    let held = [
        stream("h1.pkl", random_set(&n, 3, 30)),
        stream("h2.pkl", random_set(&n, 3, 31)),
    ];
    let text = search(&held, &DEFAULT_GRID).unwrap_err().to_string();
    assert!(
        text.contains("no labels") && text.contains("h1.pkl, h2.pkl"),
        "{text}"
    );
}

#[test]
fn run_searches_on_holdout_and_warns_of_leakage() {
    let dir = tempfile::tempdir().unwrap();
    let write_stream = |name: &str, s: &Stream, part: Option<&str>| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        s.scores.write_safetensors_part(&path, part).unwrap();
        path
    };
    let held = noisy_streams(300, 4, 41);
    let test = noisy_streams(200, 4, 42);
    // Held-out samples have other names than the test samples.
    let renamed = |s: &Stream| {
        let mut s = s.clone();
        for name in &mut s.scores.names {
            *name = format!("h{name}");
        }
        s
    };
    let inputs: Vec<PathBuf> = (0..3)
        .map(|s| {
            write_stream(
                &format!("run{s}/eval/scores.safetensors"),
                &test[s],
                Some("test"),
            )
        })
        .collect();
    let holdout: Vec<PathBuf> = (0..3)
        .map(|s| {
            let file = format!("run{s}/{WORK_DIR_HOLDOUT_SCORES}");
            write_stream(&file, &renamed(&held[s]), Some("holdout"));
            dir.path().join(format!("run{s}"))
        })
        .collect();
    let work_dirs: Vec<PathBuf> = (0..3).map(|s| dir.path().join(format!("run{s}"))).collect();
    let report = run(
        &work_dirs,
        Weights::Search {
            holdout: holdout.clone(),
        },
        None,
    )
    .unwrap();
    let fitted = search(&held.iter().map(renamed).collect::<Vec<_>>(), &DEFAULT_GRID).unwrap();
    assert_eq!(
        report.weights, fitted,
        "the weights come from the holdout alone"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let fit = report.holdout.unwrap();
    assert!(fit.fitted > fit.equal, "{fit:?}");
    assert!(report.to_string().contains("held-out top-1"));
    assert_eq!(
        report.rows[3].accuracy.unwrap().top1,
        top1(&test, &fitted),
        "the fusion row is the test set's"
    );
    // Training samples are leakage, and so are the test samples themselves.
    let trained: Vec<PathBuf> = (0..3)
        .map(|s| {
            write_stream(
                &format!("trained{s}.safetensors"),
                &renamed(&held[s]),
                Some("train"),
            )
        })
        .collect();
    let report = run(&work_dirs, Weights::Search { holdout: trained }, None).unwrap();
    let warnings = report.warnings.join("\n");
    assert_eq!(report.warnings.len(), 3, "{warnings}");
    assert!(
        warnings.contains("trained0.safetensors scores training samples"),
        "{warnings}"
    );
    assert!(report.to_string().contains("warning: "), "{report}");
    let report = run(
        &work_dirs,
        Weights::Search {
            holdout: inputs.clone(),
        },
        None,
    )
    .unwrap();
    let warnings = report.warnings.join("\n");
    assert_eq!(report.warnings.len(), 6, "{warnings}");
    assert!(
        warnings.contains("run2/eval/scores.safetensors scores the test set"),
        "{warnings}"
    );
    assert!(
        warnings.contains("shares 200 of its 200 samples"),
        "{warnings}"
    );
    // One held-out set per stream.
    let text = run(
        &work_dirs,
        Weights::Search {
            holdout: holdout[..2].to_vec(),
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("2 held-out score sets for 3 streams"),
        "{text}"
    );
    // A work directory without held-out scores says how to make them.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    let mut missing = holdout.clone();
    missing[2] = bare;
    let text = run(&work_dirs, Weights::Search { holdout: missing }, None)
        .unwrap_err()
        .to_string();
    assert!(text.contains("sfhead eval --part holdout"), "{text}");
}

#[test]
fn accuracy_counts_top1_and_top5() {
    let n = names(3);
    let values = vec![
        0.1, 0.9, 0.0, 0.0, 0.0, 0.0, // label 1 is first
        0.6, 0.5, 0.4, 0.3, 0.2, 0.1, // label 4 is fifth
        0.6, 0.5, 0.4, 0.3, 0.2, 0.1, // label 5 is sixth
    ];
    let scores = set(&n, 6, values, Some(vec![1, 4, 5]));
    let a = accuracy(&scores).unwrap();
    assert_eq!((a.top1, a.top5), (1.0 / 3.0, 2.0 / 3.0));
    assert_eq!(
        accuracy(&Scores {
            labels: None,
            ..scores
        }),
        None
    );
    assert_eq!(TopK::of(&[], &[], 6), None);
}
