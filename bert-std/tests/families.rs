//! Families through bert-std, end to end: a RoBERTa directory (seeded model and a RoBERTa-shaped
//! tokenizer.json, from bert-core/tests/goldens/generate_families.py): text → tokenizer (`<s>`,
//! `</s>`, `<pad>` = 1) → positions offset by the padding index → mean pooling, against
//! transformers.
mod common;

use bert_core::SafeTensors;
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::{LoadOptions, Pipeline};
use common::*;

#[test]
fn roberta_sentence_embeddings_match_transformers() {
    let dir = repo_root().join("bert-core/tests/goldens/families/roberta");
    let st = SentenceEmbeddings::load(&dir, LoadOptions::default()).unwrap();
    assert_eq!(st.bert.tokenizer.special.pad, 1);
    let texts = [
        "the quick brown fox jumps over the lazy dog",
        "a tiny rust encoder",
    ];
    let got = st.run(&texts, &()).unwrap();
    let bytes =
        std::fs::read(repo_root().join("bert-core/tests/goldens/families/outputs.safetensors"))
            .unwrap();
    let golden = SafeTensors::parse(&bytes).unwrap();
    let want: Vec<f32> = golden
        .tensor("roberta.text_mean_embedding")
        .unwrap()
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let flat: Vec<f32> = got.concat();
    assert_eq!(flat.len(), want.len());
    let d = flat
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("roberta text embeddings: max abs diff {d:.3e}");
    assert!(d <= 1e-4, "{d}");
    // The ids the tokenizer gave are the ones transformers was run on.
    let enc = st.bert.encode(texts[1], None, 512).unwrap();
    let ids: Vec<i64> = golden
        .tensor("roberta.text_ids")
        .unwrap()
        .data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let row = &ids[ids.len() / 2..];
    let real: Vec<u32> = row.iter().filter(|&&x| x != 1).map(|&x| x as u32).collect();
    assert_eq!(enc.get_ids(), &real[..]);
}

/// Byte-level BPE (RoBERTa's kind) and SentencePiece-style Unigram (XLM-R's kind) tokenizers
/// give the ids the Python `tokenizers` gives, through the same `Tokenizer` the pipelines use.
#[test]
fn bpe_and_unigram_tokenizers_give_pythons_ids() {
    let root = repo_root().join("bert-core/tests/goldens/families");
    let bytes = std::fs::read(root.join("outputs.safetensors")).unwrap();
    let golden = SafeTensors::parse(&bytes).unwrap();
    let texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Café naïve résumé — unicode, digits 12345 and emoji 🙂!",
        "  leading spaces and  double  spaces  ",
    ];
    for kind in ["bpe", "unigram"] {
        let tok =
            bert_std::Tokenizer::from_file(&root.join(format!("tokenizer-{kind}/tokenizer.json")))
                .unwrap();
        assert_eq!(
            (tok.special.cls, tok.special.sep, tok.special.pad),
            (0, 2, 1)
        );
        for (i, text) in texts.iter().enumerate() {
            let want: Vec<u32> = golden
                .tensor(&format!("tokenizer-{kind}.{i}"))
                .unwrap()
                .data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
                .collect();
            let got = tok.encode(text, None).unwrap();
            assert_eq!(got.get_ids(), &want[..], "{kind}: {text:?}");
        }
    }
}

/// QA on a model whose position table is shorter than HF's default 384-token window: the
/// window is clamped to the model (40 tokens, stride 20 here), long contexts still answer, and
/// an explicit window past the model is a clear error.
#[test]
fn qa_windows_clamp_to_a_small_model() {
    use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
    let families = repo_root().join("bert-core/tests/goldens/families");
    let dir = Scratch::new("roberta-qa");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(families.join("roberta-qa").join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(
        families.join("roberta/tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    let qa = QuestionAnswering::load(&dir, LoadOptions::default()).unwrap();
    assert_eq!(qa.window(&QaOptions::default()).unwrap(), (40, 20));
    let context =
        "the quick brown fox jumps over the lazy dog and the cat sat on the mat ".repeat(8);
    let answers = qa
        .run_one(("where did the cat sit", &context), &QaOptions::default())
        .unwrap();
    assert_eq!(answers.len(), 1);
    assert!(!answers[0].answer.is_empty());
    let too_big = QaOptions {
        max_seq_len: Some(384),
        ..QaOptions::default()
    };
    let e = qa.window(&too_big).unwrap_err().to_string();
    assert!(
        e.contains("max_seq_len = 384 is over the limit of 40"),
        "{e}"
    );
}
