//! Tokenization through the `tokenizers` crate (pure Rust: `fancy-regex`, no C/C++), from a
//! `tokenizer.json` or, failing that, from `vocab.txt` + `tokenizer_config.json` as the standard
//! BERT WordPiece tokenizer. Padding and truncation settings stored in `tokenizer.json` (MiniLM's
//! pads to 128) are switched off: bert-std pads each batch itself and masks the padding.
//!
//! Offsets are character offsets into the input, as in HF's Python pipelines.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Encoding, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};
use crate::model_dir::read_json;

/// Ids of the special tokens the pipelines need.
#[derive(Debug, Clone, Copy)]
pub struct SpecialIds {
    /// `[CLS]` (`<s>` for RoBERTa-style vocabularies).
    pub cls: u32,
    /// `[SEP]` (`</s>`).
    pub sep: u32,
    /// `[PAD]` (`<pad>`).
    pub pad: u32,
    /// `[MASK]`, if the vocabulary has one.
    pub mask: Option<u32>,
    /// `[UNK]`, if the vocabulary has one.
    pub unk: Option<u32>,
}

/// The truncation settings a tokenizer copy was made for: (max_length, stride, only_second).
type TruncationKey = (usize, usize, bool);

/// A BERT tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Special token ids.
    pub special: SpecialIds,
    /// Truncating copies of `inner`, made once per setting (a copy clones the vocabulary).
    truncating: Arc<Mutex<HashMap<TruncationKey, Arc<tokenizers::Tokenizer>>>>,
    /// A copy of `inner` without its post-processor, made on first use: it encodes each text
    /// of a pair alone, as the crate does before truncating them together.
    bare: Arc<std::sync::OnceLock<tokenizers::Tokenizer>>,
    /// Tokens in the vocabulary, added ones included (the crate builds a whole map to count
    /// them, so this is counted once).
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("special", &self.special)
            .finish()
    }
}

