//! A semantic-search index: passages, their ids and their embeddings in one safetensors file
//! (`embeddings` f32 `[n, dim]`, `text_bytes`/`text_ends` and `id_bytes`/`id_ends` for the
//! strings, the model and pooling in `__metadata__`), written atomically. Search is exact by
//! default (a dot product with every passage, vectorized); [`Hnsw`] gives an approximate
//! index for large corpora. Building is resumable through a `.partial` file beside the index.
//!
//! ```
//! use bert_std::index::Index;
//! use bert_std::pipelines::embeddings::SentenceEmbeddings;
//!
//! let model = SentenceEmbeddings::default_model()?;
//! let texts = vec!["Cats sleep all day.".to_string(), "Rust has no garbage collector.".into()];
//! let vectors = model.embed(&texts)?.concat();
//! let ids = vec!["cats".to_string(), "rust".into()];
//! let index = Index::new("all-MiniLM-L6-v2".into(), model.dim(), ids, texts, vectors)?;
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("corpus.index");
//! index.save(&path)?; // atomically
//! let index = Index::load(&path)?;
//! let query = model.embed(&["memory management in programming languages"])?.remove(0);
//! assert_eq!(index.ids[index.search(&query, 1)[0].row], "rust");
//! # Ok::<(), bert_std::Error>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use bert_core::safetensors::{serialize, Dtype, SafeTensors};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::loaded::WeightBytes;

/// One passage of a corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// Where it came from (`FILE#N`, a JSONL `id`, or `FILE:LINE`).
    pub id: String,
    /// The text.
    pub text: String,
}

