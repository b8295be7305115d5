//! The float32 fairness bar of the PyTorch parity tests (tests/fixtures/README.md, "The float32
//! envelope"): an engine tensor passes when its error against the float64 reference is within a
//! small multiple of the largest error of PyTorch's own float32 runs on inputs perturbed by 1e-6,
//! plus a floor for the rounding of sums taken in another order.

/// How many times PyTorch's float32 envelope an engine tensor may be off.
pub const ENVELOPE_MULTIPLE: f64 = 4.0;
/// Relative error any float32 engine may have even where PyTorch's runs all agree.
pub const ENVELOPE_FLOOR: f64 = 2e-5;

/// ‖got − want‖₂ / ‖want‖₂.
pub fn relative_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        diff += (f64::from(g) - f64::from(w)).powi(2);
        norm += f64::from(w).powi(2);
    }
    (diff / norm.max(1e-300)).sqrt()
}

/// The bound for a tensor whose PyTorch float32 envelope is `envelope`.
pub fn envelope_bound(envelope: f32) -> f64 {
    ENVELOPE_MULTIPLE * f64::from(envelope) + ENVELOPE_FLOOR
}

/// The worst errors of a comparison, as multiples of their bounds, for the test's report.
#[derive(Debug, Default)]
pub struct Tally {
    worst: Vec<(f64, String)>,
    failures: Vec<String>,
}

impl Tally {
    /// Records `error` of `what` against the envelope's bound.
    pub fn check(&mut self, what: &str, error: f64, envelope: f32) {
        let bound = envelope_bound(envelope);
        self.worst.push((error / bound, what.to_string()));
        // NaN fails too.
        if error.is_nan() || error > bound {
            self.failures.push(format!(
                "{what}: relative error {error:.3e} over the bound {bound:.3e} (PyTorch float32 envelope {envelope:.3e})"
            ));
        }
    }

    /// Panics listing every failure; prints the worst ratios either way.
    pub fn finish(mut self, name: &str) {
        self.worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top: Vec<String> = self
            .worst
            .iter()
            .take(3)
            .map(|(r, w)| format!("{w} at {r:.2} of its bound"))
            .collect();
        eprintln!(
            "{name}: {} tensors, worst: {}",
            self.worst.len(),
            top.join("; ")
        );
        assert!(
            self.failures.is_empty(),
            "{name}: {} of {} tensors off:\n{}",
            self.failures.len(),
            self.worst.len(),
            self.failures.join("\n")
        );
    }
}
