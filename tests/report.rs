//! `sfhead report` on synthetic work directories: the tables' numbers against accuracies
//! computed here, the Fig. 3 groups, the pictures' PNG structure and size, refusal of runs that
//! cannot be compared, clear errors for bad logs, and a deterministic t-SNE that separates
//! clustered features.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use sfhead::report::tsne::{TsneOptions, tsne};
use sfhead::report::{ReportError, report};
use sfhead::scores::{Features, Scores};
use sfhead::train::EpochLog;

/// What a synthetic work directory holds.
struct Synthetic {
    dataset: &'static str,
    classes: usize,
    per_class: usize,
    epochs: usize,
    /// The top-1 the scores reach on average.
    skill: f64,
    seed: u64,
    /// Width of the features; none when 0.
    features: usize,
    labels: bool,
    /// SF-Head's loss terms in the log.
    sf_head: bool,
}

impl Synthetic {
    fn new(dataset: &'static str, classes: usize, per_class: usize) -> Self {
        Self {
            dataset,
            classes,
            per_class,
            epochs: 8,
            skill: 0.7,
            seed: 1,
            features: 0,
            labels: true,
            sf_head: false,
        }
    }

    fn samples(&self) -> usize {
        self.classes * self.per_class
    }

    fn labels(&self) -> Vec<u32> {
        // Classes interleaved, as a test set in recording order is.
        (0..self.samples())
            .map(|i| (i % self.classes) as u32)
            .collect()
    }

    fn names(&self) -> Vec<String> {
        (0..self.samples()).map(|i| format!("s{i:05}")).collect()
    }

    /// Scores whose largest entry is the true class for about `skill` of each class (more for
    /// some classes than others) and a neighbouring class otherwise.
    fn scores(&self) -> Scores {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let k = self.classes;
        let labels = self.labels();
        let mut values = Vec::with_capacity(labels.len() * k);
        for &label in &labels {
            let c = label as usize;
            let skill = (self.skill * (0.7 + 0.6 * ((c * 37) % k) as f64 / k as f64)).min(1.0);
            let predicted = if rng.random::<f64>() < skill {
                c
            } else {
                (c + 1 + rng.random_range(0..3)) % k
            };
            values.extend(
                (0..k).map(|j| rng.random::<f32>() + if j == predicted { 4.0 } else { 0.0 }),
            );
        }
        let features = (self.features > 0).then(|| clustered(&labels, self.features, self.seed));
        Scores {
            names: self.names(),
            classes: k,
            values,
            labels: self.labels.then_some(labels),
            features,
        }
    }

    fn logs(&self) -> Vec<EpochLog> {
        (0..self.epochs)
            .map(|e| {
                let t = e as f64 / self.epochs as f64;
                let ce = 3.5 * (-3.0 * t).exp() + 0.2;
                let mut terms = BTreeMap::from([("ce".to_string(), ce)]);
                let mut loss = ce;
                if self.sf_head {
                    let con = 0.4 * (-2.0 * t).exp() + 0.05;
                    let red = 0.02 * (-t).exp() + 0.004;
                    terms.insert("con".to_string(), con);
                    terms.insert("red".to_string(), red);
                    loss += 0.1 * con + 0.1 * red;
                }
                EpochLog {
                    epoch: e,
                    lr: 0.1,
                    train_loss: loss,
                    loss_terms: terms,
                    batch_losses: vec![loss as f32; 3],
                    top1: self.skill * (1.0 - (-4.0 * t).exp()),
                    top5: (self.skill + 0.2).min(1.0) * (1.0 - (-5.0 * t).exp()),
                    test_samples: self.samples(),
                    seconds: 12.5,
                    wall_time: 1.7e9 + 12.5 * (e + 1) as f64,
                }
            })
            .collect()
    }

