//! Intent matching as a device does it: a sentence's embedding against stored ones, by cosine.
//! The firmware and the host that computes its expected answers run this same code, so their
//! picks and cosines agree bit for bit when their embeddings do.

/// Cosine similarity, summed in index order (`dot / max(‖a‖‖b‖, 1e-12)`).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    dot / libm::sqrtf(na * nb).max(1e-12)
}

/// Scales `v` to unit length (`v / max(‖v‖, 1e-12)`, sentence-transformers' `Normalize`).
pub fn normalize(v: &mut [f32]) {
    let norm = libm::sqrtf(v.iter().fold(0.0f32, |acc, x| acc + x * x)).max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// The stored embedding nearest to `query` (`anchors` holds them back to back, each as long
/// as the query): its index and cosine; the first wins a tie. `None` when there are none.
///
/// ```
/// use bert_core::intent::nearest;
/// let anchors = [1.0, 0.0, 0.0, 1.0];
/// let (i, cos) = nearest(&anchors, &[0.2, 0.9]).unwrap();
/// assert_eq!(i, 1);
/// assert!(cos > 0.97);
/// ```
pub fn nearest(anchors: &[f32], query: &[f32]) -> Option<(usize, f32)> {
    if query.is_empty() {
        return None;
    }
    anchors
        .chunks_exact(query.len())
        .map(|a| cosine(a, query))
        .enumerate()
        .fold(None, |best, (i, c)| match best {
            Some((_, b)) if b >= c => best,
            _ => Some((i, c)),
        })
}
