//! CTR-GCN's `.npz` layout and our packed store: real files, round trips, bad files.

mod common;

use common::{array, bits, golden, golden_names};
use npyz::{DType, WriteOptions, WriterBuilder};
use sfhead::data::npz::NpzArchive;
use sfhead::data::ntu::npz::{NpzClip, NpzClips, write_ctrgcn_npz};
use sfhead::data::ntu::{Benchmark, SampleName};
use sfhead::data::{ClipSet, PackedClips, PackedMeta, PackedWriter, Part, Place, Sequence};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

const RUN: &str = "run-s017-a050-a060";

/// The run's samples in X-Sub test order (all of them), with their stage-2 frame counts.
fn xsub_test() -> Vec<(SampleName, usize)> {
    let names: Vec<SampleName> = golden_names(RUN)
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let stage2 = golden(RUN, "raw_denoised.npz");
    Benchmark::Ntu60XSub
        .split(&names)
        .test
        .iter()
        .map(|&i| {
            (
                names[i],
                array::<f32>(&stage2, &format!("{}.joints", names[i])).0[0] as usize,
            )
        })
        .collect()
}

fn golden_bytes(file: &str) -> Vec<u8> {
    common::gunzip(&common::ntu_dir().join(format!("golden/{RUN}/{file}.gz")))
}

#[test]
fn ctrgcn_npz_reads_as_clips_with_their_lengths_recovered() {
    let path = Path::new("NTU60_CS.npz");
    let test = NpzClips::from_bytes(golden_bytes("NTU60_CS.npz"), path, Part::Test).unwrap();
    let train = NpzClips::from_bytes(golden_bytes("NTU60_CS.npz"), path, Part::Train).unwrap();
    assert_eq!((train.len(), test.len()), (0, 11));
    assert_eq!((test.classes(), test.padded_frames()), (60, 111));
    let (_, x) = array::<f32>(&golden(RUN, "NTU60_CS.npz"), "x_test");
    for (i, (name, frames)) in xsub_test().into_iter().enumerate() {
        assert_eq!(test.label(i), name.label(), "{name}");
        assert_eq!(
            test.name(i),
            format!("x_test[{i}]"),
            "CTR-GCN's files carry no names"
        );
        let clip = test.clip(i);
        assert_eq!(
            (clip.frames, clip.persons, clip.joints),
            (frames, 2, 25),
            "{name}"
        );
        let row = &x[i * 111 * 150..][..frames * 150];
        assert_eq!(bits(&clip.data), bits(row), "{name}");
    }
}

