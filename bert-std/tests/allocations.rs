//! Pipelines keep their workspaces between calls (the core's allocate-once rule, one level up):
//! a second call of a shape seen before builds no workspace and allocates far less than one
//! workspace holds (what is left is tokenization and the results). Counted with a global
//! allocator.
mod common;
mod counting;

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::FillMask;
use bert_std::{LoadOptions, Pipeline};
use common::*;
use counting::bytes_during;

#[test]
fn pipelines_reuse_their_workspaces() {
    let options = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let st = SentenceEmbeddings::load(minilm(), options).unwrap();
    let texts: Vec<String> = (0..16)
        .map(|i| format!("sentence {i} of a batch that is long enough to matter here"))
        .collect();
    let first = bytes_during(|| drop(st.embed(&texts).unwrap())).0;
    assert_eq!(st.bert.workspaces_built(), 1);
    let second = bytes_during(|| drop(st.embed(&texts).unwrap())).0;
    assert_eq!(
        st.bert.workspaces_built(),
        1,
        "a shape seen before builds nothing"
    );
    // A smaller call fits the same workspace.
    st.embed(&["short"]).unwrap();
    assert_eq!(st.bert.workspaces_built(), 1);
    eprintln!("embed 16 texts: first call {first} bytes, second {second} bytes");
    assert!(
        second * 4 < first,
        "second call {second} B vs first {first} B"
    );

    let fm = FillMask::load(splade(), options).unwrap();
    let masked = ["a [MASK] b", "the [MASK] of [MASK]"];
    fm.run(&masked, &Default::default()).unwrap();
    let built = fm.bert.workspaces_built();
    fm.run(&masked, &Default::default()).unwrap();
    fm.run(&masked[..1], &Default::default()).unwrap();
    assert_eq!(fm.bert.workspaces_built(), built);
}
