//! `sfhead prepare ntu` on the committed raw files: outputs, order, failures, exit status.

mod common;

use common::{array, bits, golden, golden_names};
use indicatif::ProgressBar;
use sfhead::data::ntu::npz::NpzClips;
use sfhead::data::ntu::prepare::{Format, NtuArgs, run};
use sfhead::data::ntu::{Benchmark, SampleName, SingleActor, process_file};
use sfhead::data::{ClipSet, PackedClips, Part};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder with the 18 raw files, uncompressed.
fn raw_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in common::raw_files() {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn args(raw: &Path, out: &Path, format: Format) -> NtuArgs {
    NtuArgs {
        raw: raw.to_path_buf(),
        out: out.to_path_buf(),
        ntu120: false,
        names: None,
        format,
    }
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e == "tmp"))
        .collect()
}

#[test]
fn npz_output_equals_ctrgcn_on_the_samples_present() {
    let raw = raw_dir();
    let out = tempfile::tempdir().unwrap();
    let names = out.path().join("names.txt");
    let run_name = "run-s017-a050-a060";
    std::fs::write(&names, golden_names(run_name).join("\n")).unwrap();
    let mut a = args(raw.path(), out.path(), Format::Npz);
    a.names = Some(names);
    let summary = run(&a, &ProgressBar::hidden()).unwrap();
    assert_eq!(
        (summary.listed, summary.missing, summary.unlisted),
        (11, 6, 13)
    );
    assert_eq!((summary.processed, summary.failures.len()), (5, 0));
    assert!(summary.files_per_second() > 0.0);

    // All 11 samples are X-Sub test and X-View train; A054–A058 are rows 4–8 of the goldens.
    for (file, key) in [("NTU60_CS.npz", "x_test"), ("NTU60_CV.npz", "x_train")] {
        let (shape, expected) = array::<f32>(&golden(run_name, file), key);
        let ours = sfhead::data::npz::NpzArchive::open(&out.path().join(file)).unwrap();
        let (our_shape, x) = array::<f32>(&ours, key);
        assert_eq!(
            our_shape,
            [5, 80, 150],
            "{file}: padded to the longest present sample"
        );
        let golden_row = (shape[1] * shape[2]) as usize;
        for k in 0..5 {
            let row = &expected[(4 + k) * golden_row..][..golden_row];
            assert_eq!(
                bits(&x[k * 80 * 150..][..80 * 150]),
                bits(&row[..80 * 150]),
                "{file} {k}"
            );
            assert!(row[80 * 150..].iter().all(|&v| v == 0.0));
        }
        let y_key = key.replace('x', "y");
        let (_, y) = array::<f64>(&golden(run_name, file), &y_key);
        let (_, our_y) = array::<f64>(&ours, &y_key);
        assert_eq!(our_y, y[4 * 60..9 * 60]);
    }
    assert!(
        leftovers(out.path()).is_empty(),
        "no temporary file is left"
    );
}

