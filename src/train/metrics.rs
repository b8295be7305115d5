//! Classification accuracy from logits.

/// Top-1 and top-5 hits of (rows × classes) `logits` against `labels`: a row counts as a hit if
/// its label is among its k largest logits (ties broken toward the lower class index).
pub fn top_k_hits(logits: &[f32], labels: &[u32], classes: usize) -> (usize, usize) {
    let mut hits = (0, 0);
    for (row, &label) in logits.chunks(classes).zip(labels) {
        let target = row[label as usize];
        let rank = row
            .iter()
            .enumerate()
            .filter(|&(c, &v)| v > target || (v == target && c < label as usize))
            .count();
        hits.0 += usize::from(rank < 1);
        hits.1 += usize::from(rank < 5);
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_count_larger_logits() {
        let logits = [
            0.1, 0.9, 0.0, 0.0, 0.0, 0.0, // label 1 is the largest
            0.6, 0.5, 0.4, 0.3, 0.2, 0.1, // label 4 is fifth
            0.6, 0.5, 0.4, 0.3, 0.2, 0.1, // label 5 is sixth
        ];
        assert_eq!(top_k_hits(&logits, &[1, 4, 5], 6), (1, 2));
    }
}