    /// Writes the work directory and returns its scores.
    fn write(&self, dir: &Path) -> Scores {
        std::fs::create_dir_all(dir).unwrap();
        let config = format!(
            "dataset = \"{}\"\nepochs = {}\nseed = 1\n",
            self.dataset, self.epochs
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log: String = self
            .logs()
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        std::fs::write(dir.join("log.jsonl"), log).unwrap();
        let scores = self.scores();
        scores
            .write_safetensors(&dir.join("best_scores.safetensors"))
            .unwrap();
        scores
    }
}

/// Features drawn around a centre per class, the centres six times as spread as the noise.
fn clustered(labels: &[u32], width: usize, seed: u64) -> Features {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let centres: Vec<f32> = (0..classes * width)
        .map(|_| 6.0 * normal.sample(&mut rng) as f32)
        .collect();
    let values = labels
        .iter()
        .flat_map(|&l| {
            let c = &centres[l as usize * width..(l as usize + 1) * width];
            c.iter()
                .map(|&x| x + normal.sample(&mut rng) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    Features { width, values }
}

/// Per-class (samples, top-1 hits), computed here from the scores.
fn class_hits(scores: &Scores) -> Vec<(usize, usize)> {
    let labels = scores.labels.as_ref().unwrap();
    let mut out = vec![(0, 0); scores.classes];
    for (i, &label) in labels.iter().enumerate() {
        let row = scores.row(i);
        let best = (0..scores.classes)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            .unwrap();
        out[label as usize].0 += 1;
        out[label as usize].1 += usize::from(best == label as usize);
    }
    out
}

/// The rows of the Markdown tables in `text` whose first cell is a number, split into cells.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells[0].parse::<usize>().is_ok())
        .collect()
}

fn number(cell: &str) -> f64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("`{cell}` is not a number"))
}

/// The size of a PNG decoded in full (an independent decoder checks its structure and CRCs),
/// and the share of its pixels that are not white.
fn decode_png(path: &Path) -> ((u32, u32), f64) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight),
        "{}",
        path.display()
    );
    let pixels = &pixels[..info.buffer_size()];
    let inked = pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count();
    (
        (info.width, info.height),
        inked as f64 / (info.width * info.height) as f64,
    )
}

fn run_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

#[test]
fn per_class_table_matches_accuracies_computed_here() {
    let root = tempfile::tempdir().unwrap();
    let dir = run_dir(root.path(), "ucla-base");
    let synthetic = Synthetic::new("ucla", 10, 30);
    let scores = synthetic.write(&dir);
    let out = root.path().join("out");
    let summary = report(std::slice::from_ref(&dir), &out).unwrap();
    for name in ["curves.png", "confusion.png", "per_class.md"] {
        assert!(
            summary.written.contains(&out.join(name)),
            "{name}: {summary:?}"
        );
    }
    assert!(
        !out.join("groups.md").exists(),
        "NW-UCLA has no Fig. 3 groups"
    );
    assert!(summary.notes.iter().any(|n| n.contains("groups.md")));
    assert!(summary.notes.iter().any(|n| n.contains("no features")));

    let text = std::fs::read_to_string(out.join("per_class.md")).unwrap();
    let hits = class_hits(&scores);
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 10);
    let names = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/classes/ucla.txt"),
    )
    .unwrap();
    for (c, (row, name)) in rows.iter().zip(names.lines()).enumerate() {
        let (n, h) = hits[c];
        assert_eq!(row[0], (c + 1).to_string());
        assert_eq!(row[1], name);
        assert_eq!(row[2], n.to_string());
        let expected = 100.0 * h as f64 / n as f64;
        assert!(
            (number(&row[3]) - expected).abs() < 0.006,
            "class {c}: {row:?} vs {expected}"
        );
    }
    // The overall line: top-1, top-5 and mean class accuracy.
    let overall = text
        .lines()
        .find(|l| l.starts_with("| ucla-base |"))
        .expect("an overall row");
    let cells: Vec<f64> = overall
        .split('|')
        .skip(2)
        .filter(|c| !c.trim().is_empty())
        .map(|c| number(c.trim()))
        .collect();
    let total: usize = hits.iter().map(|h| h.1).sum();
    let top1 = 100.0 * total as f64 / scores.len() as f64;
    let mean = hits.iter().map(|&(n, h)| h as f64 / n as f64).sum::<f64>() * 10.0;
    let labels = scores.labels.as_ref().unwrap();
    let top5 = (0..scores.len())
        .filter(|&i| {
            let row = scores.row(i);
            let target = row[labels[i] as usize];
            row.iter().filter(|&&v| v > target).count() < 5
        })
        .count() as f64
        * 100.0
        / scores.len() as f64;
    for (got, want) in cells.iter().zip([top1, top5, mean]) {
        assert!(
            (got - want).abs() < 0.006,
            "{overall} vs {top1} {top5} {mean}"
        );
    }
}

