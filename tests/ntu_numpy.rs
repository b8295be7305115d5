//! numpy's float32 reductions reproduced bit for bit, against values numpy computed
//! (`tests/data/ntu/numpy_reductions.py`).

mod common;

use sfhead::data::ntu::{pairwise_sum, variance_sum};

struct Case {
    kind: String,
    expected: f32,
    values: Vec<f32>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(common::ntu_dir().join("numpy_reductions.txt")).unwrap();
    let float = |hex: &str| f32::from_bits(u32::from_str_radix(hex, 16).unwrap());
    text.lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            Case {
                kind: fields.next().unwrap().to_string(),
                expected: float(fields.next().unwrap()),
                values: fields.map(float).collect(),
            }
        })
        .collect()
}

#[test]
fn sums_match_numpy_and_differ_from_a_plain_loop() {
    let sums: Vec<Case> = cases().into_iter().filter(|c| c.kind == "sum").collect();
    assert_eq!(sums.len(), 48);
    let mut loop_differs = 0;
    for case in &sums {
        let ours = pairwise_sum(&case.values);
        assert_eq!(
            ours.to_bits(),
            case.expected.to_bits(),
            "{} values",
            case.values.len()
        );
        let plain = case.values.iter().fold(0.0f32, |s, &x| s + x);
        loop_differs += usize::from(plain.to_bits() != ours.to_bits());
    }
    assert!(
        loop_differs > 10,
        "the cases tell pairwise from sequential ({loop_differs})"
    );
}

#[test]
fn variance_sums_match_numpy_and_differ_from_f64() {
    let cases: Vec<Case> = cases().into_iter().filter(|c| c.kind == "varsum").collect();
    assert_eq!(cases.len(), 12);
    let mut f64_differs = 0;
    for case in &cases {
        let rows: Vec<[f32; 3]> = case
            .values
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let ours = variance_sum(&rows);
        assert_eq!(
            ours.to_bits(),
            case.expected.to_bits(),
            "{} rows",
            rows.len()
        );
        let n = rows.len() as f64;
        let exact: f64 = (0..3)
            .map(|c| {
                let mean = rows.iter().map(|r| f64::from(r[c])).sum::<f64>() / n;
                rows.iter()
                    .map(|r| (f64::from(r[c]) - mean).powi(2))
                    .sum::<f64>()
                    / n
            })
            .sum();
        f64_differs += usize::from((exact as f32).to_bits() != ours.to_bits());
    }
    assert!(f64_differs > 0, "the cases tell float32 steps from float64");
}
