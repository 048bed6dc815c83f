//! The teacher's sentence embeddings of the corpus: computed once through the embedding
//! pipeline (the teacher's own pooling and normalization) and kept in the run's work folder,
//! keyed by the teacher and the texts, so a resumed run reads them instead of recomputing.

use std::path::Path;
use std::time::Instant;

use bert_core::safetensors::{serialize, SafeTensors};
use bert_core::Dtype;

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::pipelines::embeddings::SentenceEmbeddings;
use crate::runtime::LoadOptions;

/// Texts embedded per call (a progress line after each).
const CHUNK: usize = 4096;

/// The teacher's embeddings, `[texts, width]` row-major.
#[derive(Debug, Clone)]
pub struct TeacherEmbeddings {
    /// Values.
    pub data: Vec<f32>,
    /// Width of one embedding.
    pub width: usize,
}

impl TeacherEmbeddings {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.width..(i + 1) * self.width]
    }
}

/// The embeddings in the coordinates of `basis`'s rows (`[k, width]`, orthonormal).
pub fn in_basis(e: &TeacherEmbeddings, basis: &super::linalg::Mat) -> TeacherEmbeddings {
    let k = basis.rows;
    let mut data = Vec::with_capacity(e.data.len() / e.width * k);
    for row in e.data.chunks_exact(e.width) {
        for b in basis.data.chunks_exact(basis.cols) {
            data.push(b.iter().zip(row).map(|(b, &x)| b * x as f64).sum::<f64>() as f32);
        }
    }
    TeacherEmbeddings { data, width: k }
}

/// The embeddings times one factor that makes their root mean square 1.
pub fn unit_rms(mut e: TeacherEmbeddings) -> TeacherEmbeddings {
    let n = e.data.len().max(1) as f64;
    let rms = (e.data.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n).sqrt();
    if rms > 0.0 {
        let f = (1.0 / rms) as f32;
        e.data.iter_mut().for_each(|x| *x *= f);
    }
    e
}

/// Each token of the vocabulary in `vocab_dir` (the pruned `vocab.txt`, in id order) embedded
/// alone by the teacher (`[CLS] token [SEP]`, its pooling and normalization), in the
/// coordinates of `basis`'s rows, scaled to a root mean square of 1: `[vocab, basis rows]`.
pub fn token_rows(
    teacher: &Path,
    vocab_dir: &Path,
    basis: &super::linalg::Mat,
) -> Result<super::linalg::Mat> {
    use crate::pipelines::embeddings::{EmbedInput, EmbedOptions};
    let model = SentenceEmbeddings::load(teacher, LoadOptions::default())?;
    let tok = &model.bert.tokenizer;
    let path = vocab_dir.join("vocab.txt");
    let vocab = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let ids: Vec<[u32; 3]> = vocab
        .lines()
        .map(|t| {
            let id = tok.inner().token_to_id(t).ok_or_else(|| {
                Error::file(
                    &path,
                    format!("token {t:?} is not in the teacher's vocabulary"),
                )
            })?;
            Ok([tok.special.cls, id, tok.special.sep])
        })
        .collect::<Result<_>>()?;
    let inputs: Vec<EmbedInput<'_>> = ids.iter().map(|v| EmbedInput::Ids(v)).collect();
    let rows = model.embed_inputs(&inputs, &EmbedOptions::default())?;
    let width = model.dim();
    let e = TeacherEmbeddings {
        data: rows.concat(),
        width,
    };
    let projected = unit_rms(in_basis(&e, basis));
    Ok(super::linalg::Mat {
        rows: ids.len(),
        cols: projected.width,
        data: projected.data.iter().map(|&x| x as f64).collect(),
    })
}

/// FNV-1a over the teacher's config and weight sizes and every text: what the cache is keyed
/// by.
fn key(teacher: &Path, texts: &[String]) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    let config = teacher.join("config.json");
    eat(&std::fs::read(&config).map_err(|e| Error::io(&config, e))?);
    for f in crate::model_dir::ModelDir::open(teacher)?.weight_files {
        let len = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?.len();
        eat(&len.to_le_bytes());
    }
    for t in texts {
        eat(t.as_bytes());
        eat(&[0]);
    }
    Ok(format!("{h:016x}"))
}

/// The embeddings of `texts` by the teacher at `teacher`, read from `cache` when it holds
/// them for this teacher and these texts, else computed (reporting progress) and written there.
pub fn teacher_embeddings(
    teacher: &Path,
    texts: &[String],
    cache: &Path,
    report: &mut dyn FnMut(&str),
) -> Result<TeacherEmbeddings> {
    let key = key(teacher, texts)?;
    if let Some(found) = read_cache(cache, &key, texts.len())? {
        report(&format!(
            "teacher embeddings of {} texts read from {}",
            texts.len(),
            cache.display()
        ));
        return Ok(found);
    }
    let model = SentenceEmbeddings::load(teacher, LoadOptions::default())?;
    let width = model.dim();
    let mut data = Vec::with_capacity(texts.len() * width);
    let start = Instant::now();
    for (i, chunk) in texts.chunks(CHUNK).enumerate() {
        for v in model.embed(chunk)? {
            data.extend_from_slice(&v);
        }
        let done = (i * CHUNK + chunk.len()) as f64;
        let secs = start.elapsed().as_secs_f64();
        let eta = secs / done * (texts.len() as f64 - done);
        report(&format!(
            "teacher: {done} of {} texts embedded ({:.0} texts/s, eta {eta:.0} s)",
            texts.len(),
            done / secs.max(1e-9)
        ));
    }
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let file = serialize(
        &[("embeddings", Dtype::F32, &[texts.len(), width], &bytes)],
        &[("key", key.as_str())],
    )?;
    write_atomic(cache, &file)?;
    Ok(TeacherEmbeddings { data, width })
}

fn read_cache(cache: &Path, key: &str, n: usize) -> Result<Option<TeacherEmbeddings>> {
    if !cache.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(cache).map_err(|e| Error::io(cache, e))?;
    let Ok(st) = SafeTensors::parse(&bytes) else {
        return Ok(None);
    };
    if st.metadata().get("key").map(String::as_str) != Some(key) {
        return Ok(None);
    }
    match st.tensor_data("embeddings") {
        Some((Dtype::F32, [rows, width], data)) if *rows == n && data.len() == n * width * 4 => {
            Ok(Some(TeacherEmbeddings {
                data: data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                width: *width,
            }))
        }
        _ => Ok(None),
    }
}
