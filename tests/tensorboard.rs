//! The TensorBoard event stream against one written by TensorBoard's own protobufs and record
//! writer (tests/reference/make_tensorboard_golden.py).

use sfhead::train::tensorboard::{EventWriter, Scalar};

#[test]
fn events_match_tensorboards_own_writer_byte_for_byte() {
    let mut w = EventWriter::new(1_764_590_000.5);
    for (step, (loss, top1)) in [(2.25, 0.125), (1.5, 0.375), (f32::NAN, 0.5)]
        .into_iter()
        .enumerate()
    {
        let scalars = [
            Scalar {
                tag: "train/loss".into(),
                value: loss,
            },
            Scalar {
                tag: "test/top1".into(),
                value: top1,
            },
        ];
        w.scalars(1_764_590_100.25 + step as f64, step as i64 + 1, &scalars);
    }
    let golden = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tensorboard/golden.tfevents"
    ))
    .expect("the golden event file");
    assert_eq!(w.into_bytes(), golden);
}
