//! One file that a microcontroller reads in place: a model's `config.json`, its vocabulary
//! compiled for the device ([`crate::wordpiece::device`]) and its `model.safetensors` (int8 for
//! flash), each 64-byte aligned so f32 data is used where it lies. `bert export-device` writes
//! it from a model directory; firmware links it into flash (`include_bytes!`) and calls
//! [`DeviceModel::parse`].
//!
//! Layout: 8 bytes of magic, u32 section count, then (u32 offset, u32 length) per section,
//! little-endian; the same container ([`write_sections`], [`read_sections`]) carries other
//! data a firmware needs under its own magic.

use alloc::format;
use alloc::vec::Vec;

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::model::low_ram::sentence_embedding;
use crate::model::BertModel;
use crate::weights::Weights;
use crate::wordpiece::{DeviceLexicon, WordPieceTokenizer};

/// The first eight bytes of a device model.
pub const DEVICE_MODEL_MAGIC: &[u8; 8] = b"BERTDEV1";
/// Sections start on multiples of this.
pub const SECTION_ALIGN: usize = 64;

/// `magic`, the section table, then each section at the next multiple of [`SECTION_ALIGN`].
pub fn write_sections(magic: &[u8; 8], sections: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(magic);
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    out.resize(12 + 8 * sections.len(), 0);
    for (i, s) in sections.iter().enumerate() {
        out.resize(out.len().next_multiple_of(SECTION_ALIGN), 0);
        let at = 12 + 8 * i;
        let offset = out.len() as u32;
        out[at..at + 4].copy_from_slice(&offset.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

/// The sections of a container written by [`write_sections`] with `magic`, borrowed; at most
/// `N` are read and fewer are an error.
pub fn read_sections<'a, const N: usize>(
    bytes: &'a [u8],
    magic: &[u8; 8],
) -> Result<[&'a [u8]; N]> {
    let bad = |what: &str| Error::InvalidInput(format!("{}: {what}", magic.escape_ascii()));
    if bytes.get(..8) != Some(magic.as_slice()) {
        return Err(bad("wrong magic: not this kind of blob"));
    }
    let word = |at: usize| -> Result<usize> {
        let b = bytes
            .get(at..at + 4)
            .ok_or_else(|| bad("truncated section table"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if word(8)? < N {
        return Err(bad(&format!("{} sections, {N} needed", word(8)?)));
    }
    let mut out = [&bytes[..0]; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let (offset, len) = (word(12 + 8 * i)?, word(16 + 8 * i)?);
        *slot = offset
            .checked_add(len)
            .and_then(|end| bytes.get(offset..end))
            .ok_or_else(|| bad(&format!("section {i} runs past the end")))?;
    }
    Ok(out)
}

/// A model read in place from a device blob.
///
/// ```
/// use bert_core::device_blob::DeviceModel;
/// use bert_core::model::low_ram::LowRamPlan;
/// use bert_core::wordpiece::{device, BasicOptions};
/// # let (_, weights) = bert_core::model::low_ram::doc_model();
/// // On the host (`bert export-device` does this from a model directory):
/// let config = br#"{"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
///     "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 6}"#;
/// let vocab = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nlights\non\noff\nturn\n##s\n";
/// let compiled = device::compile(vocab, BasicOptions::default())?;
/// let blob = DeviceModel::write(config, &compiled, &weights);
/// // On the device (the blob linked into flash, 64-byte aligned):
/// let model = DeviceModel::parse(&blob)?;
/// let encoder = model.encoder()?;
/// const ARENA: usize = LowRamPlan::new(4, 8, 6).arena_len();
/// let mut arena = [0.0f32; ARENA];
/// let embedding = model.embed(&encoder, "Turn lights on", 6, &mut arena)?;
/// assert_eq!(embedding.len(), 4);
/// # Ok::<(), bert_core::Error>(())
/// ```
pub struct DeviceModel<'a> {
    /// The parsed `config.json`.
    pub config: BertConfig,
    /// The tokenizer over the compiled vocabulary.
    pub tokenizer: WordPieceTokenizer<'a, DeviceLexicon<'a>>,
    /// The weights, borrowed from the blob.
    pub weights: Weights<'a>,
}

impl core::fmt::Debug for DeviceModel<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceModel")
            .field("config", &self.config)
            .field("vocab_size", &self.tokenizer.vocab_size())
            .finish_non_exhaustive()
    }
}

impl<'a> DeviceModel<'a> {
    /// Reads a blob written by [`DeviceModel::write`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let [config, vocab, weights] = read_sections::<3>(bytes, DEVICE_MODEL_MAGIC)?;
        let config = core::str::from_utf8(config)
            .map_err(|e| Error::InvalidInput(format!("config.json is not UTF-8: {e}")))?;
        Ok(DeviceModel {
            config: BertConfig::from_json(config)?,
            tokenizer: WordPieceTokenizer::from_device_vocab(vocab)?,
            weights: Weights::from_buffers(&[weights])?,
        })
    }

    /// The encoder over the blob's weights (read in place).
    pub fn encoder(&self) -> Result<BertModel<'a>> {
        BertModel::load(&self.config, &self.weights)
    }

    /// The mean of the last hidden states of `text` cut to `max_tokens` tokens, computed by
    /// the low-RAM forward in `arena` (see [`crate::model::low_ram`]): what a device's sentence
    /// embedding is (the direction of a mean-pooled sentence-transformers model's embedding
    /// when any `Dense` after it is orthonormal, as the distilled student's is).
    pub fn embed<'w>(
        &self,
        encoder: &BertModel<'_>,
        text: &str,
        max_tokens: usize,
        arena: &'w mut [f32],
    ) -> Result<&'w [f32]> {
        let ids = self.tokenizer.encode_truncated(text, max_tokens);
        Ok(sentence_embedding(encoder, &ids, arena)?.mean)
    }

    /// The blob of `config.json`, a compiled vocabulary and `model.safetensors`.
    pub fn write(config_json: &[u8], device_vocab: &[u8], safetensors: &[u8]) -> Vec<u8> {
        write_sections(
            DEVICE_MODEL_MAGIC,
            &[config_json, device_vocab, safetensors],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip_and_damage_is_an_error() {
        let blob = write_sections(b"TESTBLOB", &[b"abc", b"", b"defg"]);
        let [a, b, c] = read_sections::<3>(&blob, b"TESTBLOB").unwrap();
        assert_eq!((a, b, c), (&b"abc"[..], &b""[..], &b"defg"[..]));
        assert_eq!(
            c.as_ptr() as usize % SECTION_ALIGN,
            blob.as_ptr() as usize % SECTION_ALIGN
        );
        assert!(read_sections::<4>(&blob, b"TESTBLOB").is_err());
        assert!(read_sections::<3>(&blob, b"OTHERBLB").is_err());
        assert!(read_sections::<3>(&blob[..blob.len() - 1], b"TESTBLOB").is_err());
        assert!(read_sections::<1>(&blob[..10], b"TESTBLOB").is_err());
        assert!(DeviceModel::parse(&blob).is_err());
    }
}