/// The passages of a corpus: text files are split at blank lines and paragraphs longer than
/// `max_words` words are cut into pieces of that many; `.jsonl` files give one passage per
/// line (`{"text": .., "id": ..}`, id optional); a directory is read recursively in name order
/// (`.txt`, `.md` and `.jsonl` files).
pub fn read_corpus(paths: &[PathBuf], max_words: usize) -> Result<Vec<Passage>> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut out = Vec::new();
    for f in files {
        let name = f.display().to_string();
        if f.extension().is_some_and(|e| e == "jsonl") {
            let file = File::open(&f).map_err(|e| Error::io(&f, e))?;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| Error::io(&f, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| Error::file(&f, format!("line {}: invalid JSON ({e})", i + 1)))?;
                let text = v.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
                    Error::file(&f, format!("line {}: missing string field \"text\"", i + 1))
                })?;
                let id = match v.get("id") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => format!("{name}:{}", i + 1),
                };
                out.push(Passage {
                    id,
                    text: text.to_string(),
                });
            }
        } else {
            let mut text = String::new();
            File::open(&f)
                .and_then(|mut r| r.read_to_string(&mut text))
                .map_err(|e| Error::io(&f, e))?;
            let mut n = 0;
            for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
                let words: Vec<&str> = para.split_whitespace().collect();
                for piece in words.chunks(max_words.max(1)) {
                    n += 1;
                    out.push(Passage {
                        id: format!("{name}#{n}"),
                        text: piece.join(" "),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
    if meta.is_file() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| Error::io(p, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        let wanted = e
            .extension()
            .is_some_and(|x| x == "txt" || x == "md" || x == "jsonl");
        if e.is_dir() {
            collect_files(&e, out)?;
        } else if wanted {
            out.push(e);
        }
    }
    Ok(())
}

/// A search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Row of the passage in the index.
    pub row: usize,
    /// Cosine similarity of the query and the passage.
    pub score: f32,
}

/// A loaded (or built) index.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    /// The model directory the embeddings came from.
    pub model: String,
    /// Width of an embedding.
    pub dim: usize,
    /// Passage ids.
    pub ids: Vec<String>,
    /// Passage texts.
    pub texts: Vec<String>,
    /// `[n, dim]` embeddings, row-major.
    pub vectors: Vec<f32>,
}

fn strings_to_tensors(strings: &[String]) -> (Vec<u8>, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(strings.len() * 8);
    for s in strings {
        bytes.extend_from_slice(s.as_bytes());
        ends.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    (bytes, ends)
}

fn tensors_to_strings(file: &SafeTensors<'_>, name: &str, n: usize) -> Result<Vec<String>> {
    let bad = |m: String| Error::Input(format!("index: {m}"));
    let (dt, shape, bytes) = file
        .tensor_data(&format!("{name}_bytes"))
        .ok_or_else(|| bad(format!("no tensor {name}_bytes")))?;
    let (de, eshape, ends) = file
        .tensor_data(&format!("{name}_ends"))
        .ok_or_else(|| bad(format!("no tensor {name}_ends")))?;
    if dt != Dtype::U8 || de != Dtype::U64 || eshape != [n] || shape.len() != 1 {
        return Err(bad(format!("{name}: wrong dtype or shape")));
    }
    let mut out = Vec::with_capacity(n);
    let mut start = 0usize;
    for e in ends.chunks_exact(8) {
        let end = u64::from_le_bytes(e.try_into().expect("8 bytes")) as usize;
        let s = bytes
            .get(start..end)
            .ok_or_else(|| bad(format!("{name}: offsets out of range")))?;
        out.push(String::from_utf8(s.to_vec()).map_err(|_| bad(format!("{name}: invalid UTF-8")))?);
        start = end;
    }
    Ok(out)
}

/// Dot product, in 8 independent lanes so that it vectorizes.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scale `v` to unit length (left as it is when zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl Index {
    /// An index of `texts` with their `vectors` (`[n, dim]`), each scaled to unit length so
    /// that a dot product is the cosine similarity.
    pub fn new(
        model: String,
        dim: usize,
        ids: Vec<String>,
        texts: Vec<String>,
        mut vectors: Vec<f32>,
    ) -> Result<Index> {
        if ids.len() != texts.len() || vectors.len() != texts.len() * dim || dim == 0 {
            return Err(Error::Input(format!(
                "index: {} ids, {} texts and {} values of width {dim} do not match",
                ids.len(),
                texts.len(),
                vectors.len()
            )));
        }
        vectors.chunks_exact_mut(dim).for_each(normalize);
        Ok(Index {
            model,
            dim,
            ids,
            texts,
            vectors,
        })
    }

    /// Passages in the index.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No passages.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Embedding of row `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Write it to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let (tb, te) = strings_to_tensors(&self.texts);
        let (ib, ie) = strings_to_tensors(&self.ids);
        let vec_bytes: Vec<u8> = self.vectors.iter().flat_map(|x| x.to_le_bytes()).collect();
        let n = self.len();
        let dim = self.dim.to_string();
        let bytes = serialize(
            &[
                ("embeddings", Dtype::F32, &[n, self.dim], &vec_bytes),
                ("text_bytes", Dtype::U8, &[tb.len()], &tb),
                ("text_ends", Dtype::U64, &[n], &te),
                ("id_bytes", Dtype::U8, &[ib.len()], &ib),
                ("id_ends", Dtype::U64, &[n], &ie),
            ],
            &[
                ("format", "bert-rs index 1"),
                ("model", &self.model),
                ("dim", &dim),
            ],
        )?;
        write_atomic(path, &bytes)
    }

    /// Read an index written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Index> {
        let bytes = WeightBytes::open(path, true)?;
        Self::from_bytes(&bytes, path)
    }

    /// Parse the bytes of an index file (see [`load`](Self::load)); `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Index> {
        let file = SafeTensors::parse(bytes).map_err(|source| Error::Weights {
            path: path.to_path_buf(),
            source,
        })?;
        let meta = file.metadata();
        if meta.get("format").map(String::as_str) != Some("bert-rs index 1") {
            return Err(Error::file(path, "not an index written by `bert index`"));
        }
        let (dt, shape, data) = file
            .tensor_data("embeddings")
            .ok_or_else(|| Error::file(path, "no embeddings tensor"))?;
        if dt != Dtype::F32 || shape.len() != 2 {
            return Err(Error::file(path, "embeddings must be f32 [n, dim]"));
        }
        let (n, dim) = (shape[0], shape[1]);
        let vectors = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let wrap = |e: Error| Error::file(path, e.to_string());
        Ok(Index {
            model: meta.get("model").cloned().unwrap_or_default(),
            dim,
            texts: tensors_to_strings(&file, "text", n).map_err(wrap)?,
            ids: tensors_to_strings(&file, "id", n).map_err(wrap)?,
            vectors,
        })
    }

    /// The `k` passages most similar to `query` (cosine), best first, exact.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit> {
        let mut query = query.to_vec();
        normalize(&mut query);
        let scores: Vec<f32> = (0..self.len())
            .map(|i| dot(&query, self.vector(i)))
            .collect();
        crate::pipelines::top_k(&scores, k)
            .into_iter()
            .map(|row| Hit {
                row,
                score: scores[row],
            })
            .collect()
    }
}

