//! The NTU pipeline against real outputs of CTR-GCN's NTU60 scripts, bit for bit, stage by stage.

mod common;

use common::{RUNS, array, bits, golden, golden_names, raw_file};
use sfhead::data::Sequence;
use sfhead::data::npz::NpzArchive;
use sfhead::data::ntu::{
    Benchmark, Denoised, Filtered, RawBody, RawSkeleton, SampleName, SingleActor, denoise,
    parse_skeleton, process_file, translate,
};
use std::path::Path;

/// Golden samples whose raw `.skeleton` file is committed too.
fn with_raw_file(run: &str) -> Vec<String> {
    golden_names(run)
        .into_iter()
        .filter(|n| {
            common::ntu_dir()
                .join(format!("raw/{n}.skeleton.gz"))
                .exists()
        })
        .collect()
}

/// Rebuilds a stage-1 record from the golden `raw_skes_data` arrays.
fn golden_stage1(archive: &NpzArchive, name: &str) -> RawSkeleton {
    let keys = archive.keys().unwrap();
    let (_, num_frames) = array::<i64>(archive, &format!("{name}.num_frames"));
    let mut bodies = Vec::new();
    for k in 0.. {
        let prefix = format!("{name}.body{k}");
        if !keys.contains(&format!("{prefix}.id")) {
            break;
        }
        let (_, id) = array::<u64>(archive, &format!("{prefix}.id"));
        let (_, joints) = array::<f32>(archive, &format!("{prefix}.joints"));
        let (_, colors) = array::<f32>(archive, &format!("{prefix}.colors"));
        let (_, interval) = array::<i64>(archive, &format!("{prefix}.interval"));
        let start = interval[0] as usize;
        let expected: Vec<i64> = (0..interval.len() as i64)
            .map(|i| interval[0] + i)
            .collect();
        assert_eq!(
            interval, expected,
            "{prefix}: the interval quirk makes it contiguous"
        );
        let motion = keys
            .contains(&format!("{prefix}.motion"))
            .then(|| array::<f32>(archive, &format!("{prefix}.motion")).1[0]);
        bodies.push(RawBody {
            id: id[0],
            joints: joints.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
            colors: colors.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
            start,
            motion,
        });
    }
    RawSkeleton {
        bodies,
        valid_frames: num_frames[0] as usize,
        dropped_frames: Vec::new(),
    }
}

