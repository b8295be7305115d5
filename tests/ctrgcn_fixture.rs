//! The PyTorch CTR-GCN fixture is well-formed: its keys follow the state-dict listing, its
//! encodings decode to finite values, and its parts agree with each other (input with the committed
//! clips, loss with logits, BN statistics with the input, the SGD step with the gradients).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::ctrgcn_fixture::{FORMAT, Fixture, Reader, Tensor, cancelled_by_batch_norm};
use common::state_dict_listing::{self, Entry};
use sfhead::data::Place;
use sfhead::model::Topology;

const LR: f64 = 0.1;
const MOMENTUM: f64 = 0.9;
const WEIGHT_DECAY: f64 = 4e-4;
const BN_MOMENTUM: f64 = 0.1;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn listing() -> &'static [Entry] {
    static LISTING: OnceLock<Vec<Entry>> = OnceLock::new();
    LISTING.get_or_init(|| {
        state_dict_listing::read(&fixtures().join("ctrgcn-state-dict.txt")).unwrap()
    })
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        Fixture::load(&fixtures().join("ctrgcn_ntu60.safetensors"), listing()).unwrap()
    })
}

fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn all_finite(t: &Tensor) -> bool {
    t.data.iter().all(|v| v.is_finite())
}

#[test]
fn listing_has_822_entries_564_parameters_and_the_ntu60_count() {
    let listing = listing();
    assert_eq!(listing.len(), 822);
    let params: Vec<&Entry> = listing.iter().filter(|e| e.is_parameter()).collect();
    assert_eq!(params.len(), 564);
    assert_eq!(params.iter().map(|e| e.numel()).sum::<usize>(), 1_446_672);
    let running: usize = listing
        .iter()
        .filter(|e| e.key.contains("running_"))
        .map(Entry::numel)
        .sum();
    assert_eq!(running, 9_708);
    assert_eq!(listing[0].key, "data_bn.weight");
    assert_eq!(listing[821].key, "fc.bias");
}

#[test]
fn listing_faults_name_the_line() {
    let text = "# header\ndata_bn.weight  150  param  150\nl1.gcn1.PA  3x25x25  param  1874\n";
    let e = state_dict_listing::parse(text, Path::new("listing.txt")).unwrap_err();
    assert_eq!(e.place, Place::Line(3));
    assert!(e.message.contains("does not match its shape (1875)"), "{e}");
    let e = state_dict_listing::parse("a  3xq  param  3\n", Path::new("l.txt")).unwrap_err();
    assert_eq!(
        (e.place, e.message.as_str()),
        (Place::Line(1), "bad shape `3xq`")
    );
}

#[test]
fn fixture_follows_the_state_dict_order_and_shapes() {
    let f = fixture();
    let listed: Vec<&str> = listing().iter().map(|e| e.key.as_str()).collect();
    let recorded: Vec<&str> = f.metadata["state_dict_keys"].lines().collect();
    assert_eq!(recorded, listed, "PyTorch's state_dict() order");
    let params: Vec<&Entry> = listing().iter().filter(|e| e.is_parameter()).collect();
    assert_eq!(f.grads.entries.len(), 564);
    assert_eq!(f.updated.entries.len(), 564);
    for ((key, grad), entry) in f.grads.entries.iter().zip(&params) {
        assert_eq!((key, &grad.shape), (&entry.key, &entry.shape));
    }
    // 86 BNs: running_mean and running_var each, and a counter.
    assert_eq!(f.weights.entries.len(), 564 + 2 * 86);
    assert_eq!(f.running_after.entries.len(), 2 * 86);
    assert_eq!(f.batches_tracked.entries.len(), 86);
    assert_eq!(f.x.shape, [4, 3, 64, 25, 2]);
    assert_eq!(f.logits.shape, [4, 60]);
}

#[test]
fn fixture_stays_under_ten_megabytes() {
    let size = |name: &str| std::fs::metadata(fixtures().join(name)).unwrap().len();
    let total = size("ctrgcn_ntu60.safetensors") + size("ntu60_clips.safetensors");
    assert!(total < 10_000_000, "{total} bytes");
}