#[test]
fn packed_output_holds_every_file_in_benchmark_order() {
    let raw = raw_dir();
    let out = tempfile::tempdir().unwrap();
    let summary = run(
        &args(raw.path(), out.path(), Format::Packed),
        &ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!(
        (summary.listed, summary.missing, summary.unlisted),
        (56_578, 56_560, 0)
    );
    assert_eq!(summary.processed, 18);
    let sides: Vec<(usize, usize)> = summary.outputs.iter().map(|o| (o.train, o.test)).collect();
    // The raw README's per-file table gives 10/8 for X-Sub (datasets.md §1.6 says 11/7).
    assert_eq!(sides, [(10, 8), (7, 11)]);

    let mut present: Vec<SampleName> = common::raw_files()
        .iter()
        .map(|(f, _)| SampleName::from_file_name(f).unwrap())
        .collect();
    present.sort();
    for (benchmark, file) in [
        (Benchmark::Ntu60XSub, "ntu60_xsub.sfpk"),
        (Benchmark::Ntu60XView, "ntu60_xview.sfpk"),
    ] {
        let split = benchmark.split(&present);
        let path = out.path().join(file);
        for (part, side) in [(Part::Train, &split.train), (Part::Test, &split.test)] {
            let clips = PackedClips::open(&path, part).unwrap();
            assert_eq!(clips.meta().benchmark, benchmark.title());
            assert_eq!(clips.len(), side.len());
            for (k, &i) in side.iter().enumerate() {
                let name = present[i].to_string();
                assert_eq!(clips.name(k), name, "{file} {part:?} {k}");
                assert_eq!(clips.label(k), present[i].label());
                let path = raw.path().join(format!("{name}.skeleton"));
                let bytes = std::fs::read(&path).unwrap();
                let expected = process_file(&bytes, &path, SingleActor::Zeros).unwrap();
                assert_eq!(clips.clip(k), expected.sequence, "{name}");
            }
        }
    }
    assert!(leftovers(out.path()).is_empty());
}

#[test]
fn ntu120_uses_its_benchmarks_and_duplicates_single_actors() {
    let raw = raw_dir();
    let out = tempfile::tempdir().unwrap();
    let mut a = args(raw.path(), out.path(), Format::Npz);
    a.ntu120 = true;
    let summary = run(&a, &ProgressBar::hidden()).unwrap();
    assert_eq!((summary.listed, summary.processed), (113_945, 18));
    let files: Vec<String> = summary
        .outputs
        .iter()
        .map(|o| o.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["NTU120_CSub.npz", "NTU120_CSet.npz"]);
    let clips = NpzClips::open(&out.path().join("NTU120_CSet.npz"), Part::Train).unwrap();
    assert_eq!(clips.classes(), 120);
    let single = (0..clips.len())
        .find(|&i| clips.name(i) == "S004C002P003R001A017")
        .expect("S004 is an even setup");
    let clip = clips.clip(single);
    for t in 0..clip.frames {
        assert_eq!(clip.frame(t)[75..], clip.frame(t)[..75], "frame {t}");
    }
}

#[test]
fn a_bad_file_is_reported_and_the_rest_is_written() {
    let raw = raw_dir();
    let bad = raw.path().join("S001C001P001R001A003.skeleton");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, text.replacen("\n25\n", "\n24\n", 3)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = run(
        &args(raw.path(), out.path(), Format::Packed),
        &ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!((summary.processed, summary.failures.len()), (17, 1));
    let failure = &summary.failures[0];
    assert_eq!(failure.path, bad);
    assert!(
        failure.message.contains("expected 25 joints, found 24"),
        "{failure}"
    );
    assert_eq!(summary.outputs[0].train + summary.outputs[0].test, 17);
    assert!(
        summary
            .to_string()
            .contains("S001C001P001R001A003.skeleton: frame 0 (line 4)")
    );
}

#[test]
fn the_command_exits_non_zero_when_a_file_fails() {
    let raw = raw_dir();
    std::fs::write(raw.path().join("S001C001P001R001A004.skeleton"), "").unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sfhead"))
        .args(["prepare", "ntu", "--raw"])
        .arg(raw.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("processed 17 files, 1 failed"), "{stdout}");
    assert!(
        stdout.contains("S001C001P001R001A004.skeleton: file: empty file"),
        "{stdout}"
    );
    assert!(out.path().join("ntu60_xsub.sfpk").exists());
    assert!(leftovers(out.path()).is_empty());

    std::fs::write(
        raw.path().join("S001C001P001R001A004.skeleton"),
        common::raw_file("S001C001P001R001A004"),
    )
    .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_sfhead"))
        .args(["prepare", "ntu", "--format", "npz", "--raw"])
        .arg(raw.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    assert!(out.path().join("NTU60_CV.npz").exists());
}

#[test]
fn nothing_to_do_is_an_error() {
    let raw = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = run(
        &args(raw.path(), out.path(), Format::Packed),
        &ProgressBar::hidden(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("none of the 56578 listed samples"),
        "{err}"
    );
}

#[test]
fn a_bad_name_list_is_named_by_line() {
    let raw = raw_dir();
    let out = tempfile::tempdir().unwrap();
    let names = out.path().join("names.txt");
    std::fs::write(&names, "S001C001P001R001A001\nS001C001P001R001.skeleton\n").unwrap();
    let mut a = args(raw.path(), out.path(), Format::Packed);
    a.names = Some(names.clone());
    let err = run(&a, &ProgressBar::hidden()).unwrap_err();
    let err = err.downcast::<sfhead::data::DataError>().unwrap();
    assert_eq!((err.path, err.place), (names, sfhead::data::Place::Line(2)));
}