#[test]
fn groups_table_names_the_fig3_actions_and_their_differences() {
    // Fig. 3's 23 actions as the paper names them, group by group.
    const FIG3: [&[&str]; 9] = [
        &[
            "writing",
            "typing on a keyboard",
            "playing with phone",
            "reading",
        ],
        &["jump up", "hopping"],
        &["clapping", "rub two hands together", "tear up paper"],
        &["take off jacket", "wear jacket"],
        &["shake head", "nod head / bow"],
        &["standing up", "sitting down"],
        &["salute", "taking a selfie", "brushing hair", "hand waving"],
        &["take off a shoe", "wear a shoe"],
        &["wear on glasses", "take off glasses"],
    ];
    let root = tempfile::tempdir().unwrap();
    let base = Synthetic::new("ntu120", 120, 4);
    let head = Synthetic {
        seed: 2,
        skill: 0.8,
        sf_head: true,
        ..Synthetic::new("ntu120", 120, 4)
    };
    let (a, b) = (run_dir(root.path(), "base"), run_dir(root.path(), "sfhead"));
    let (sa, sb) = (base.write(&a), head.write(&b));
    let out = root.path().join("out");
    let summary = report(&[a, b], &out).unwrap();
    assert!(summary.written.contains(&out.join("compare.png")));
    let text = std::fs::read_to_string(out.join("groups.md")).unwrap();
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 23, "{text}");
    let squeeze = |s: &str| s.replace(' ', "");
    let (ha, hb) = (class_hits(&sa), class_hits(&sb));
    let mut row = rows.iter();
    for (g, actions) in FIG3.iter().enumerate() {
        for action in *actions {
            let cells = row.next().unwrap();
            assert_eq!(cells[0], (g + 1).to_string(), "{cells:?}");
            assert!(
                squeeze(&cells[2]).starts_with(&squeeze(action)),
                "`{action}` in group {}: {cells:?}",
                g + 1
            );
            let c: usize = cells[1].parse::<usize>().unwrap() - 1;
            let acc = |h: &[(usize, usize)]| 100.0 * h[c].1 as f64 / h[c].0 as f64;
            assert!((number(&cells[4]) - acc(&ha)).abs() < 0.006, "{cells:?}");
            assert!((number(&cells[5]) - acc(&hb)).abs() < 0.006, "{cells:?}");
            assert!(
                (number(&cells[6]) - (acc(&hb) - acc(&ha))).abs() < 0.011,
                "{cells:?}"
            );
        }
    }

    // compare.md lists every class, its differences in descending order.
    let compare = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let rows = table_rows(&compare);
    assert_eq!(rows.len(), 120);
    let deltas: Vec<f64> = rows.iter().map(|r| number(&r[6])).collect();
    assert!(deltas.windows(2).all(|w| w[0] >= w[1]), "{deltas:?}");
}