#[test]
fn weights_are_finite_and_off_the_initial_special_values() {
    let f = fixture();
    assert!(f.weights.entries.iter().all(|(_, t)| all_finite(t)));
    for block in 1..=10 {
        let alpha = f.weights.get(&format!("l{block}.gcn1.alpha")).unwrap();
        assert!(
            alpha.data[0].abs() >= 0.25,
            "l{block} alpha {}",
            alpha.data[0]
        );
        let gamma = f.weights.get(&format!("l{block}.gcn1.bn.weight")).unwrap();
        assert!(
            gamma.data.iter().all(|g| g.abs() > 0.1),
            "l{block} gcn1.bn.weight"
        );
        let pa = f.weights.get(&format!("l{block}.gcn1.PA")).unwrap();
        let moved = pa
            .data
            .iter()
            .zip(&f.adjacency.data)
            .filter(|(p, a)| p != a);
        assert!(moved.count() > pa.data.len() / 2, "l{block} PA is mostly A");
    }
    for (key, t) in &f.weights.entries {
        if key.ends_with("running_var") {
            assert!(t.data.iter().all(|&v| v > 0.0), "{key}");
        }
        if key.ends_with("running_mean") || key.ends_with("bias") {
            assert!(max_abs(&t.data) > 0.0, "{key} is all zero");
        }
    }
    assert!(f.batches_tracked.entries.iter().all(|(_, n)| *n > 0));
}

#[test]
fn adjacency_equals_the_topology_module() {
    let a = Topology::shipped("ntu25").unwrap().spatial_adjacency();
    assert_eq!(a.shape().to_vec(), fixture().adjacency.shape);
    assert_eq!(a.as_slice(), &fixture().adjacency.data[..]);
}

/// The feeder's test-mode transform, computed here in f64 from the committed stage-3 rows.
fn test_transform(row: &[f32], frames: usize) -> (Vec<f64>, usize) {
    const WINDOW: usize = 64;
    // row[t·150 + m·75 + v·3 + c]
    let at = |t: usize, c: usize, v: usize, m: usize| f64::from(row[t * 150 + m * 75 + v * 3 + c]);
    let valid = (0..frames)
        .filter(|&t| {
            row[t * 150..(t + 1) * 150]
                .iter()
                .map(|&x| f64::from(x))
                .sum::<f64>()
                != 0.0
        })
        .count();
    let border = (0.025 * valid as f64) as usize;
    let length = valid - 2 * border;
    let mut out = vec![0.0; 3 * WINDOW * 25 * 2];
    for j in 0..WINDOW {
        let src = ((j as f64 + 0.5) * length as f64 / WINDOW as f64 - 0.5).max(0.0);
        let i0 = src.floor() as usize;
        let i1 = (i0 + 1).min(length - 1);
        let lambda = src - i0 as f64;
        for c in 0..3 {
            for v in 0..25 {
                for m in 0..2 {
                    let a = at(border + i0, c, v, m);
                    let b = at(border + i1, c, v, m);
                    out[((c * WINDOW + j) * 25 + v) * 2 + m] = (1.0 - lambda) * a + lambda * b;
                }
            }
        }
    }
    (out, valid)
}

#[test]
fn input_is_the_test_transform_of_the_committed_clips() {
    let f = fixture();
    let path = fixtures().join("ntu60_clips.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let clips = Reader::new(&path, &bytes).unwrap();
    let names: Vec<String> = clips.metadata().unwrap()["order"]
        .split(',')
        .map(String::from)
        .collect();
    assert_eq!(f.metadata["samples"], names.join(","));
    let valid_recorded: Vec<usize> = f.metadata["valid_frames"]
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let per_sample = f.x.data.len() / names.len();
    for (n, name) in names.iter().enumerate() {
        let clip = clips.f32(name, None).unwrap();
        assert_eq!(clip.shape[1], 150, "{name}");
        let (expected, valid) = test_transform(&clip.data, clip.shape[0]);
        assert_eq!(valid, valid_recorded[n], "{name}");
        let got = &f.x.data[n * per_sample..(n + 1) * per_sample];
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(&g, &e)| (f64::from(g) - e).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1e-6 * scale, "{name}: off by {worst}");
        let label: i64 = name[name.find('A').unwrap() + 1..].parse().unwrap();
        assert_eq!(f.y[n], label - 1, "{name}");
        // Every clip of the batch has two actors.
        assert!(got.chunks(2).any(|pair| pair[1] != 0.0), "{name}");
    }
}

