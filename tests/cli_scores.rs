//! The score commands of the binary: `sfhead ensemble` through its arguments.

use std::path::{Path, PathBuf};
use std::process::Command;

use sfhead::scores::Scores;

fn sfhead(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sfhead"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfhead-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Scores of `names` over 3 classes from a simple formula of (stream, sample, class).
fn stream(stream: usize, names: &[&str]) -> Scores {
    Scores {
        names: names.iter().map(|n| n.to_string()).collect(),
        classes: 3,
        values: (0..names.len() * 3)
            .map(|i| ((i * 7 + stream * 5) % 11) as f32 - 4.0)
            .collect(),
        labels: Some((0..names.len()).map(|i| (i % 3) as u32).collect()),
        features: None,
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ensemble_applies_the_preset_by_sample_name_and_refuses_other_sample_sets() {
    let dir = temp_dir("ensemble");
    let names = ["S001A001", "S001A002", "S002A001", "S002A003"];
    let mut files = Vec::new();
    let mut sets = Vec::new();
    for s in 0..4 {
        let mut set = stream(s, &names);
        // Every stream but the first in another order: the join is by name.
        if s > 0 {
            let order = [3, 1, 0, 2];
            set = Scores {
                names: order.iter().map(|&i| set.names[i].clone()).collect(),
                values: order.iter().flat_map(|&i| set.row(i).to_vec()).collect(),
                labels: set
                    .labels
                    .as_ref()
                    .map(|l| order.iter().map(|&i| l[i]).collect()),
                ..set
            };
        }
        let file = dir.join(format!("s{s}.safetensors"));
        set.write_safetensors(&file).unwrap();
        files.push(file);
        sets.push(stream(s, &names));
    }
    let out = dir.join("fused.safetensors");
    let mut args = vec!["ensemble"];
    args.extend(files.iter().map(|f| path_str(f)));
    args.extend(["--preset", "ctrgcn4", "--out", path_str(&out)]);
    let run = sfhead(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = String::from_utf8(run.stdout).unwrap();
    assert!(table.contains("fusion"), "{table}");
    let fused = Scores::read(&out).unwrap();
    assert_eq!(fused.names, names);
    let weights = [0.6f32, 0.6, 0.4, 0.4];
    for i in 0..names.len() {
        for c in 0..3 {
            let want: f32 = (0..4).map(|s| weights[s] * sets[s].row(i)[c]).sum();
            assert!((fused.row(i)[c] - want).abs() < 1e-5, "{i} {c}");
        }
    }
    assert!(dir.join("fused.pkl").exists());

    let short = dir.join("short.safetensors");
    stream(0, &names[..3]).write_safetensors(&short).unwrap();
    let refused = sfhead(&["ensemble", path_str(&files[0]), path_str(&short)]);
    assert!(!refused.status.success());
    let message = String::from_utf8(refused.stderr).unwrap();
    assert!(message.contains("S002A003"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}