impl Tokenizer {
    /// `tokenizer.json` if the directory has one, else `vocab.txt` (+ `tokenizer_config.json`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_file(&json);
        }
        let vocab = dir.join("vocab.txt");
        if vocab.is_file() {
            let cfg_path = dir.join("tokenizer_config.json");
            let cfg = if cfg_path.is_file() {
                read_json(&cfg_path)?
            } else {
                serde_json::Value::Null
            };
            let flag = |k: &str| cfg.get(k).and_then(serde_json::Value::as_bool);
            return Self::from_vocab(
                &vocab,
                flag("do_lower_case").unwrap_or(true),
                flag("strip_accents"),
                flag("tokenize_chinese_chars").unwrap_or(true),
            );
        }
        Err(Error::file(
            dir,
            "no tokenizer.json or vocab.txt: cannot build a tokenizer for this model",
        ))
    }

    /// Load a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parse the bytes of a `tokenizer.json`; `path` names it in errors.
    ///
    /// The `tokenizers` crate panics on some malformed files (0.22.2: a `decoder` object it
    /// cannot read hits an `expect` in its deserializer, found by `fuzz/tokenizer_json`); such
    /// a panic is caught here and becomes an error like any other bad file.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes))
            .unwrap_or_else(|_| Err("the tokenizers crate could not read this file".into()));
        let mut inner =
            parsed.map_err(|e| Error::file(path, format!("cannot load tokenizer: {e}")))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(Error::tokenizer)?;
        Self::wrap(inner)
    }

    /// The standard BERT WordPiece tokenizer from a `vocab.txt` (as HF's `BertTokenizerFast`):
    /// clean-up, CJK split, optional lower-casing (accents stripped with it unless
    /// `strip_accents` says otherwise), whitespace/punctuation split, WordPiece with `##`.
    pub fn from_vocab(
        vocab: &Path,
        do_lower_case: bool,
        strip_accents: Option<bool>,
        tokenize_chinese_chars: bool,
    ) -> Result<Self> {
        let path = vocab
            .to_str()
            .ok_or_else(|| Error::file(vocab, "path is not UTF-8"))?;
        let model = WordPiece::from_file(path)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| Error::file(vocab, format!("cannot read vocabulary: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(model);
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| Error::file(vocab, format!("vocabulary has no {t} token")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        inner.with_normalizer(Some(BertNormalizer::new(
            true,
            tokenize_chinese_chars,
            strip_accents,
            do_lower_case,
        )));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), sep),
            ("[CLS]".into(), cls),
        )));
        inner.with_decoder(Some(WordPieceDecoder::default()));
        // As BertTokenizerFast: the special tokens are matched whole in the input text.
        let specials: Vec<AddedToken> = bert_core::wordpiece::SPECIAL_TOKENS
            .into_iter()
            .filter(|t| inner.token_to_id(t).is_some())
            .map(|t| AddedToken::from(t, true))
            .collect();
        inner.add_special_tokens(&specials);
        Self::wrap(inner)
    }

    fn wrap(inner: tokenizers::Tokenizer) -> Result<Self> {
        // BERT's WordPiece names, else RoBERTa / XLM-R / SentencePiece ones.
        let id = |names: [&str; 2]| names.iter().find_map(|t| inner.token_to_id(t));
        let need = |names: [&str; 2]| {
            id(names).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "the vocabulary has neither {} nor {}",
                    names[0], names[1]
                ))
            })
        };
        let special = SpecialIds {
            cls: need(["[CLS]", "<s>"])?,
            sep: need(["[SEP]", "</s>"])?,
            pad: id(["[PAD]", "<pad>"]).unwrap_or(0),
            mask: id(["[MASK]", "<mask>"]),
            unk: id(["[UNK]", "<unk>"]),
        };
        let vocab_size = inner.get_vocab_size(true);
        let tokenizer = Tokenizer {
            inner,
            special,
            truncating: Arc::default(),
            bare: Arc::default(),
            vocab_size,
        };
        // A file the crate loads but cannot encode with fails here, once, with a clear error,
        // rather than on every input later.
        tokenizer
            .encode("a", None)
            .map_err(|e| Error::Tokenizer(format!("this tokenizer cannot encode a text: {e}")))?;
        Ok(tokenizer)
    }

    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Encode a text (or a pair) with special tokens, character offsets, no truncation.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoding> {
        encode_with(&self.inner, text, pair)
    }

    /// Encode a text with or without special tokens, with byte offsets into it, no
    /// truncation (text-embeddings-inference's `/tokenize`).
    pub fn encode_bytes(&self, text: &str, add_special_tokens: bool) -> Result<Encoding> {
        guarded(|| self.inner.encode(text, add_special_tokens))
    }

    /// The copy of the tokenizer that truncates to `max_len` tokens (special tokens included),
    /// keeping `stride` tokens of overlap in the overflowing windows; longest sequence first, or
    /// only the second sequence (QA contexts).
    fn truncating(
        &self,
        max_len: usize,
        stride: usize,
        only_second: bool,
    ) -> Result<Arc<tokenizers::Tokenizer>> {
        let key = (max_len, stride, only_second);
        let mut cache = self.truncating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cache.get(&key) {
            return Ok(t.clone());
        }
        let mut t = self.inner.clone();
        t.with_truncation(Some(TruncationParams {
            max_length: max_len,
            stride,
            strategy: if only_second {
                TruncationStrategy::OnlySecond
            } else {
                TruncationStrategy::LongestFirst
            },
            direction: TruncationDirection::Right,
        }))
        .map_err(Error::tokenizer)?;
        let t = Arc::new(t);
        // Each setting holds a copy of the whole tokenizer (the vocabulary): a few are kept,
        // not one per length a server's clients may ask for.
        if cache.len() >= MAX_TRUNCATING {
            cache.clear();
        }
        cache.insert(key, t.clone());
        Ok(t)
    }

    /// The special tokens the tokenizer adds to a single text (`pair` false) or a pair.
    fn added_tokens(&self, pair: bool) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, pair))
    }

    /// Encode, truncating (longest first) to `max_len` tokens including special tokens.
    /// `max_len` must leave room for the special tokens (an error otherwise: the `tokenizers`
    /// crate would return the input whole).
    pub fn encode_truncated(
        &self,
        text: &str,
        pair: Option<&str>,
        max_len: usize,
    ) -> Result<Encoding> {
        self.encode_truncated_from(text, pair, max_len, Side::Right)
    }

    /// [`encode_truncated`](Self::encode_truncated), cutting each text at its `side`: the end
    /// (HF's default), or the start (`truncation_side="left"`, which keeps the end of a text).
    pub fn encode_truncated_from(
        &self,
        text: &str,
        pair: Option<&str>,
        max_len: usize,
        side: Side,
    ) -> Result<Encoding> {
        let specials = self.added_tokens(pair.is_some());
        if max_len < specials {
            return Err(Error::Input(format!(
                "cannot truncate to {max_len} tokens: the special tokens alone take {specials}"
            )));
        }
        // As the `tokenizers` crate truncates (longest first, then the special tokens), but
        // without the overflowing windows it would also build and pair up (quadratic in their
        // number for two long texts), which nothing here reads.
        let budget = max_len - specials;
        let bare = self.bare.get_or_init(|| {
            let mut t = self.inner.clone();
            t.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
            t
        });
        let mut first = guarded(|| bare.encode_char_offsets(text, false))?;
        let mut second = match pair {
            Some(b) => Some(guarded(|| bare.encode_char_offsets(b, false))?),
            None => None,
        };
        let (n1, n2) = longest_first(first.len(), second.as_ref().map(Encoding::len), budget);
        cut(&mut first, n1, side);
        if let (Some(second), Some(n2)) = (second.as_mut(), n2) {
            cut(second, n2, side);
        }
        guarded(|| self.inner.post_process(first, second, true))
    }

    /// Tokens in the vocabulary, added ones included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// An encoding of token ids given as they are (TEI's `inputs` as ids): no special tokens
    /// added, cut to `max_len` at `side`; an id outside the vocabulary is an error.
    pub fn encode_ids(&self, ids: &[u32], max_len: usize, side: Side) -> Result<Encoding> {
        let vocab = self.vocab_size;
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Input(format!(
                "token id {bad} is outside the vocabulary ({vocab} tokens)"
            )));
        }
        let ids = match side {
            Side::Right => &ids[..ids.len().min(max_len)],
            Side::Left => &ids[ids.len().saturating_sub(max_len)..],
        };
        let n = ids.len();
        let tokens = ids
            .iter()
            .map(|&id| self.inner.id_to_token(id).unwrap_or_default())
            .collect();
        Ok(Encoding::new(
            ids.to_vec(),
            vec![0; n],
            tokens,
            vec![None; n],
            vec![(0, 0); n],
            vec![0; n],
            vec![1; n],
            Vec::new(),
            Default::default(),
        ))
    }

    /// Encode a (question, context) pair into windows of `max_len` tokens: the context is cut
    /// into pieces overlapping by `stride` tokens, each with the whole question (HF's
    /// `truncation="only_second"` with `return_overflowing_tokens`). Windows in order.
    ///
    /// The question must leave room for more than `stride` context tokens in a window (an
    /// error says so otherwise, as HF's tokenizers raise; the `tokenizers` crate would panic).
    pub fn encode_windows(
        &self,
        question: &str,
        context: &str,
        max_len: usize,
        stride: usize,
    ) -> Result<Vec<Encoding>> {
        let question_tokens = guarded(|| self.inner.encode(question, false))?.len();
        let used = question_tokens + self.added_tokens(true);
        if used + stride >= max_len {
            // No window can hold more context than the overlap: fine only when the whole
            // context fits in one window, with nothing to cut.
            let whole = encode_with(&self.inner, question, Some(context))?;
            if whole.len() <= max_len {
                return Ok(vec![whole]);
            }
            return Err(Error::Input(format!(
                "the question takes {used} of a window's {max_len} tokens (special tokens \
                 included), which leaves no more than the overlap ({stride}) for the context: \
                 shorten the question, or use longer windows or a smaller stride"
            )));
        }
        let t = self.truncating(max_len, stride, true)?;
        let mut first = encode_with(&t, question, Some(context))?;
        let mut all = first.take_overflowing();
        all.insert(0, first);
        Ok(all)
    }

    /// Ids back to text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        guarded(|| self.inner.decode(ids, skip_special_tokens))
    }

    /// The token string of an id (`##ing`, `[CLS]`, ...).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Join tokens as the decoder does (`["new", "##s"]` → `"news"`), like HF's
    /// `convert_tokens_to_string`.
    pub fn tokens_to_string(&self, tokens: Vec<String>) -> Result<String> {
        match self.inner.get_decoder() {
            Some(d) => guarded(|| tokenizers::Decoder::decode(d, tokens)),
            None => Ok(tokens.join(" ")),
        }
    }
}

