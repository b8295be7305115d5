//! pyskl's annotation pickles and ProtoGCN's pipeline against the Python original: the pickles and
//! the recorded outputs in tests/fixtures/pyskl/ come from `tests/reference/pyskl_pipeline.py`,
//! which runs ProtoGCN's own pipeline classes on real NTU RGB+D and NW-UCLA clips.

use safetensors::{Dtype, SafeTensors};
use sfhead::data::ClipSet;
use sfhead::data::PackedClips;
use sfhead::data::Part;
use sfhead::data::feed::{
    Feeder, Pose, Precision, PysklFeeder, SampleKey, SampleShape, flip_joints, pre_normalize,
    rot3d, rotate_pose, test_indices, write_sample,
};
use sfhead::data::pyskl::{Annotations, KeypointValues, prepare_pyskl, read_annotations};
use sfhead::model::topology::Topology;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pyskl")
        .join(name)
}

struct Expected(Vec<u8>);

impl Expected {
    fn load() -> Self {
        Self(std::fs::read(fixture("expected.safetensors")).unwrap())
    }

    fn has(&self, key: &str) -> bool {
        SafeTensors::deserialize(&self.0)
            .unwrap()
            .names()
            .contains(&key)
    }

    /// A tensor as f64 values, with its shape.
    fn get(&self, key: &str) -> (Vec<usize>, Vec<f64>) {
        let file = SafeTensors::deserialize(&self.0).unwrap();
        let t = file.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        let values = match t.dtype() {
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
                .collect(),
            Dtype::F64 => t
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            Dtype::I16 => t
                .data()
                .chunks_exact(2)
                .map(|b| f64::from(i16::from_le_bytes(b.try_into().unwrap())))
                .collect(),
            Dtype::I32 => t
                .data()
                .chunks_exact(4)
                .map(|b| f64::from(i32::from_le_bytes(b.try_into().unwrap())))
                .collect(),
            other => panic!("{key}: {other:?}"),
        };
        (t.shape().to_vec(), values)
    }

    fn indices(&self, key: &str) -> Vec<Vec<usize>> {
        let (shape, values) = self.get(key);
        values
            .chunks_exact(*shape.last().unwrap())
            .map(|row| row.iter().map(|&v| v as usize).collect())
            .collect()
    }
}

fn ntu() -> Annotations {
    read_annotations(fixture("ntu.pkl")).unwrap()
}

fn ucla() -> Annotations {
    read_annotations(fixture("ucla.pkl")).unwrap()
}

/// pyskl's `(clips, M, T, V, C)` output as the engine's `(3, T, V, M)` samples, clip after clip.
fn engine_layout(shape: &[usize], values: &[f64]) -> Vec<f32> {
    let [n, m, t, v, c] = shape[..] else {
        panic!("{shape:?}")
    };
    let s = SampleShape {
        channels: c,
        frames: t,
        joints: v,
        persons: m,
    };
    let mut out = vec![0.0; values.len()];
    for clip in 0..n {
        for (i, &x) in values[clip * s.len()..(clip + 1) * s.len()]
            .iter()
            .enumerate()
        {
            let (pm, pt, pv, pc) = (i / (t * v * c), i / (v * c) % t, i / c % v, i % c);
            out[clip * s.len() + s.at(pc, pt, pv, pm)] = x as f32;
        }
    }
    out
}

