//! Packs what the aarch64 firmware needs into one blob for QEMU's loader: config.json, vocab.txt,
//! model.safetensors, a sentence, and the host's f32 sentence embedding of it (bert-std, the
//! `tokenizers` crate) for the device to compare against.
//!
//!     cargo run --release --example firmware_pack -- OUT.blob ["sentence"]
//!
//! Layout: "BERTBLOB", 5 × (offset u64, length u64), total length u64, then the sections, each
//! 64-byte aligned (so the weights' f32 data stays 4-byte aligned and is used zero-copy).

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::LoadOptions;
use examples::{exit_on_error, model_or_default};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: firmware_pack OUT.blob [sentence]");
        std::process::exit(2);
    };
    let sentence = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("A tiny computer embeds this sentence without an operating system.");
    let dir = exit_on_error(model_or_default(None, bert_std::fetch::MINILM));
    let st = exit_on_error(SentenceEmbeddings::load(&dir, LoadOptions::default()));
    let expected = exit_on_error(st.embed_one(sentence));
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let sections: Vec<Vec<u8>> = vec![
        read("config.json"),
        read("vocab.txt"),
        read("model.safetensors"),
        sentence.as_bytes().to_vec(),
        expected.iter().flat_map(|x| x.to_le_bytes()).collect(),
    ];
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
    eprintln!(
        "wrote {out}: {} bytes; sentence {sentence:?}; expected embedding[0..4] = {:?}",
        blob.len(),
        &expected[..4]
    );
}