#[test]
fn pictures_are_pngs_of_the_documented_sizes_and_tsne_is_reproducible() {
    let root = tempfile::tempdir().unwrap();
    let base = Synthetic {
        features: 24,
        ..Synthetic::new("ucla", 10, 25)
    };
    let head = Synthetic {
        seed: 5,
        skill: 0.85,
        sf_head: true,
        ..base
    };
    let (a, b) = (run_dir(root.path(), "base"), run_dir(root.path(), "sfhead"));
    base.write(&a);
    head.write(&b);
    let runs = [a, b];
    let out = root.path().join("out");
    let summary = report(&runs, &out).unwrap();
    assert_eq!(
        summary.notes.len(),
        1,
        "only groups.md is left out: {:?}",
        summary.notes
    );
    // Sizes as docs/report.md gives them for two runs of 10 classes; the curves' legend has
    // three rows (loss of the first run; loss, ce, con and red of the second).
    let expected = [
        ("curves.png", (1800, 640 + 3 * 30 + 20)),
        ("confusion.png", (2710, 1070)),
        ("compare.png", (1900, 900)),
        ("tsne.png", (2230, 970)),
    ];
    for (name, size) in expected {
        let (got, inked) = decode_png(&out.join(name));
        assert_eq!(got, size, "{name}");
        assert!(inked > 0.01, "{name} is nearly blank: {inked}");
    }
    let again = root.path().join("again");
    report(&runs, &again).unwrap();
    for name in ["tsne.png", "curves.png", "confusion.png", "compare.png"] {
        let first = std::fs::read(out.join(name)).unwrap();
        assert!(
            first == std::fs::read(again.join(name)).unwrap(),
            "{name} differs between runs"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn tsne_separates_clear_clusters_and_follows_its_seed() {
    let labels: Vec<u32> = (0..300).map(|i| (i % 6) as u32).collect();
    let features = clustered(&labels, 80, 9);
    let data: Vec<f64> = features.values.iter().map(|&x| f64::from(x)).collect();
    let options = TsneOptions::default();
    let map = tsne(&data, 80, &options);
    assert_eq!(map, tsne(&data, 80, &options), "same seed, same map");
    let other = tsne(&data, 80, &TsneOptions { seed: 1, ..options });
    assert_ne!(map, other, "the seed sets the initial positions");
    for m in [&map, &other] {
        // The nearest neighbour of almost every point is of its class.
        let agree = (0..m.len())
            .filter(|&i| {
                let nearest = (0..m.len())
                    .filter(|&j| j != i)
                    .min_by(|&x, &y| {
                        let d =
                            |j: usize| (m[i][0] - m[j][0]).powi(2) + (m[i][1] - m[j][1]).powi(2);
                        d(x).total_cmp(&d(y))
                    })
                    .unwrap();
                labels[nearest] == labels[i]
            })
            .count();
        assert!(
            agree as f64 / m.len() as f64 > 0.9,
            "{agree} of {}",
            m.len()
        );
    }
}

#[test]
fn runs_that_differ_in_samples_or_dataset_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let a = run_dir(root.path(), "a");
    Synthetic::new("ucla", 10, 5).write(&a);
    let out = root.path().join("out");

    // One sample renamed.
    let b = run_dir(root.path(), "b");
    let mut scores = Synthetic::new("ucla", 10, 5).write(&b);
    scores.names[7] = "elsewhere".to_string();
    scores
        .write_safetensors(&b.join("best_scores.safetensors"))
        .unwrap();
    let err = report(&[a.clone(), b.clone()], &out).unwrap_err();
    assert!(matches!(err, ReportError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("s00007"), "{err}");

    // One sample fewer.
    let c = run_dir(root.path(), "c");
    let mut scores = Synthetic::new("ucla", 10, 5).write(&c);
    scores.names.pop();
    scores.values.truncate(scores.names.len() * 10);
    scores.labels.as_mut().unwrap().pop();
    scores
        .write_safetensors(&c.join("best_scores.safetensors"))
        .unwrap();
    let err = report(&[a.clone(), c], &out).unwrap_err();
    assert!(err.to_string().contains("50 and 49"), "{err}");

    // Another dataset.
    let d = run_dir(root.path(), "d");
    Synthetic::new("ntu60", 60, 2).write(&d);
    let err = report(&[a.clone(), d], &out).unwrap_err();
    assert!(err.to_string().contains("ucla and ntu60"), "{err}");
    assert!(
        !out.exists(),
        "nothing is written for runs that cannot be compared"
    );

    // The same samples in another order are joined by name.
    let e = run_dir(root.path(), "e");
    let scores = Synthetic::new("ucla", 10, 5).write(&e);
    let order: Vec<usize> = (0..scores.len()).rev().collect();
    let reversed = Scores {
        names: order.iter().map(|&i| scores.names[i].clone()).collect(),
        classes: 10,
        values: order.iter().flat_map(|&i| scores.row(i).to_vec()).collect(),
        labels: scores
            .labels
            .as_ref()
            .map(|l| order.iter().map(|&i| l[i]).collect()),
        features: None,
    };
    reversed
        .write_safetensors(&e.join("best_scores.safetensors"))
        .unwrap();
    report(&[a.clone(), e], &out).unwrap();
    let compare = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        table_rows(&compare).iter().all(|r| number(&r[6]) == 0.0),
        "{compare}"
    );
}

#[test]
fn a_bad_log_line_is_named_by_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = run_dir(root.path(), "run");
    Synthetic::new("ucla", 10, 3).write(&dir);
    let log = dir.join("log.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[2] = lines[2].replace("\"top1\"", "\"top_1\"");
    std::fs::write(&log, lines.join("\n")).unwrap();
    let err = report(std::slice::from_ref(&dir), &root.path().join("out")).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ReportError::Log { line: 3, .. }), "{message}");
    assert!(
        message.contains("log.jsonl") && message.contains("line 3"),
        "{message}"
    );

    std::fs::remove_file(&log).unwrap();
    let err = report(std::slice::from_ref(&dir), &root.path().join("out")).unwrap_err();
    assert!(err.to_string().contains("log.jsonl"), "{err}");
}