/// How many tokens of each text remain when a text (and its pair) of `n1` (and `n2`) tokens
/// are cut to `budget` together, longest first: the `tokenizers` crate's rule (its
/// `truncate_encodings`), which HF's `truncation=True` follows.
fn longest_first(n1: usize, n2: Option<usize>, budget: usize) -> (usize, Option<usize>) {
    let Some(n2) = n2 else {
        return (n1.min(budget), None);
    };
    if n1 + n2 <= budget {
        return (n1, Some(n2));
    }
    let (short, long) = (n1.min(n2), n1.max(n2));
    let mut keep_long = if short > budget {
        short
    } else {
        long.min(short.max(budget - short))
    };
    let mut keep_short = short;
    if keep_short + keep_long > budget {
        keep_short = budget / 2;
        keep_long = keep_short + budget % 2;
    }
    if n1 > n2 {
        (keep_long, Some(keep_short))
    } else {
        (keep_short, Some(keep_long))
    }
}

/// Keep `n` tokens of `e`, the first ones or (from the left) the last ones, dropping the rest
/// (and no overflowing windows).
fn cut(e: &mut Encoding, n: usize, side: Side) {
    if e.len() > n {
        let direction = match side {
            Side::Right => TruncationDirection::Right,
            Side::Left => TruncationDirection::Left,
        };
        e.truncate(n, 0, direction);
        drop(e.take_overflowing());
    }
}