/// An approximate nearest-neighbour index (HNSW, from the `instant-distance` crate) over an
/// [`Index`]'s embeddings, by cosine distance (`1 - dot` of normalized vectors). Built in
/// memory when a search asks for it (seeded: the same index gives the same graph).
pub struct Hnsw {
    graph: instant_distance::Hnsw<Row>,
    /// The index row of each graph point.
    rows: std::collections::HashMap<instant_distance::PointId, usize>,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("points", &self.rows.len())
            .finish()
    }
}

#[derive(Clone)]
struct Row(Vec<f32>);

impl instant_distance::Point for Row {
    fn distance(&self, other: &Self) -> f32 {
        (1.0 - dot(&self.0, &other.0)).max(0.0)
    }
}

impl Hnsw {
    /// Build the graph (ef_construction 100, ef_search 100).
    pub fn build(index: &Index) -> Hnsw {
        let points: Vec<Row> = (0..index.len())
            .map(|i| Row(index.vector(i).to_vec()))
            .collect();
        let (graph, ids) = instant_distance::Builder::default()
            .ef_construction(100)
            .ef_search(100)
            .seed(0x5eed)
            .build_hnsw(points);
        // `ids[i]` is where input point `i` went; invert it.
        let rows = ids.into_iter().enumerate().map(|(i, p)| (p, i)).collect();
        Hnsw { graph, rows }
    }

    /// About the `k` nearest passages (cosine), best first.
    pub fn search(&self, index: &Index, query: &[f32], k: usize) -> Vec<Hit> {
        let mut search = instant_distance::Search::default();
        let mut query = query.to_vec();
        normalize(&mut query);
        let q = Row(query.clone());
        self.graph
            .search(&q, &mut search)
            .take(k)
            .filter_map(|item| {
                let row = *self.rows.get(&item.pid)?;
                Some(Hit {
                    row,
                    score: dot(&query, index.vector(row)),
                })
            })
            .collect()
    }
}

/// The widest embedding an index holds.
pub const MAX_DIM: usize = 1 << 16;

/// A passage and its embedding.
pub type Embedded = (Passage, Vec<f32>);

/// Resumable building: each embedded passage is appended to `INDEX.partial` (id, text, vector)
/// as soon as its batch is done; a rerun reads the complete records back and embeds only the
/// rest. A record cut by a kill is dropped (and redone).
#[derive(Debug)]
pub struct Partial {
    path: PathBuf,
    file: File,
    dim: usize,
}

/// The longest id or text a `.partial` record may hold (16 MiB).
const MAX_RECORD_STRING: usize = 16 << 20;

fn read_u32(r: &mut impl Read) -> Option<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).ok().map(|_| u32::from_le_bytes(b))
}

