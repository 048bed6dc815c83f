//! `bert prune-vocab IN_DIR OUT_DIR --corpus FILE --max-vocab N`: a copy of a WordPiece model
//! directory whose vocabulary holds only the tokens a corpus needs (at most N, always the
//! special tokens and every single character: `bert_core::vocab_prune`), with the embedding
//! table (and a masked-LM output layer, if any) cut to the same rows. Every text of the corpus
//! whose tokens were all kept gets the same pieces, and so the same outputs, as before.
//!
//! The pruned `vocab.txt`, `tokenizer.json` (its vocabulary, added tokens, post-processor and
//! padding ids remapped), `config.json` (`vocab_size`) and `model.safetensors` are written as
//! one set (`crate::atomic::AtomicFiles`): a failed run leaves what was there.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use bert_core::safetensors::{serialize, SafeTensors};
use bert_core::vocab_prune::{gather_rows, keep};
use bert_core::Dtype;
use serde_json::{Map, Value};

use crate::atomic::AtomicFiles;
use crate::error::{Error, Result};
use crate::loaded::WeightBytes;
use crate::model_dir::{read_json, refuse_output_in_place, stage_derived_dir, ModelDir};
use crate::tokenizer::Tokenizer;

/// The largest vocabulary a pruned model may ask for (the full ones have 30,522 or 119,547).
pub const MAX_VOCAB: usize = 1 << 20;

/// The most corpus text [`read_corpus`] reads, in all.
pub const MAX_CORPUS_BYTES: u64 = 1 << 30;

/// The texts of corpus files: one per non-empty line; in a `.jsonl` file, every string value
/// of each line's object (so a question, its context and its answers each count). An error
/// names the file (and line) that is missing, not UTF-8, not JSON, or past
/// [`MAX_CORPUS_BYTES`] in all.
pub fn read_corpus(paths: &[impl AsRef<Path>]) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    let mut total = 0u64;
    for path in paths {
        let path = path.as_ref();
        let size = fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        total = total.saturating_add(size);
        if total > MAX_CORPUS_BYTES {
            return Err(Error::file(
                path,
                format!("the corpus is over {} MiB in all", MAX_CORPUS_BYTES >> 20),
            ));
        }
        let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let jsonl = path.extension().is_some_and(|e| e == "jsonl");
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            if !jsonl {
                texts.push(line.to_string());
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| {
                Error::file(path, format!("line {}: not a JSON object: {e}", n + 1))
            })?;
            collect_strings(&value, &mut texts);
        }
    }
    Ok(texts)
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    // Iterative, so that deeply nested JSON (serde_json stops at 128 levels anyway) cannot
    // exhaust the stack.
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
            Value::Array(a) => stack.extend(a.iter().rev()),
            Value::Object(o) => stack.extend(o.values().rev()),
            _ => {}
        }
    }
}

/// What [`prune_vocab_dir`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Tokens in the vocabulary before and after.
    pub vocab: (usize, usize),
    /// Bytes of weights before and after.
    pub weight_bytes: (u64, u64),
    /// Texts read and tokens they made (with the original vocabulary).
    pub corpus: (usize, u64),
    /// Distinct tokens the corpus used, and how many of them were kept.
    pub used: (usize, usize),
}

/// Tensors that have one row per token, cut with the vocabulary: the word embeddings and the
/// output layers of the masked-LM heads (BERT, DistilBERT, ELECTRA's generator).
fn is_vocab_rows(name: &str) -> bool {
    name.ends_with("word_embeddings.weight")
        || [
            "cls.predictions.decoder.weight",
            "cls.predictions.decoder.bias",
            "cls.predictions.bias",
            "vocab_projector.weight",
            "vocab_projector.bias",
            "generator_lm_head.weight",
            "generator_lm_head.bias",
        ]
        .contains(&name)
}