#[test]
fn stage1_of_the_raw_files_equals_the_golden() {
    let mut checked = 0;
    for run in RUNS {
        let archive = golden(run, "raw_skes_data.npz");
        for name in with_raw_file(run) {
            let path = Path::new(&name);
            let ours =
                RawSkeleton::from_file(parse_skeleton(&raw_file(&name), path).unwrap(), path)
                    .unwrap();
            let expected = golden_stage1(&archive, &name);
            assert_eq!(ours.valid_frames, expected.valid_frames, "{name}");
            assert_eq!(ours.bodies.len(), expected.bodies.len(), "{name}");
            for (o, e) in ours.bodies.iter().zip(&expected.bodies) {
                assert_eq!(o.id, e.id, "{name}: bodies in order of first appearance");
                assert_eq!(o.start, e.start, "{name} body {}", o.id);
                assert_eq!(o.rows(), e.rows(), "{name} body {}", o.id);
                assert_eq!(bits(o.joints.as_flattened()), bits(e.joints.as_flattened()));
                assert_eq!(bits(o.colors.as_flattened()), bits(e.colors.as_flattened()));
                assert_eq!(
                    o.motion.map(f32::to_bits),
                    e.motion.map(f32::to_bits),
                    "{name} body {}: motion",
                    o.id
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 7,
        "A054–A058 of one run, A005 and A017 of the other"
    );
}

fn golden_stage2(archive: &NpzArchive, name: &str) -> (Vec<u64>, Vec<f32>, Vec<u64>, Vec<f32>) {
    let (joints_shape, joints) = array::<f32>(archive, &format!("{name}.joints"));
    let (colors_shape, colors) = array::<f32>(archive, &format!("{name}.colors"));
    (joints_shape, joints, colors_shape, colors)
}

fn assert_stage2_equal(ours: &Denoised, archive: &NpzArchive, name: &str) {
    let (joints_shape, joints, colors_shape, colors) = golden_stage2(archive, name);
    let width = ours.actors as u64 * 75;
    assert_eq!(
        joints_shape,
        [ours.frames as u64, width],
        "{name}: joints shape"
    );
    assert_eq!(bits(&ours.joints), bits(&joints), "{name}: joints");
    assert_eq!(
        colors_shape[1..],
        [ours.actors as u64, 25, 2],
        "{name}: colours shape"
    );
    assert_eq!(bits(&ours.colors), bits(&colors), "{name}: colours");
}

#[test]
fn stage2_of_the_golden_stage1_equals_the_golden() {
    let mut checked = 0;
    for run in RUNS {
        let stage1 = golden(run, "raw_skes_data.npz");
        let stage2 = golden(run, "raw_denoised.npz");
        for name in golden_names(run) {
            let ours = denoise(&golden_stage1(&stage1, &name), Path::new(&name)).unwrap();
            assert_stage2_equal(&ours, &stage2, &name);
            checked += 1;
        }
    }
    assert_eq!(checked, 13);
}

#[test]
fn stage2_decisions_match_the_golden_logs() {
    let stage1 = golden("run-s017-a050-a060", "raw_skes_data.npz");
    let name = "S017C003P020R002A055";
    let a055 = denoise(&golden_stage1(&stage1, name), Path::new(name)).unwrap();
    // actors_info/S017C003P020R002A055.txt: "72057594037937959: motion 0.249820 -> 0.236807",
    // which puts …917 (0.241373) first.
    let shown: Vec<(u64, String)> = a055
        .motions
        .iter()
        .map(|(id, m)| (*id, format!("{m:.6}")))
        .collect();
    assert_eq!(
        shown,
        [
            (72057594037937917, "0.241373".to_string()),
            (72057594037937959, "0.236807".to_string())
        ]
    );
    assert_eq!(
        a055.assigned,
        [vec![72057594037937917], vec![72057594037937959]]
    );

    let name = "S017C003P020R002A059";
    let a059 = denoise(&golden_stage1(&stage1, name), Path::new(name)).unwrap();
    // Actor 2 is only in frames 79–110; its other frames stay zero (missing_skes_2.log: 0, 79).
    let missing2 = (0..a059.frames)
        .filter(|t| {
            a059.joints[t * 150 + 75..t * 150 + 150]
                .iter()
                .all(|&v| v == 0.0)
        })
        .count();
    assert_eq!((a059.frames, missing2), (111, 79));

    let stage1 = golden("run-s001-p003-p004", "raw_skes_data.npz");
    let name = "S001C001P003R002A005";
    let a005 = denoise(&golden_stage1(&stage1, name), Path::new(name)).unwrap();
    // noise_spread.log: "S001C001P003R002A005	72057594037937524	0.052770	1.000000".
    assert_eq!(
        a005.filtered,
        [Filtered::Spread {
            id: 72057594037937524,
            noisy_fraction: 1.0
        }]
    );
    assert_eq!((a005.actors, a005.frames), (1, 68));
}

/// The golden stage-3 rows with the names they belong to, in the file's order.
fn golden_stage3(run: &str, file: &str, key: &str, order: &[usize]) -> Vec<(String, Vec<f32>)> {
    let names = golden_names(run);
    let (shape, x) = array::<f32>(&golden(run, file), key);
    assert_eq!(shape[0] as usize, order.len(), "{run}/{file} {key}");
    let row = (shape[1] * shape[2]) as usize;
    order
        .iter()
        .zip(x.chunks_exact(row))
        .map(|(&i, values)| (names[i].clone(), values.to_vec()))
        .collect()
}

/// Every stage-3 row the goldens hold, named. In the s001 run only `x_test` is valid, and its
/// stale statistics put both samples there in list order.
fn stage3_goldens() -> Vec<(String, Vec<f32>)> {
    let run = "run-s017-a050-a060";
    let names: Vec<SampleName> = golden_names(run)
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let mut rows = golden_stage3(
        run,
        "NTU60_CS.npz",
        "x_test",
        &Benchmark::Ntu60XSub.split(&names).test,
    );
    rows.extend(golden_stage3(
        run,
        "NTU60_CV.npz",
        "x_train",
        &Benchmark::Ntu60XView.split(&names).train,
    ));
    rows.extend(golden_stage3(
        "run-s001-p003-p004",
        "NTU60_CS.npz",
        "x_test",
        &[0, 1],
    ));
    rows.extend(golden_stage3(
        "run-s001-p003-p004",
        "NTU60_CV.npz",
        "x_train",
        &[0, 1],
    ));
    rows
}

fn padded(sequence: &Sequence, row: usize) -> Vec<f32> {
    let mut values = sequence.data.clone();
    values.resize(row, 0.0);
    values
}

#[test]
fn stage3_of_the_golden_stage2_equals_the_golden() {
    let mut stage2 = Vec::new();
    for run in RUNS {
        let archive = golden(run, "raw_denoised.npz");
        for name in golden_names(run) {
            let (shape, joints, _, _) = golden_stage2(&archive, &name);
            let denoised = Denoised {
                actors: shape[1] as usize / 75,
                frames: shape[0] as usize,
                joints,
                colors: Vec::new(),
                assigned: [Vec::new(), Vec::new()],
                motions: Vec::new(),
                filtered: Vec::new(),
            };
            stage2.push((name, denoised));
        }
    }
    let goldens = stage3_goldens();
    assert_eq!(goldens.len(), 26);
    for (name, expected) in goldens {
        let (_, denoised) = stage2.iter().find(|(n, _)| *n == name).unwrap();
        let ours = translate(denoised, SingleActor::Zeros, Path::new(&name)).unwrap();
        assert_eq!(
            bits(&padded(&ours, expected.len())),
            bits(&expected),
            "{name}"
        );
    }
}

#[test]
fn raw_files_through_all_stages_equal_the_golden() {
    let mut checked = 0;
    for (name, expected) in stage3_goldens() {
        let path = common::ntu_dir().join(format!("raw/{name}.skeleton"));
        if !common::ntu_dir()
            .join(format!("raw/{name}.skeleton.gz"))
            .exists()
        {
            continue;
        }
        let done = process_file(&raw_file(&name), &path, SingleActor::Zeros).unwrap();
        assert_eq!(done.name.to_string(), name);
        assert_eq!(
            bits(&padded(&done.sequence, expected.len())),
            bits(&expected),
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 2 * 5 + 2 * 2);
}

#[test]
fn golden_padding_is_the_longest_stage2_sequence() {
    for (run, longest) in [("run-s017-a050-a060", 111), ("run-s001-p003-p004", 97)] {
        let stage2 = golden(run, "raw_denoised.npz");
        let ours = golden_names(run)
            .iter()
            .map(|n| golden_stage2(&stage2, n).0[0])
            .max()
            .unwrap();
        let (shape, _) = array::<f32>(&golden(run, "NTU60_CS.npz"), "x_test");
        assert_eq!((ours, shape[1]), (longest, longest));
    }
}

#[test]
fn the_ntu120_rule_duplicates_single_actors() {
    let name = "S001C001P004R001A017";
    let path = Path::new("S001C001P004R001A017.skeleton");
    let zeros = process_file(&raw_file(name), path, SingleActor::Zeros).unwrap();
    let copy = process_file(&raw_file(name), path, SingleActor::Duplicate).unwrap();
    for t in 0..zeros.sequence.frames {
        let (z, c) = (zeros.sequence.frame(t), copy.sequence.frame(t));
        assert_eq!(bits(&z[..75]), bits(&c[..75]));
        assert_eq!(
            bits(&c[75..]),
            bits(&c[..75]),
            "frame {t}: person 2 copies person 1"
        );
        assert!(
            z[75..].iter().all(|v| v.to_bits() == 0),
            "frame {t}: NTU60 zero-pads"
        );
    }
}