#[test]
fn reads_the_annotation_pickles() {
    let a = ntu();
    let names: Vec<&str> = a.annotations.iter().map(|x| x.frame_dir.as_str()).collect();
    assert_eq!(
        names,
        [
            "S001C001P001R001A050",
            "S004C002P003R001A017",
            "S001C001P001R001A002",
            "S002C001P003R001A003",
            "S001C001P001R001A005",
        ]
    );
    for x in &a.annotations {
        // NTU's label is the action number less one.
        let action: u32 = x.frame_dir[17..].parse().unwrap();
        assert_eq!(x.label, action - 1, "{}", x.frame_dir);
        assert_eq!(
            (x.keypoint.joints, x.keypoint.pose().values.len()),
            (25, {
                let k = &x.keypoint;
                k.persons * k.frames * 25 * 3
            })
        );
    }
    let shapes: Vec<_> = a
        .annotations
        .iter()
        .map(|x| {
            (
                x.keypoint.persons,
                x.keypoint.frames,
                x.keypoint.precision(),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            (2, 48, Precision::Half),
            (2, 124, Precision::Half),
            (1, 257, Precision::Half),
            (1, 100, Precision::Double),
            (2, 5, Precision::Half),
        ]
    );
    assert_eq!((a.classes(), a.joints()), (50, 25));
    // Splits keep annotation order, not list order, and skip names without an annotation.
    let split_names: Vec<&str> = a.splits.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(split_names, ["xsub_train", "xsub_val"]);
    assert_eq!(a.split("xsub_train").unwrap(), [0, 2, 4]);
    assert_eq!(a.split("xsub_val").unwrap(), [1, 3]);
    let e = a.split("xview_train").unwrap_err();
    assert!(e.contains("xsub_train, xsub_val"), "{e}");

    let u = ucla();
    assert_eq!(u.joints(), 20);
    assert_eq!(u.annotations[0].keypoint.precision(), Precision::Single);
    assert_eq!(u.annotations[1].keypoint.frames, 1);
    assert_eq!(u.annotations[0].label, 3, "a04 is class 3");
}

#[test]
fn pre_normalize_matches_pyskl_bit_for_bit() {
    let expected = Expected::load();
    for a in ntu().annotations.iter().chain(&ucla().annotations) {
        let (shape, values) = expected.get(&format!("{}.norm", a.frame_dir));
        let got = pre_normalize(&a.keypoint.pose(), a.keypoint.precision());
        assert_eq!(
            [got.persons, got.frames, got.joints, 3],
            shape[..],
            "{}",
            a.frame_dir
        );
        let wrong = got.values.iter().zip(&values).position(|(g, e)| g != e);
        assert_eq!(wrong, None, "{}: first difference", a.frame_dir);
    }
    // The swap and the dropped frames happened: 48 frames less 4, person 1 leading.
    let a = &ntu().annotations[0];
    let got = pre_normalize(&a.keypoint.pose(), Precision::Half);
    assert_eq!((got.persons, got.frames), (2, 44));
    // Single precision differs from half on the same input: the dtype is part of the step.
    let single = pre_normalize(&a.keypoint.pose(), Precision::Single);
    assert_ne!(single.values, got.values);
}

#[test]
fn test_clip_indices_match_numpy_seeded_with_255() {
    let expected = Expected::load();
    for t in [
        1, 2, 5, 9, 10, 11, 37, 99, 100, 101, 150, 199, 200, 201, 299, 300, 1000,
    ] {
        let want = expected.indices(&format!("indices.T{t}"));
        assert_eq!(test_indices(t, 100, 10), want, "T = {t}");
    }
}

/// Prepares `pickle`'s two splits and returns both parts.
fn prepared(pickle: &str, train: &str, test: &str) -> (tempfile::TempDir, [PackedClips; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set.sfpk");
    let summary = prepare_pyskl(&fixture(pickle), train, test, &out).unwrap();
    assert_eq!(summary.path, out);
    let parts = [Part::Train, Part::Test].map(|p| PackedClips::open(&out, p).unwrap());
    (dir, parts)
}

#[test]
fn test_feeder_matches_the_pyskl_test_pipeline() {
    let expected = Expected::load();
    for (pickle, train, test, joints) in [
        ("ntu.pkl", "xsub_train", "xsub_val", 25),
        ("ucla.pkl", "train", "val", 20),
    ] {
        let (_dir, parts) = prepared(pickle, train, test);
        let feeder = PysklFeeder::test(joints);
        let shape = feeder.shape();
        assert_eq!(feeder.clips(), 10);
        for set in &parts {
            for i in 0..set.len() {
                let name = set.name(i).to_string();
                let clip = set.clip(i);
                let mut all = vec![f32::NAN; 10 * shape.len()];
                feeder
                    .feed_clips(&clip, SampleKey::new(0, 0, i), &mut all)
                    .unwrap();
                let mut first = vec![f32::NAN; shape.len()];
                feeder
                    .feed(&clip, SampleKey::new(9, 9, 9), &mut first)
                    .unwrap();
                assert_eq!(first, all[..shape.len()], "{name}: feed is clip 0");

                // Every clip is the recorded normalised clip at the recorded indices.
                let (norm_shape, norm) = expected.get(&format!("{name}.norm"));
                let [m, t, v, _] = norm_shape[..] else {
                    panic!()
                };
                let pose = Pose {
                    persons: m,
                    frames: t,
                    joints: v,
                    values: norm,
                };
                let indices = expected.indices(&format!("{name}.test_indices"));
                for (k, frames) in indices.iter().enumerate() {
                    let mut want = vec![0.0; shape.len()];
                    write_sample(&pose, frames, shape, &mut want);
                    let got = &all[k * shape.len()..(k + 1) * shape.len()];
                    assert!(got == &want[..], "{name} clip {k}");
                }
                // And the pipeline's own output where recorded.
                let key = format!("{name}.test_output");
                if expected.has(&key) {
                    let (out_shape, out) = expected.get(&key);
                    let want = engine_layout(&out_shape, &out);
                    for (j, &k) in expected.indices(&format!("{name}.test_clips"))[0]
                        .iter()
                        .enumerate()
                    {
                        let got = &all[k * shape.len()..(k + 1) * shape.len()];
                        let want = &want[j * shape.len()..(j + 1) * shape.len()];
                        assert!(got == want, "{name} clip {k} against the pipeline output");
                    }
                }
            }
        }
    }
}

#[test]
fn training_steps_match_pyskl_for_its_draws() {
    let expected = Expected::load();
    let samples = [
        ("S001C001P001R001A050", "ntu25"),
        ("S001C001P001R001A002", "ntu25"),
        ("a04_s01_e00_v01", "ucla20"),
    ];
    let all: Vec<_> = ntu()
        .annotations
        .into_iter()
        .chain(ucla().annotations)
        .collect();
    for (name, topology) in samples {
        let a = all.iter().find(|a| a.frame_dir == name).unwrap();
        let (_, theta) = expected.get(&format!("{name}.theta"));
        let (_, rot) = expected.get(&format!("{name}.rot"));
        let r = rot3d([theta[0], theta[1], theta[2]]);
        for (got, want) in r.iter().flatten().zip(&rot) {
            assert!(
                (got - want).abs() <= 1e-15,
                "{name}: rotation {got} vs {want}"
            );
        }
        let mut pose = pre_normalize(&a.keypoint.pose(), a.keypoint.precision());
        rotate_pose(&mut pose, &r);
        if expected.get(&format!("{name}.flip")).1[0] == 1.0 {
            let flip = Topology::shipped(topology).unwrap();
            flip_joints(&mut pose, flip.flip().unwrap());
        }
        let frames = &expected.indices(&format!("{name}.train_indices"))[0];
        let shape = PysklFeeder::train(pose.joints, None).shape();
        let mut got = vec![f32::NAN; shape.len()];
        write_sample(&pose, frames, shape, &mut got);
        let (out_shape, out) = expected.get(&format!("{name}.train_output"));
        let mut full_shape = vec![1];
        full_shape.extend(out_shape);
        let want = engine_layout(&full_shape, &out);
        let wrong = got.iter().zip(&want).filter(|(g, w)| g != w).count();
        assert_eq!(wrong, 0, "{name}: values that differ");
    }
}

#[test]
fn flips_swap_left_and_right() {
    for name in ["ntu25", "ucla20"] {
        let t = Topology::shipped(name).unwrap();
        let flip = t.flip().expect("a flip");
        let names = t.joint_names();
        for (v, &w) in flip.iter().enumerate() {
            assert_eq!(flip[w], v, "{name}: the flip is its own inverse");
            let mirrored = names[v]
                .replace("left", "\0")
                .replace("right", "left")
                .replace('\0', "right");
            assert_eq!(names[w], mirrored, "{name}: joint {}", v + 1);
        }
    }
    let text = include_str!("../graph/ucla20.toml")
        .replace("flip = [1, 2, 3, 4, 9,", "flip = [1, 2, 3, 4, 4,");
    let e = Topology::parse(&text, "ucla20.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ucla20.toml: line ") && e.contains("augment.flip: joint 4 appears twice"),
        "{e}"
    );
}

#[test]
fn training_feeder_draws_from_the_key_only() {
    let (_dir, [train, _]) = prepared("ntu.pkl", "xsub_train", "xsub_val");
    let t = Topology::shipped("ntu25").unwrap();
    let feeder = PysklFeeder::train(25, t.flip().map(<[usize]>::to_vec));
    let shape = feeder.shape();
    assert_eq!((shape.frames, shape.persons), (100, 2));
    let clip = train.clip(0);
    let sample = |key| {
        let mut out = vec![f32::NAN; shape.len()];
        feeder.feed(&clip, key, &mut out).unwrap();
        out
    };
    let a = sample(SampleKey::new(1, 0, 0));
    assert_eq!(a, sample(SampleKey::new(1, 0, 0)));
    assert!(a.iter().all(|x| x.is_finite()));
    assert_ne!(a, sample(SampleKey::new(1, 1, 0)));
    // Without rotation or flip, training samples are frames of the normalised clip.
    let plain = PysklFeeder {
        rotation: 0.0,
        ..PysklFeeder::train(25, None)
    };
    let pose = pre_normalize(&Pose::from_sequence(&clip), Precision::Single);
    let mut out = vec![0.0; shape.len()];
    plain
        .feed(&clip, SampleKey::new(3, 0, 0), &mut out)
        .unwrap();
    let frame_of = |t: usize| -> Vec<f32> {
        (0..25)
            .flat_map(|v| (0..3).map(move |c| (v, c)))
            .map(|(v, c)| out[shape.at(c, t, v, 0)])
            .collect()
    };
    for t in 0..100 {
        let found = (0..pose.frames).any(|f| {
            let p: Vec<f32> = pose.values[f * 75..(f + 1) * 75]
                .iter()
                .map(|&x| x as f32)
                .collect();
            p == frame_of(t)
        });
        assert!(found, "frame {t} of the sample is no frame of the clip");
    }
    // The flip is taken about half the time.
    let flips = PysklFeeder {
        rotation: 0.0,
        ..PysklFeeder::train(25, t.flip().map(<[usize]>::to_vec))
    };
    let flipped = (0..200)
        .filter(|&i| {
            let key = SampleKey::new(5, 0, i);
            let (mut x, mut y) = (vec![0.0; shape.len()], vec![0.0; shape.len()]);
            flips.feed(&clip, key, &mut x).unwrap();
            plain.feed(&clip, key, &mut y).unwrap();
            x != y
        })
        .count();
    assert!((70..130).contains(&flipped), "{flipped} of 200 flipped");
}

#[test]
fn the_feeder_refuses_what_it_cannot_take() {
    let (_dir, [train, _]) = prepared("ucla.pkl", "train", "val");
    let clip = train.clip(0);
    let feeder = PysklFeeder::test(25);
    let mut out = vec![0.0; feeder.shape().len()];
    let e = feeder
        .feed(&clip, SampleKey::new(0, 0, 0), &mut out)
        .unwrap_err();
    assert!(e.contains("25 joints") && e.contains("20"), "{e}");
    let feeder = PysklFeeder::train(20, Some(vec![0; 20]));
    let mut out = vec![0.0; feeder.shape().len()];
    let e = feeder
        .feed(&clip, SampleKey::new(0, 0, 0), &mut out)
        .unwrap_err();
    assert!(e.contains("one to one"), "{e}");
    let e = feeder
        .feed_clips(&clip, SampleKey::new(0, 0, 0), &mut out[1..])
        .unwrap_err();
    assert!(e.contains("output holds"), "{e}");
}

/// Pickle bytes, protocol 4, for hand-made annotation files.
mod pickle {
    pub fn str(s: &str) -> Vec<u8> {
        let mut out = vec![0x8c, s.len() as u8];
        out.extend(s.as_bytes());
        out
    }

    pub fn int(i: i32) -> Vec<u8> {
        let mut out = vec![b'J'];
        out.extend(i.to_le_bytes());
        out
    }

    pub fn list(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![b']', b'('];
        items.iter().for_each(|i| out.extend(i));
        out.push(b'e');
        out
    }

    pub fn dict(items: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = vec![b'}', b'('];
        for (k, v) in items {
            out.extend(str(k));
            out.extend(v);
        }
        out.push(b'u');
        out
    }

    /// `numpy._core.numeric._frombuffer(data, '<f4', shape, 'C')`.
    pub fn array(values: &[f32], shape: &[usize]) -> Vec<u8> {
        let mut out = b"cnumpy._core.numeric\n_frombuffer\n(".to_vec();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.push(b'B');
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
        out.extend(str("<f4"));
        out.push(b'(');
        shape.iter().for_each(|&d| out.extend(int(d as i32)));
        out.push(b't');
        out.extend(str("C"));
        out.extend([b't', b'R']);
        out
    }

    pub fn file(root: Vec<u8>) -> Vec<u8> {
        let mut out = vec![0x80, 4];
        out.extend(root);
        out.push(b'.');
        out
    }
}

fn refused(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let text = read_annotations(&path).unwrap_err().to_string();
    assert!(text.contains(name), "the message names the file: {text}");
    text
}

fn one(annotation: Vec<u8>) -> Vec<u8> {
    pickle::file(pickle::dict(&[
        (
            "split",
            pickle::dict(&[("train", pickle::list(&[pickle::str("a")]))]),
        ),
        ("annotations", pickle::list(&[annotation])),
    ]))
}

fn annotation(frame_dir: &str, label: i32, values: &[f32], shape: &[usize]) -> Vec<u8> {
    pickle::dict(&[
        ("frame_dir", pickle::str(frame_dir)),
        ("label", pickle::int(label)),
        ("keypoint", pickle::array(values, shape)),
        ("total_frames", pickle::int(shape[1] as i32)),
    ])
}

#[test]
fn hand_made_pickles_read_and_bad_ones_name_the_place() {
    let values: Vec<f32> = (0..2 * 25 * 3).map(|i| i as f32 * 0.01).collect();
    let good = one(annotation("a", 7, &values, &[1, 2, 25, 3]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.pkl");
    std::fs::write(&path, &good).unwrap();
    let a = read_annotations(&path).unwrap();
    assert_eq!(a.annotations[0].label, 7);
    assert_eq!(
        a.annotations[0].keypoint.values,
        KeypointValues::Single(values.clone())
    );

    let text = refused("cut.pkl", &good[..good.len() / 2]);
    assert!(text.contains("byte "), "{text}");
    let cases = [
        (
            annotation("a", 1, &values[..100], &[1, 2, 25, 2]),
            "annotations[0].keypoint",
            "C = 2",
        ),
        (
            annotation("a", 1, &[0.0; 225], &[3, 1, 25, 3]),
            "annotations[0].keypoint",
            "M = 3",
        ),
        (
            annotation("a", -1, &values, &[1, 2, 25, 3]),
            "annotations[0].label",
            "-1 is not a class index",
        ),
        (
            {
                let mut v = values.clone();
                v[80] = f32::NAN;
                annotation("a", 1, &v, &[1, 2, 25, 3])
            },
            "annotations[0].keypoint",
            "person 0, frame 1, joint 1",
        ),
        (
            pickle::dict(&[("frame_dir", pickle::str("a")), ("label", pickle::int(1))]),
            "annotations[0].keypoint",
            "key is missing",
        ),
        (
            pickle::dict(&[
                ("frame_dir", pickle::str("a")),
                ("label", pickle::int(1)),
                ("keypoint", pickle::array(&values, &[1, 2, 25, 3])),
                ("total_frames", pickle::int(3)),
            ]),
            "annotations[0].total_frames",
            "3; the keypoint array has 2 frames",
        ),
    ];
    for (item, key, message) in cases {
        let text = refused("bad.pkl", &one(item));
        assert!(
            text.contains(&format!("key `{key}`")) && text.contains(message),
            "{text}"
        );
    }
    // Two annotations: a joint count that changes, a frame_dir used twice.
    let two = |second: Vec<u8>| {
        pickle::file(pickle::dict(&[
            ("split", pickle::dict(&[])),
            (
                "annotations",
                pickle::list(&[annotation("a", 1, &values, &[1, 2, 25, 3]), second]),
            ),
        ]))
    };
    let text = refused(
        "bad.pkl",
        &two(annotation("b", 1, &values[..120], &[1, 2, 20, 3])),
    );
    assert!(
        text.contains("annotations[1].keypoint") && text.contains("20 joints, annotation 0 has 25"),
        "{text}"
    );
    let text = refused("bad.pkl", &two(annotation("a", 2, &values, &[1, 2, 25, 3])));
    assert!(
        text.contains("annotations[1].frame_dir") && text.contains("also annotation 0"),
        "{text}"
    );
    // The top level.
    let text = refused("bad.pkl", &pickle::file(pickle::list(&[])));
    assert!(text.contains("holds a list"), "{text}");
    let text = refused(
        "bad.pkl",
        &pickle::file(pickle::dict(&[("annotations", pickle::list(&[]))])),
    );
    assert!(text.contains("key `split`: key is missing"), "{text}");
    let text = refused(
        "bad.pkl",
        &pickle::file(pickle::dict(&[
            (
                "split",
                pickle::dict(&[("train", pickle::list(&[pickle::str("a"), pickle::int(3)]))]),
            ),
            ("annotations", pickle::list(&[])),
        ])),
    );
    assert!(
        text.contains("key `split.train[1]`: an int, not a str"),
        "{text}"
    );
}

#[test]
fn prepare_pyskl_command_writes_a_packed_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ntu.sfpk");
    let run = |train: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sfhead"))
            .args(["prepare", "pyskl", "--pickle"])
            .arg(fixture("ntu.pkl"))
            .args(["--train", train, "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let done = run("xsub_train");
    assert!(done.status.success(), "{done:?}");
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(text.contains("(3 train, 2 test, 50 classes)"), "{text}");
    let test = PackedClips::open(&out, Part::Test).unwrap();
    assert_eq!(test.name(0), "S004C002P003R001A017");
    assert_eq!((test.clip(0).persons, test.label(0)), (2, 16));

    let failed = run("xview_train");
    assert!(!failed.status.success());
    let text = String::from_utf8_lossy(&failed.stderr);
    assert!(text.contains("key `split.xview_train`: no split"), "{text}");
}