#[test]
fn our_npz_writer_reproduces_ctrgcn_arrays_byte_for_byte() {
    let golden_archive = golden(RUN, "NTU60_CS.npz");
    let (_, x) = array::<f32>(&golden_archive, "x_test");
    let samples = xsub_test();
    let names: Vec<String> = samples.iter().map(|(n, _)| n.to_string()).collect();
    let clips: Vec<NpzClip> = samples
        .iter()
        .enumerate()
        .map(|(i, (name, frames))| NpzClip {
            name: &names[i],
            label: name.label(),
            values: &x[i * 111 * 150..][..frames * 150],
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("NTU60_CS.npz");
    write_ctrgcn_npz(&path, 60, 111, &[], &clips).unwrap();

    let ours = NpzArchive::open(&path).unwrap();
    assert_eq!(
        ours.keys().unwrap(),
        [
            "x_train",
            "y_train",
            "x_test",
            "y_test",
            "names_train",
            "names_test"
        ]
    );
    for key in ["x_train", "y_train", "x_test", "y_test"] {
        let (a, b) = (ours.array(key).unwrap(), golden_archive.array(key).unwrap());
        assert_eq!((&a.dtype, &a.shape), (&b.dtype, &b.shape), "{key}");
        assert!(
            ours.data(&a) == golden_archive.data(&b),
            "{key}: same bytes"
        );
    }
    let read = NpzClips::open(&path, Part::Test).unwrap();
    assert_eq!(read.name(3), names[3], "our files name their clips");
    assert_eq!(read.clip(3).frames, samples[3].1);
}

#[test]
fn packed_round_trip_keeps_real_clips() {
    let (_, x) = array::<f32>(&golden(RUN, "NTU60_CS.npz"), "x_test");
    let samples = xsub_test();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ntu60_xsub.sfpk");
    let meta = PackedMeta {
        benchmark: "NTU60 X-Sub".into(),
        persons: 2,
        joints: 25,
        classes: 60,
    };
    let mut writer = PackedWriter::create(&path, meta.clone()).unwrap();
    for (i, (name, frames)) in samples.iter().enumerate() {
        let part = if i < 4 { Part::Train } else { Part::Test };
        let values = &x[i * 111 * 150..][..frames * 150];
        writer
            .push(part, &name.to_string(), name.label(), values)
            .unwrap();
    }
    writer.finish().unwrap();
    let train = PackedClips::open(&path, Part::Train).unwrap();
    let test = PackedClips::open(&path, Part::Test).unwrap();
    assert_eq!((train.len(), test.len()), (4, 7));
    assert_eq!(test.meta(), &meta);
    for (i, (name, frames)) in samples.iter().enumerate() {
        let (side, k) = if i < 4 { (&train, i) } else { (&test, i - 4) };
        assert_eq!(
            (side.name(k), side.label(k)),
            (name.to_string().as_str(), name.label())
        );
        let expected = Sequence::new(*frames, 2, 25, x[i * 111 * 150..][..frames * 150].to_vec());
        assert_eq!(side.clip(k), expected);
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let padded: u64 = 11 * 111 * 150 * 4;
    assert!(
        size < padded * 3 / 4,
        "{size} bytes: variable length beats padding"
    );
}

/// An `.npz` holding the given arrays: `(key, dtype, shape, raw data bytes)`.
fn npz(arrays: &[(&str, &str, &[u64], Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (key, dtype, shape, data) in arrays {
        zip.start_file(format!("{key}.npy"), SimpleFileOptions::default())
            .unwrap();
        let dtype = DType::Plain(dtype.parse().unwrap());
        let out = WriteOptions::new_header_only()
            .dtype(dtype)
            .shape(shape)
            .writer(&mut zip)
            .write_header_only()
            .unwrap();
        out.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn f32s(n: usize, value: f32) -> Vec<u8> {
    (0..n).flat_map(|_| value.to_le_bytes()).collect()
}

fn one_hot(rows: &[usize], classes: usize) -> Vec<u8> {
    rows.iter()
        .flat_map(|&r| (0..classes).map(move |k| if k == r { 1.0f64 } else { 0.0 }))
        .flat_map(f64::to_le_bytes)
        .collect()
}

fn open_test(bytes: Vec<u8>) -> Result<NpzClips, sfhead::data::DataError> {
    NpzClips::from_bytes(bytes, Path::new("bad.npz"), Part::Test)
}

fn assert_key_error(bytes: Vec<u8>, key: &str, words: &str) {
    let err = open_test(bytes).err().expect("an error");
    assert_eq!(err.place, Place::Key(key.to_string()), "{err}");
    assert!(err.message.contains(words), "{err}");
    assert!(err.to_string().starts_with("bad.npz: key"), "{err}");
}

#[test]
fn a_good_small_npz_opens() {
    let good = npz(&[
        ("x_test", "<f4", &[2, 3, 150], f32s(900, 1.0)),
        ("y_test", "<f8", &[2, 4], one_hot(&[3, 0], 4)),
    ]);
    let clips = open_test(good).unwrap();
    assert_eq!((clips.len(), clips.label(0), clips.label(1)), (2, 3, 0));
    assert_eq!(clips.clip(1).frames, 3);
}

#[test]
fn npz_with_a_missing_key_is_named() {
    let bytes = npz(&[("y_test", "<f8", &[2, 4], one_hot(&[3, 0], 4))]);
    assert_key_error(bytes, "x_test", "missing");
    let bytes = npz(&[("x_test", "<f4", &[2, 3, 150], f32s(900, 1.0))]);
    assert_key_error(bytes, "y_test", "missing");
}

#[test]
fn npz_with_a_wrong_dtype_is_named() {
    let bytes = npz(&[
        ("x_test", "<f8", &[2, 3, 150], vec![0; 900 * 8]),
        ("y_test", "<f8", &[2, 4], one_hot(&[3, 0], 4)),
    ]);
    assert_key_error(bytes, "x_test", "<f8");
    let bytes = npz(&[
        ("x_test", "<f4", &[2, 3, 150], f32s(900, 1.0)),
        ("y_test", "<i8", &[2, 4], vec![0; 64]),
    ]);
    assert_key_error(bytes, "y_test", "<i8");
}

#[test]
fn npz_with_a_wrong_shape_is_named() {
    let bytes = npz(&[
        ("x_test", "<f4", &[2, 3, 75], f32s(450, 1.0)),
        ("y_test", "<f8", &[2, 4], one_hot(&[3, 0], 4)),
    ]);
    assert_key_error(bytes, "x_test", "75");
    let bytes = npz(&[
        ("x_test", "<f4", &[2, 450], f32s(900, 1.0)),
        ("y_test", "<f8", &[2, 4], one_hot(&[3, 0], 4)),
    ]);
    assert_key_error(bytes, "x_test", "shape");
    let bytes = npz(&[
        ("x_test", "<f4", &[2, 3, 150], f32s(900, 1.0)),
        ("y_test", "<f8", &[3, 4], one_hot(&[3, 0, 1], 4)),
    ]);
    assert_key_error(bytes, "y_test", "3 label rows for 2 clips");
}

#[test]
fn npz_whose_data_does_not_match_its_header_is_named() {
    let bytes = npz(&[
        ("x_test", "<f4", &[2, 3, 150], f32s(899, 1.0)),
        ("y_test", "<f8", &[2, 4], one_hot(&[3, 0], 4)),
    ]);
    assert_key_error(bytes, "x_test", "needs 3600 bytes");
}

#[test]
fn npz_whose_shape_overflows_is_an_error() {
    // Written by hand: npyz itself refuses to describe such a shape.
    let text =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776, 150), }";
    let mut header = format!("{text:<117}\n").into_bytes();
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((header.len() as u16).to_le_bytes());
    npy.append(&mut header);
    npy.extend(f32s(900, 1.0));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("x_test.npy", SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&npy).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    assert_key_error(bytes, "x_test", "too large");
}

#[test]
fn labels_that_are_not_one_hot_are_named_by_row() {
    let mut y = one_hot(&[3, 0], 4);
    y[8 * 5..8 * 6].copy_from_slice(&1.0f64.to_le_bytes());
    let bytes = npz(&[
        ("x_test", "<f4", &[2, 3, 150], f32s(900, 1.0)),
        ("y_test", "<f8", &[2, 4], y),
    ]);
    let err = open_test(bytes).err().unwrap();
    assert_eq!(err.place, Place::Key("y_test[1]".into()), "{err}");
}

#[test]
fn files_that_are_not_zip_archives_are_rejected() {
    for bytes in [Vec::new(), b"PK\x03\x04 not really".to_vec(), vec![7; 4096]] {
        let err = open_test(bytes).err().unwrap();
        assert_eq!(err.place, Place::File, "{err}");
    }
}

#[test]
fn packed_files_with_a_bad_header_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sfpk");
    let meta = PackedMeta {
        benchmark: "b".into(),
        persons: 2,
        joints: 25,
        classes: 60,
    };
    let mut writer = PackedWriter::create(&path, meta).unwrap();
    writer.push(Part::Train, "a", 1, &[0.5; 150]).unwrap();
    writer.finish().unwrap();
    let good = std::fs::read(&path).unwrap();
    for (offset, key) in [
        (0, "magic"),
        (8, "version"),
        (12, "channels"),
        (40, "train_clips"),
    ] {
        let mut bad = good.clone();
        bad[offset] ^= 0x40;
        let err = PackedClips::from_bytes(bad, &path, Part::Train)
            .err()
            .unwrap();
        assert_eq!(err.place, Place::Key(key.into()), "{err}");
    }
    let mut bad = good.clone();
    let labels_at = good.len() - (4 + 1) - (4 * 2 + 1) - 4;
    bad[labels_at] = 200;
    let err = PackedClips::from_bytes(bad, &path, Part::Train)
        .err()
        .unwrap();
    assert_eq!(err.place, Place::Key("labels[0]".into()), "{err}");
}