#[test]
fn loss_is_the_batch_mean_cross_entropy_of_the_logits() {
    let f = fixture();
    let k = f.logits.shape[1];
    let total: f64 = f
        .logits
        .data
        .chunks(k)
        .zip(&f.y)
        .map(|(z, &y)| {
            let m = z.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
            let lse = m + z
                .iter()
                .map(|&v| (f64::from(v) - m).exp())
                .sum::<f64>()
                .ln();
            lse - f64::from(z[y as usize])
        })
        .sum();
    let loss = total / f.y.len() as f64;
    assert!(all_finite(&f.logits));
    assert!(
        (loss - f64::from(f.loss)).abs() <= 1e-5 * loss,
        "{loss} vs {}",
        f.loss
    );
}

#[test]
fn data_bn_running_statistics_follow_the_batch_statistics_of_x() {
    let f = fixture();
    let [n, c, t, v, m] = f.x.shape[..] else {
        panic!("x shape {:?}", f.x.shape)
    };
    let mean_before = f.weights.get("data_bn.running_mean").unwrap();
    let var_before = f.weights.get("data_bn.running_var").unwrap();
    let mean_after = f.running_after.get("data_bn.running_mean").unwrap();
    let var_after = f.running_after.get("data_bn.running_var").unwrap();
    let count = (n * t) as f64;
    for mi in 0..m {
        for vi in 0..v {
            for ci in 0..c {
                let channel = mi * v * c + vi * c + ci;
                let values: Vec<f64> = (0..n)
                    .flat_map(|ni| (0..t).map(move |ti| (ni, ti)))
                    .map(|(ni, ti)| {
                        f64::from(f.x.data[(((ni * c + ci) * t + ti) * v + vi) * m + mi])
                    })
                    .collect();
                let mean = values.iter().sum::<f64>() / count;
                let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1.0);
                let want_mean =
                    (1.0 - BN_MOMENTUM) * f64::from(mean_before.data[channel]) + BN_MOMENTUM * mean;
                let want_var =
                    (1.0 - BN_MOMENTUM) * f64::from(var_before.data[channel]) + BN_MOMENTUM * var;
                let got_mean = f64::from(mean_after.data[channel]);
                let got_var = f64::from(var_after.data[channel]);
                assert!(
                    (got_mean - want_mean).abs() <= 1e-6,
                    "channel {channel} mean"
                );
                assert!(
                    (got_var - want_var).abs() <= 1e-6 * want_var,
                    "channel {channel} var"
                );
            }
        }
    }
    for ((key, before), (_, after)) in f
        .batches_tracked
        .entries
        .iter()
        .zip(&f.batches_tracked_after.entries)
    {
        assert_eq!(*after, before + 1, "{key}");
    }
    for (key, t) in &f.running_after.entries {
        assert!(all_finite(t), "{key}");
    }
}

#[test]
fn every_gradient_is_exercised_except_biases_cancelled_by_batch_norm() {
    let f = fixture();
    assert!(f.grads.entries.iter().all(|(_, g)| all_finite(g)));
    let largest = f
        .grads
        .entries
        .iter()
        .map(|(_, g)| max_abs(&g.data))
        .fold(0.0, f32::max);
    let mut cancelled = 0;
    for (key, g) in &f.grads.entries {
        let size = max_abs(&g.data);
        if cancelled_by_batch_norm(key) {
            cancelled += 1;
            // The float64 reference leaves only its own rounding noise.
            assert!(
                size <= 1e-12 * largest,
                "{key}: {size} is more than rounding noise"
            );
        } else {
            assert!(size >= 1e-5 * largest, "{key}: {size} is not exercised");
        }
    }
    // 4 TCN entry convs + 2 temporal convs per block, plus 3 `down` and 2 residual convs.
    assert_eq!(cancelled, 10 * 6 + 3 + 2);
    for block in 1..=10 {
        for branch in 0..3 {
            for conv in ["conv1", "conv2", "conv4"] {
                let key = format!("l{block}.gcn1.convs.{branch}.{conv}.weight");
                assert!(max_abs(&f.grads.get(&key).unwrap().data) > 0.0, "{key}");
            }
        }
    }
}