/// Write a copy of the WordPiece model directory `input` into `output` (created; must not be
/// the input) whose vocabulary is cut to at most `max_vocab` tokens chosen by how often
/// `texts` use them.
pub fn prune_vocab_dir<S: AsRef<str>>(
    input: &Path,
    output: &Path,
    texts: impl IntoIterator<Item = S>,
    max_vocab: usize,
) -> Result<PruneReport> {
    if !(1..=MAX_VOCAB).contains(&max_vocab) {
        return Err(Error::Input(format!(
            "--max-vocab must be between 1 and {MAX_VOCAB}, not {max_vocab}"
        )));
    }
    let dir = ModelDir::open(input)?;
    refuse_output_in_place(input, output)?;
    let vocab_path = input.join("vocab.txt");
    let vocab_text = fs::read_to_string(&vocab_path).map_err(|e| {
        Error::file(
            &vocab_path,
            format!("cannot read ({e}): pruning needs a WordPiece vocab.txt"),
        )
    })?;
    let tokens: Vec<&str> = vocab_text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    if tokens.len() != dir.config.vocab_size {
        return Err(Error::file(
            &vocab_path,
            format!(
                "{} tokens, but config.json says vocab_size {}",
                tokens.len(),
                dir.config.vocab_size
            ),
        ));
    }
    // How often the corpus uses each token, with the model's own tokenizer.
    let tokenizer = Tokenizer::from_dir(input)?;
    let mut counts = vec![0u64; tokens.len()];
    let (mut n_texts, mut n_tokens) = (0usize, 0u64);
    for text in texts {
        let encoding = tokenizer.encode(text.as_ref(), None)?;
        for &id in encoding.get_ids() {
            let slot = counts.get_mut(id as usize).ok_or_else(|| {
                Error::file(input, format!("the tokenizer gave id {id}, past vocab.txt"))
            })?;
            *slot += 1;
        }
        n_texts += 1;
        n_tokens += encoding.get_ids().len() as u64;
    }
    let kept = keep(&tokens, &counts, max_vocab).map_err(|e| Error::Input(e.to_string()))?;
    let used = counts.iter().filter(|&&c| c > 0).count();
    let used_kept = kept.iter().filter(|&&i| counts[i as usize] > 0).count();
    let new_id: HashMap<&str, u32> = kept
        .iter()
        .enumerate()
        .map(|(new, &old)| (tokens[old as usize], new as u32))
        .collect();

    let (weights, weights_before) = pruned_weights(&dir, &kept)?;
    let mut config = read_json(&input.join("config.json"))?;
    config["vocab_size"] = Value::from(kept.len());
    let mut vocab_out: String = kept
        .iter()
        .flat_map(|&i| [tokens[i as usize], "\n"])
        .collect();
    if vocab_out.is_empty() {
        vocab_out.push('\n');
    }

    let mut files = AtomicFiles::default();
    stage_derived_dir(
        input,
        output,
        &["config.json", "vocab.txt", "tokenizer.json"],
        &mut files,
    )?;
    let tokenizer_json = input.join("tokenizer.json");
    if tokenizer_json.is_file() {
        let mut json = read_json(&tokenizer_json)?;
        remap_tokenizer_json(&mut json, &new_id).map_err(|e| Error::file(&tokenizer_json, e))?;
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Input(e.to_string()))?;
        files.write(output.join("tokenizer.json"), text.as_bytes())?;
    }
    files.write(output.join("vocab.txt"), vocab_out.as_bytes())?;
    let config = serde_json::to_string_pretty(&config).map_err(|e| Error::Input(e.to_string()))?;
    files.write(output.join("config.json"), config.as_bytes())?;
    files.write(output.join("model.safetensors"), &weights)?;
    files.commit()?;
    Ok(PruneReport {
        vocab: (tokens.len(), kept.len()),
        weight_bytes: (weights_before, weights.len() as u64),
        corpus: (n_texts, n_tokens),
        used: (used, used_kept),
    })
}

/// One safetensors buffer with every tensor of `dir` (shards merged), the vocabulary-sized
/// ones cut to the rows `kept`; and the bytes of weights before.
fn pruned_weights(dir: &ModelDir, kept: &[u32]) -> Result<(Vec<u8>, u64)> {
    let vocab = dir.config.vocab_size;
    let files = dir
        .weight_files
        .iter()
        .map(|p| WeightBytes::open(p, true))
        .collect::<Result<Vec<_>>>()?;
    let before = files.iter().map(|b| b.len() as u64).sum();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut metadata: Vec<(String, String)> = Vec::new();
    for (path, bytes) in dir.weight_files.iter().zip(&files) {
        let st = SafeTensors::parse(bytes).map_err(|e| Error::file(path, e.to_string()))?;
        for (k, v) in st.metadata() {
            if !metadata.iter().any(|(m, _)| m == k) {
                metadata.push((k.clone(), v.clone()));
            }
        }
        for name in st.names() {
            let (dtype, shape, data) = st
                .tensor_data(name)
                .ok_or_else(|| Error::file(path, format!("tensor {name} vanished")))?;
            let mut shape = shape.to_vec();
            let per_token = shape.first() == Some(&vocab);
            let data = if is_vocab_rows(name) && per_token {
                if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                    return Err(Error::file(
                        path,
                        format!(
                            "{name} is stored as {dtype}: prune the vocabulary before \
                             quantizing (from the f32, f16 or bf16 model)"
                        ),
                    ));
                }
                let row_bytes = data.len() / vocab.max(1);
                shape[0] = kept.len();
                gather_rows(data, row_bytes, kept).map_err(|e| Error::file(path, e.to_string()))?
            } else if per_token && shape.len() <= 2 && !name.contains("position") {
                return Err(Error::file(
                    path,
                    format!(
                        "{name} has one row per token ({shape:?}) but is not a tensor this \
                         command knows how to cut; refusing to write a model that would not match"
                    ),
                ));
            } else {
                data.to_vec()
            };
            owned.push((name.to_string(), dtype, shape, data));
        }
    }
    let views: Vec<(&str, Dtype, &[usize], &[u8])> = owned
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, &s[..], &b[..]))
        .collect();
    let meta: Vec<(&str, &str)> = metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bytes = serialize(&views, &meta).map_err(|e| Error::Input(e.to_string()))?;
    Ok((bytes, before))
}