#[test]
fn eval_scores_are_preferred_and_missing_labels_skip_the_tables() {
    let root = tempfile::tempdir().unwrap();
    let dir = run_dir(root.path(), "run");
    let synthetic = Synthetic::new("ntu60", 60, 3);
    synthetic.write(&dir);
    let eval = Synthetic {
        seed: 77,
        skill: 0.3,
        ..Synthetic::new("ntu60", 60, 3)
    }
    .scores();
    std::fs::create_dir_all(dir.join("eval")).unwrap();
    eval.write_safetensors(&dir.join("eval/scores.safetensors"))
        .unwrap();
    let out = root.path().join("out");
    report(std::slice::from_ref(&dir), &out).unwrap();
    let text = std::fs::read_to_string(out.join("per_class.md")).unwrap();
    let hits = class_hits(&eval);
    for (c, row) in table_rows(&text).iter().enumerate() {
        let expected = 100.0 * hits[c].1 as f64 / hits[c].0 as f64;
        assert!(
            (number(&row[3]) - expected).abs() < 0.006,
            "class {c}: {row:?}"
        );
    }
    assert_eq!(
        table_rows(&std::fs::read_to_string(out.join("groups.md")).unwrap()).len(),
        23
    );

    let unlabelled = Scores {
        labels: None,
        ..eval
    };
    unlabelled
        .write_safetensors(&dir.join("eval/scores.safetensors"))
        .unwrap();
    let out = root.path().join("unlabelled");
    let summary = report(std::slice::from_ref(&dir), &out).unwrap();
    assert_eq!(summary.written, [out.join("curves.png")]);
    assert!(
        summary.notes.iter().any(|n| n.contains("no labels")),
        "{:?}",
        summary.notes
    );
}
