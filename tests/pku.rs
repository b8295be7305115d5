//! PKU-MMD: the real skeleton file, and `prepare pku` end to end on the test files.

use sfhead::data::pku::parse_skeleton;
use sfhead::data::prepare::{PKU_FRAMES, PkuPaths, prepare_pku};
use std::io::Read;
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pku-mmd")
}

/// The real file read the plain way: rows of numbers.
fn rows(video: &str) -> Vec<Vec<f32>> {
    let text =
        std::fs::read_to_string(data().join("skeletons").join(format!("{video}.txt"))).unwrap();
    text.lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect()
}

#[test]
fn the_real_file_has_1040_frames_and_a_second_person_in_728() {
    let path = data().join("skeletons/A10N08-L.txt");
    let s = parse_skeleton(&path, &std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((s.frames, s.persons, s.joints), (1040, 2, 25));
    let second = (0..s.frames)
        .filter(|&t| s.frame(t)[75..].iter().any(|&x| x != 0.0))
        .count();
    assert_eq!(second, 728);
    let expected = rows("A10N08-L");
    for t in [0, 517, 1039] {
        assert_eq!(s.frame(t), &expected[t][..]);
    }
    assert_eq!(&s.frame(0)[..3], &[-0.304560, 0.212575, 2.728912]);
}

fn prepare(out: &Path) -> sfhead::data::prepare::Outcome {
    let paths = PkuPaths {
        raw: data().join("skeletons"),
        labels: data().join("labels"),
        split: data().join("cross-subject.txt"),
        out: out.to_path_buf(),
    };
    prepare_pku(&paths, &indicatif::ProgressBar::hidden()).unwrap()
}

/// An `.npz` member: shape and values.
fn member<T: npyz::Deserialize>(npz: &Path, name: &str) -> (Vec<u64>, Vec<T>) {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(npz).unwrap()).unwrap();
    let mut bytes = Vec::new();
    archive
        .by_name(&format!("{name}.npy"))
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let array = npyz::NpyFile::new(&bytes[..]).unwrap();
    (array.shape().to_vec(), array.into_vec().unwrap())
}

fn argmax(one_hot: &[f64]) -> Vec<usize> {
    one_hot
        .chunks(51)
        .map(|row| {
            assert_eq!(row.iter().sum::<f64>(), 1.0);
            row.iter().position(|&x| x == 1.0).unwrap()
        })
        .collect()
}

#[test]
fn prepare_writes_translated_instances_in_ctrgcn_layout() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = prepare(dir.path());
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let npz = dir.path().join("PKUv1_XSub.npz");
    assert_eq!(
        outcome.written,
        [npz.clone(), dir.path().join("PKUv1_XSub.json")]
    );
    let row = 150;
    let frame_len = PKU_FRAMES * row;

    let (shape, x) = member::<f32>(&npz, "x_train");
    assert_eq!(shape, [3, 300, 150]);
    let (shape, y) = member::<f64>(&npz, "y_train");
    assert_eq!(shape, [3, 51]);
    assert_eq!(argmax(&y), [4, 40, 50]);
    // Instance 1 = rows 100..250, person 1 minus its joint 2 in row 100; person 2 absent.
    let real = rows("A10N08-L");
    let origin = [real[100][3], real[100][4], real[100][5]];
    for t in 0..150 {
        let got = &x[t * row..(t + 1) * row];
        for i in 0..75 {
            assert_eq!(
                got[i],
                real[100 + t][i] - origin[i % 3],
                "frame {t} value {i}"
            );
        }
        assert!(got[75..].iter().all(|&v| v == 0.0));
    }
    assert!(
        x[150 * row..frame_len].iter().all(|&v| v == 0.0),
        "zero padding"
    );
    // Instance 2 has both persons, both moved by person 1's origin.
    let origin = [real[600][3], real[600][4], real[600][5]];
    let second = &x[frame_len..2 * frame_len];
    assert_eq!(second[75 + 2], real[600][75 + 2] - origin[2]);
    // Instance 3 runs past the end of the video: 10 frames kept.
    let third = &x[2 * frame_len..];
    assert!(third[9 * row..10 * row].iter().any(|&v| v != 0.0));
    assert!(third[10 * row..].iter().all(|&v| v == 0.0));

    let (shape, x) = member::<f32>(&npz, "x_test");
    assert_eq!(shape, [2, 300, 150]);
    let (_, y) = member::<f64>(&npz, "y_test");
    assert_eq!(argmax(&y), [21, 12]);
    // HAND01-M:1 = frames 1, 2; origin (0.11, 1.01, 3); joint 1 of frame 1 is (0.1, 1, 3).
    assert!((x[0] + 0.01).abs() < 1e-6 && (x[1] + 0.01).abs() < 1e-6 && x[2] == 0.0);
    assert!(x[2 * row..frame_len].iter().all(|&v| v == 0.0));
    // HAND01-M:3 is the reversed interval 6,4: frames 4 and 5, frame 4's joint 2 at the origin.
    assert_eq!(&x[frame_len + 3..frame_len + 6], &[0.0, 0.0, 0.0]);

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("PKUv1_XSub.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["train"]["names"],
        serde_json::json!(["A10N08-L:1", "A10N08-L:2", "A10N08-L:3"])
    );
    assert_eq!(
        summary["test"]["names"],
        serde_json::json!(["HAND01-M:1", "HAND01-M:3"])
    );
    assert_eq!(
        summary["skipped_all_zero_instances"],
        serde_json::json!(["HAND01-M:2"])
    );
}

#[test]
fn prepare_goes_on_past_bad_videos_and_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(data().join(from)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    };
    let (raw, labels) = (dir.path().join("raw"), dir.path().join("labels"));
    copy("skeletons", &raw);
    copy("labels", &labels);
    // A video with a bad label line, one with no label file, one listed but absent.
    std::fs::copy(raw.join("HAND01-M.txt"), raw.join("BAD01-L.txt")).unwrap();
    std::fs::write(labels.join("BAD01-L.txt"), "3,1,2,1\n4,1,2\n").unwrap();
    std::fs::copy(raw.join("HAND01-M.txt"), raw.join("NOLAB-R.txt")).unwrap();
    let split = dir.path().join("cross-view.txt");
    std::fs::write(
        &split,
        "Training videos:\nA10N08-L, BAD01-L, GONE-L\nValidataion videos:\nHAND01-M\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let paths = PkuPaths {
        raw,
        labels,
        split,
        out: out.clone(),
    };
    let outcome = prepare_pku(&paths, &indicatif::ProgressBar::hidden()).unwrap();
    let failures: Vec<String> = outcome.failures.iter().map(|e| e.to_string()).collect();
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(
        failures[0].contains("BAD01-L.txt: line 2: expected 4 comma-separated fields"),
        "{}",
        failures[0]
    );
    assert!(
        failures[1].contains("GONE-L.txt: file: cannot read the skeleton file"),
        "{}",
        failures[1]
    );
    assert!(
        failures[2].contains("NOLAB-R.txt: file: cannot read the label file"),
        "{}",
        failures[2]
    );
    let (shape, _) = member::<f32>(&out.join("PKUv1_XView.npz"), "x_train");
    assert_eq!(shape, [3, 300, 150], "the good video is still written");
}