/// Point every token id of a `tokenizer.json` (a WordPiece model) at the pruned vocabulary:
/// the model's vocab, the added tokens, the post-processor's special tokens and the padding.
fn remap_tokenizer_json(
    json: &mut Value,
    new_id: &HashMap<&str, u32>,
) -> std::result::Result<(), String> {
    let id_of = |token: &str| {
        new_id
            .get(token)
            .copied()
            .ok_or_else(|| format!("token {token:?} is not in the pruned vocabulary"))
    };
    let model = json
        .get_mut("model")
        .and_then(Value::as_object_mut)
        .ok_or("no \"model\" object")?;
    if model.get("type").and_then(Value::as_str) != Some("WordPiece") {
        return Err("pruning needs a WordPiece tokenizer".into());
    }
    let mut vocab: Vec<(&str, u32)> = new_id.iter().map(|(t, i)| (*t, *i)).collect();
    vocab.sort_by_key(|&(_, i)| i);
    model.insert(
        "vocab".into(),
        Value::Object(
            vocab
                .into_iter()
                .map(|(t, i)| (t.to_string(), Value::from(i)))
                .collect::<Map<String, Value>>(),
        ),
    );
    if let Some(added) = json.get_mut("added_tokens").and_then(Value::as_array_mut) {
        for token in added {
            let content = token
                .get("content")
                .and_then(Value::as_str)
                .ok_or("an added token without content")?
                .to_string();
            token["id"] = Value::from(id_of(&content)?);
        }
    }
    if let Some(post) = json.get_mut("post_processor").filter(|p| !p.is_null()) {
        remap_post_processor(post, &id_of)?;
    }
    if let Some(padding) = json.get_mut("padding").and_then(Value::as_object_mut) {
        if let Some(token) = padding.get("pad_token").and_then(Value::as_str) {
            let id = id_of(token)?;
            padding.insert("pad_id".into(), Value::from(id));
        }
    }
    Ok(())
}

fn remap_post_processor(
    post: &mut Value,
    id_of: &dyn Fn(&str) -> std::result::Result<u32, String>,
) -> std::result::Result<(), String> {
    let kind = post
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match kind.as_str() {
        "BertProcessing" | "RobertaProcessing" => {
            for key in ["cls", "sep"] {
                let pair = post
                    .get_mut(key)
                    .and_then(Value::as_array_mut)
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| format!("post_processor.{key} is not [token, id]"))?;
                let token = pair[0]
                    .as_str()
                    .ok_or("a special token that is not a string")?;
                pair[1] = Value::from(id_of(token)?);
            }
        }
        "TemplateProcessing" => {
            if let Some(specials) = post
                .get_mut("special_tokens")
                .and_then(Value::as_object_mut)
            {
                for special in specials.values_mut() {
                    let ids = special
                        .get("tokens")
                        .and_then(Value::as_array)
                        .ok_or("a template special token without tokens")?
                        .iter()
                        .map(|t| id_of(t.as_str().unwrap_or_default()))
                        .collect::<std::result::Result<Vec<u32>, String>>()?;
                    special["ids"] = Value::from(ids);
                }
            }
        }
        "Sequence" => {
            for p in post
                .get_mut("processors")
                .and_then(Value::as_array_mut)
                .ok_or("a Sequence post_processor without processors")?
            {
                remap_post_processor(p, id_of)?;
            }
        }
        "ByteLevel" => {}
        other => return Err(format!("post_processor of type {other:?} is not supported")),
    }
    Ok(())
}