impl Partial {
    /// Open (or start) the partial file of `index`; returns it and the passages already done.
    pub fn open(index: &Path, dim: usize) -> Result<(Partial, Vec<Embedded>)> {
        let mut name = index.as_os_str().to_owned();
        name.push(".partial");
        let path = PathBuf::from(name);
        let mut done = Vec::new();
        let mut good_len = 0u64;
        if let Ok(f) = File::open(&path) {
            (done, good_len) = Self::read_records(BufReader::new(f), dim);
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_len(good_len).map_err(|e| Error::io(&path, e))?;
        let mut p = Partial { path, file, dim };
        std::io::Seek::seek(&mut p.file, std::io::SeekFrom::End(0))
            .map_err(|e| Error::io(&p.path, e))?;
        Ok((p, done))
    }

    /// The whole records at the start of a partial file's bytes, and their length in bytes (a
    /// cut or corrupt record and all after it are dropped, to be embedded again).
    pub fn read_records(mut r: impl Read, dim: usize) -> (Vec<Embedded>, u64) {
        let (mut done, mut good_len) = (Vec::new(), 0u64);
        while let Some(rec) = Self::read_record(&mut r, dim) {
            good_len += 12 + (rec.0.id.len() + rec.0.text.len() + 4 * dim) as u64;
            done.push(rec);
        }
        (done, good_len)
    }

    fn read_record(r: &mut impl Read, dim: usize) -> Option<Embedded> {
        let d = read_u32(r)? as usize;
        if d != dim || dim > crate::index::MAX_DIM {
            return None;
        }
        let mut string = || -> Option<String> {
            let n = read_u32(r)? as usize;
            // A cut or corrupt record must not become a huge allocation: no passage is this
            // long (the CLI cuts passages at a few hundred words).
            if n > MAX_RECORD_STRING {
                return None;
            }
            let mut b = vec![0u8; n];
            r.read_exact(&mut b).ok()?;
            String::from_utf8(b).ok()
        };
        let id = string()?;
        let text = string()?;
        let mut v = vec![0u8; 4 * dim];
        r.read_exact(&mut v).ok()?;
        let v = v
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some((Passage { id, text }, v))
    }

    /// Append finished passages (flushed to the OS before returning).
    pub fn append(&mut self, done: &[(&Passage, &[f32])]) -> Result<()> {
        let mut buf = Vec::new();
        for (p, v) in done {
            buf.extend_from_slice(&(self.dim as u32).to_le_bytes());
            buf.extend_from_slice(&(p.id.len() as u32).to_le_bytes());
            buf.extend_from_slice(p.id.as_bytes());
            buf.extend_from_slice(&(p.text.len() as u32).to_le_bytes());
            buf.extend_from_slice(p.text.as_bytes());
            buf.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        }
        self.file
            .write_all(&buf)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// The index is saved: remove the partial file.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trip_and_exact_search() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index {
            model: "m".into(),
            dim: 3,
            ids: vec!["a".into(), "b".into(), "ç".into()],
            texts: vec!["x".into(), String::new(), "zé".into()],
            vectors: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.6, 0.8, 0.0],
        };
        let path = dir.path().join("i.index");
        idx.save(&path).unwrap();
        let back = Index::load(&path).unwrap();
        assert_eq!(back, idx);
        let hits = back.search(&[0.0, 3.0, 0.0], 2);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), [1, 2]);
        assert!((hits[1].score - 0.8).abs() < 1e-6);
        assert!((dot(&[1.0; 19], &[2.0; 19]) - 38.0).abs() < 1e-5);
    }

    #[test]
    fn partial_records_survive_a_cut_tail() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("c.index");
        let p1 = Passage {
            id: "1".into(),
            text: "one".into(),
        };
        {
            let (mut part, done) = Partial::open(&index, 2).unwrap();
            assert!(done.is_empty());
            part.append(&[(&p1, &[1.0, 2.0][..])]).unwrap();
        }
        // A record cut by a kill, then one whose length field is garbage (4 GiB): neither is
        // read as data, neither allocates what it claims.
        let partial = dir.path().join("c.index.partial");
        let mut f = OpenOptions::new().append(true).open(&partial).unwrap();
        f.write_all(&[2, 0, 0, 0, 9, 0]).unwrap();
        drop(f);
        let (_, done) = Partial::open(&index, 2).unwrap();
        assert_eq!(done.len(), 1);
        let mut f = OpenOptions::new().append(true).open(&partial).unwrap();
        f.write_all(&[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1])
            .unwrap();
        drop(f);
        let (part, done) = Partial::open(&index, 2).unwrap();
        assert_eq!(done, vec![(p1, vec![1.0, 2.0])]);
        assert_eq!(
            std::fs::metadata(&partial).unwrap().len(),
            4 + 4 + 1 + 4 + 3 + 8
        );
        part.remove().unwrap();
    }
}
