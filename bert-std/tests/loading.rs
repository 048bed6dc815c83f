//! Weights are borrowed, not copied, whether the file is memory-mapped or read into memory.
mod common;

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::LoadOptions;
use common::*;

#[test]
fn mapped_and_read_weights_are_both_zero_copy_and_agree() {
    let mut out = Vec::new();
    for mmap in [true, false] {
        let st = SentenceEmbeddings::load(
            minilm(),
            LoadOptions {
                mmap,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        let bert = st.bert.task_model().bert();
        let word = &bert.embeddings.word_embeddings.weight.storage;
        let query = &bert.encoder.layer[5]
            .attention
            .self_attention
            .query
            .weight
            .storage;
        assert!(
            word.is_borrowed() && query.is_borrowed(),
            "mmap = {mmap}: weights borrowed"
        );
        out.push(st.embed(&["zero-copy either way"]).unwrap().remove(0));
    }
    assert_eq!(out[0], out[1]);
}
