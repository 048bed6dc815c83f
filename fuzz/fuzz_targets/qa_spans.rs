//! Arbitrary logits and masks through QA span decoding: spans are ordered, inside the window,
//! on allowed tokens and within max_answer_len.
#![no_main]
use libfuzzer_sys::fuzz_target;

use bert_std::pipelines::qa::best_spans;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let k = data[0] as usize % 20;
    let max_len = data[1] as usize % 40;
    let body = &data[2..];
    let n = body.len() / 3;
    let start: Vec<f32> = body[..n].iter().map(|&b| b as f32 / 8.0 - 16.0).collect();
    let end: Vec<f32> = body[n..2 * n].iter().map(|&b| b as f32 / 8.0 - 16.0).collect();
    let allowed: Vec<bool> = body[2 * n..3 * n].iter().map(|&b| b & 1 == 1).collect();
    let (spans, null) = best_spans(&start, &end, &allowed, k, max_len);
    assert!(null.is_finite() && null >= 0.0);
    assert!(spans.len() <= k);
    for s in &spans {
        assert!(s.start <= s.end && s.end < n && s.end - s.start < max_len.max(1));
        assert!(allowed[s.start] && allowed[s.end]);
        assert!(s.score.is_finite() && s.score >= 0.0);
    }
});