/// Which end of a text truncation cuts (text-embeddings-inference's `truncation_direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
pub enum Side {
    /// Cut the end (keep the start): HF's default.
    #[default]
    #[serde(rename = "right", alias = "Right")]
    Right,
    /// Cut the start (keep the end).
    #[serde(rename = "left", alias = "Left")]
    Left,
}

/// Truncating copies of a tokenizer kept at once (see `Tokenizer::truncating`).
const MAX_TRUNCATING: usize = 8;

fn encode_with(t: &tokenizers::Tokenizer, text: &str, pair: Option<&str>) -> Result<Encoding> {
    let input: tokenizers::EncodeInput<'_> = match pair {
        Some(b) => (text, b).into(),
        None => text.into(),
    };
    guarded(|| t.encode_char_offsets(input, true))
}

/// A call into the `tokenizers` crate, with a panic turned into an error. The crate panics on
/// some files it loads without complaint (0.22.2: a `TemplateProcessing` post-processor that
/// names a special token its `special_tokens` lack panics on every encoding; found by
/// `fuzz/tokenizer_json`), and such a file must fail the request, not the process.
fn guarded<T>(f: impl FnOnce() -> tokenizers::Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Error::tokenizer),
        Err(_) => Err(Error::Tokenizer(
            "the tokenizers crate failed on this input (a malformed tokenizer.json?)".into(),
        )),
    }
}
