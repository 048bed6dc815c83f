//! Packs what a firmware example needs into one blob for QEMU's loader, with the host's answer
//! for the device to compare against.
//!
//!     cargo run --example firmware_pack -- minilm OUT.blob ["sentence"]
//!     cargo run --example firmware_pack -- splade-int8 OUT.blob ["sentence with one [MASK]"]
//!
//! `minilm`: config.json, vocab.txt, model.safetensors (f32), the sentence, and the host's f32
//! sentence embedding. `splade-int8`: config.json, vocab.txt (from tokenizer.json's vocabulary),
//! the model quantized to int8 on the host, the sentence, and the host's f32 top-1 token id.
//!
//! Layout: "BERTBLOB", 5 × (offset u64, length u64), total length u64, then the sections, each
//! 64-byte aligned (so f32 data stays 4-byte aligned and is used zero-copy).

use bert_core::quantize::{quantize, QuantDtype};
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::FillMask;
use bert_std::pipelines::fill_mask::FillMaskOptions;
use bert_std::{LoadOptions, Pipeline};
use examples::{exit_on_error, model_or_default};

fn vocab_txt(tokenizer_json: &[u8]) -> Vec<u8> {
    let json: serde_json::Value =
        serde_json::from_slice(tokenizer_json).expect("tokenizer.json parses");
    let vocab = json["model"]["vocab"]
        .as_object()
        .expect("a WordPiece vocabulary");
    let mut by_id: Vec<(u64, &str)> = vocab
        .iter()
        .map(|(t, id)| (id.as_u64().expect("id"), t.as_str()))
        .collect();
    by_id.sort();
    assert!(
        by_id.iter().enumerate().all(|(i, (id, _))| *id == i as u64),
        "dense ids"
    );
    by_id
        .iter()
        .flat_map(|(_, t)| [t.as_bytes(), b"\n"].concat())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(kind), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: firmware_pack minilm|splade-int8 OUT.blob [sentence]");
        std::process::exit(2);
    };
    let sections: Vec<Vec<u8>> = match kind.as_str() {
        "minilm" => {
            let sentence = args
                .get(2)
                .map(String::as_str)
                .unwrap_or("A tiny computer embeds this sentence without an operating system.");
            let dir = exit_on_error(model_or_default(None, bert_std::fetch::MINILM));
            let st = exit_on_error(SentenceEmbeddings::load(&dir, LoadOptions::default()));
            let expected = exit_on_error(st.run_one(sentence, &()));
            eprintln!(
                "host: sentence {sentence:?}, embedding[0..4] = {:?}",
                &expected[..4]
            );
            let read = |name: &str| {
                std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
            };
            vec![
                read("config.json"),
                read("vocab.txt"),
                read("model.safetensors"),
                sentence.as_bytes().to_vec(),
                expected.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ]
        }
        "splade-int8" => {
            let sentence = args
                .get(2)
                .map(String::as_str)
                .unwrap_or("The capital of France is [MASK].");
            let dir = exit_on_error(model_or_default(None, bert_std::fetch::SPLADE_TINY));
            let fm = exit_on_error(FillMask::load(&dir, LoadOptions::default()));
            let filled = exit_on_error(fm.run_one(sentence, &FillMaskOptions { top_k: 1 }));
            let top = &filled.masks[0].candidates[0];
            eprintln!(
                "host f32: {sentence:?} -> {:?} (id {}, p = {:.4})",
                top.token_str, top.token, top.score
            );
            let read = |name: &str| {
                std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
            };
            let weights = read("model.safetensors");
            let int8 = quantize(&[&weights], QuantDtype::Int8).expect("quantizes");
            vec![
                read("config.json"),
                vocab_txt(&read("tokenizer.json")),
                int8,
                sentence.as_bytes().to_vec(),
                u64::from(top.token).to_le_bytes().to_vec(),
            ]
        }
        other => {
            eprintln!("unknown kind {other:?}: minilm or splade-int8");
            std::process::exit(2);
        }
    };
    let mut blob = vec![0u8; 96];
    blob[..8].copy_from_slice(b"BERTBLOB");
    for (i, s) in sections.iter().enumerate() {
        while !blob.len().is_multiple_of(64) {
            blob.push(0);
        }
        let off = blob.len() as u64;
        blob[8 + 16 * i..16 + 16 * i].copy_from_slice(&off.to_le_bytes());
        blob[16 + 16 * i..24 + 16 * i].copy_from_slice(&(s.len() as u64).to_le_bytes());
        blob.extend_from_slice(s);
    }
    let total = blob.len() as u64;
    blob[88..96].copy_from_slice(&total.to_le_bytes());
    std::fs::write(out, &blob).unwrap_or_else(|e| panic!("{out}: {e}"));
    eprintln!("wrote {out}: {} bytes", blob.len());
}