#[test]
fn update_is_one_nesterov_sgd_step_of_the_gradients() {
    let f = fixture();
    let grads = f.grads.entries.iter();
    for ((key, grad), (_, updated)) in grads.zip(&f.updated.entries) {
        let weight = f.weights.get(key).unwrap();
        assert!(all_finite(updated), "{key}");
        // The change is stored as float16 with one scale per tensor: values far below the
        // tensor's largest change keep only an absolute precision.
        let largest_step = f64::from(max_abs(&f.steps.get(key).unwrap().data));
        for ((&p, &g), &q) in weight.data.iter().zip(&grad.data).zip(&updated.data) {
            // First step: buf = g + wd·p, direction = g + wd·p + momentum·buf.
            let d = f64::from(g) + WEIGHT_DECAY * f64::from(p);
            let want = -LR * (1.0 + MOMENTUM) * d;
            let got = f64::from(q) - f64::from(p);
            let tolerance = 1e-3 * want.abs()
                + 2.0 * f64::from(f32::EPSILON) * f64::from(p.abs().max(q.abs()))
                + largest_step * 2f64.powi(-24);
            assert!(
                (got - want).abs() <= tolerance,
                "{key}: step {got}, expected {want}"
            );
        }
    }
}

#[test]
fn decoder_errors_name_the_file_and_key() {
    use safetensors::{Dtype, tensor::TensorView};
    let bytes = [0u8; 12];
    let views = [
        ("a", TensorView::new(Dtype::U8, vec![3, 4], &bytes).unwrap()),
        ("b", TensorView::new(Dtype::F32, vec![3], &bytes).unwrap()),
    ];
    let data = safetensors::serialize(views, None).unwrap();
    let path = Path::new("made-up.safetensors");
    let file = Reader::new(path, &data).unwrap();
    let e = file.f32("a", None).unwrap_err();
    assert_eq!(
        (e.path.as_path(), &e.place),
        (path, &Place::Key("a".into()))
    );
    assert_eq!(e.message, "expected F32, found U8");
    let e = file.f32("b", Some(&[4])).unwrap_err();
    assert_eq!(e.message, "expected shape [4], found [3]");
    let e = file.f24("c", &[4]).unwrap_err();
    assert_eq!(
        (e.place, e.message.as_str()),
        (Place::Key("c".into()), "missing")
    );
    let e = Reader::new(path, &data[..20]).err().unwrap();
    assert_eq!(e.place, Place::File);
    let e = Fixture::load(Path::new("no/fixture.safetensors"), listing()).unwrap_err();
    assert_eq!(e.path, Path::new("no/fixture.safetensors"));
}

#[test]
fn decoder_rejects_a_file_of_another_format_or_with_missing_keys() {
    use safetensors::{Dtype, tensor::TensorView};
    let bytes = [0u8; 4];
    let write = |format: &str| {
        let views = [("loss", TensorView::new(Dtype::F32, vec![], &bytes).unwrap())];
        let meta = [("format".to_string(), format.to_string())].into();
        safetensors::serialize(views, Some(meta)).unwrap()
    };
    let path = Path::new("partial.safetensors");
    let e = Fixture::decode(path, &write("other-1"), listing()).unwrap_err();
    assert_eq!(e.place, Place::Key("__metadata__.format".into()));
    let e = Fixture::decode(path, &write(FORMAT), listing()).unwrap_err();
    assert_eq!(
        (e.place, e.message.as_str()),
        (Place::Key("adjacency".into()), "missing")
    );
}
