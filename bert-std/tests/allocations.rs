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
use counting::{bytes_during, bytes_on_this_thread_during};

/// The allocation counter is global: the tests of this binary take turns, so that one test's
/// allocations are never counted in another's figures.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn pipelines_reuse_their_workspaces() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

/// `bert info --budget`'s figures are what is allocated: a workspace's `size_in_bytes` is the
/// bytes its construction allocates (to within the thread list's own few bytes), and the
/// packed weight copies are no more than what packing allocates (which also holds the
/// temporaries of packing). MiniLM at 64 tokens and SPLADE-tiny (a masked LM) at 32.
#[test]
fn budget_figures_are_the_allocated_bytes() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    use bert_std::budget::Budget;
    use bert_std::{LoadedModel, ModelDir, Task};
    for (dir, task, tokens) in [(minilm(), Task::Base, 64), (splade(), Task::MaskedLm, 32)] {
        let model_dir = ModelDir::open(&dir).unwrap();
        let mut loaded = LoadedModel::load(&model_dir, task, true).unwrap();
        // On this thread only: the test harness allocates when another test ends.
        let (allocated, ws) =
            bytes_on_this_thread_during(|| loaded.model().workspace(1, tokens, 0).unwrap());
        let size = ws.size_in_bytes();
        assert!(
            size <= allocated && allocated <= size + 256,
            "workspace: {size} B counted, {allocated} B allocated"
        );
        let (allocated, ()) = bytes_during(|| loaded.prepack());
        let packed = loaded.model().bert().packed_bytes();
        assert!(
            packed > 0 && packed <= allocated,
            "{packed} B packed, {allocated} B allocated"
        );
        let budget = Budget::of_dir(&dir, tokens).unwrap();
        assert_eq!((budget.workspace, budget.packed), (size, packed));
        eprintln!("{}: {budget}", dir.display());
    }
    let longest = ModelDir::open(minilm())
        .unwrap()
        .config
        .max_sequence_length();
    for bad in [0, longest + 1] {
        let e = Budget::of_dir(&minilm(), bad).unwrap_err().to_string();
        assert!(e.contains("--max-tokens"), "{e}");
    }
}

/// The core's low-RAM forward runs in exactly the arena `bert info --budget` names for it and
/// allocates nothing; one f32 less is an error. MiniLM at 64 tokens, SPLADE-tiny's encoder at 32.
#[test]
fn the_low_ram_forward_runs_in_the_budgets_arena_and_allocates_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    use bert_core::model::low_ram::sentence_embedding;
    use bert_std::budget::Budget;
    use bert_std::{LoadedModel, ModelDir, Task};
    for (dir, task, tokens) in [(minilm(), Task::Base, 64), (splade(), Task::MaskedLm, 32)] {
        let budget = Budget::of_dir(&dir, tokens).unwrap();
        let loaded = LoadedModel::load(&ModelDir::open(&dir).unwrap(), task, true).unwrap();
        let bert = loaded.model().bert();
        let ids: Vec<u32> = (0..tokens as u32).map(|i| 1000 + 7 * i).collect();
        let mut arena = vec![0.0f32; budget.low_ram.unwrap() / 4];
        let (allocated, width) = bytes_on_this_thread_during(|| {
            sentence_embedding(bert, &ids, &mut arena)
                .unwrap()
                .mean
                .len()
        });
        assert_eq!((allocated, width), (0, bert.config.hidden_size));
        arena.pop();
        assert!(sentence_embedding(bert, &ids, &mut arena).is_err());
    }
}
