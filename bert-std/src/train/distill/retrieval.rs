//! Retrieval scores of a sentence encoder: each question's own passage among all the passages,
//! ranked by cosine similarity (recall@1, recall@10, MRR@10), and the Spearman correlation of
//! two encoders' similarities.

use super::corpus::Retrieval;
use crate::error::Result;
use crate::pipelines::embeddings::{cosine, SentenceEmbeddings};

/// How well questions find their passages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalScores {
    /// Share of questions whose passage ranks first.
    pub recall_at_1: f32,
    /// Share whose passage is in the top 10.
    pub recall_at_10: f32,
    /// Mean of 1 / rank over questions whose passage is in the top 10 (0 otherwise).
    pub mrr_at_10: f32,
    /// Questions scored.
    pub questions: usize,
}

/// The ranks (1-based) of each question's passage, given each question's score for every
/// passage (ties count against the passage: it ranks after every passage scored as high).
pub fn ranks(scores: &[Vec<f32>], answers: &[usize]) -> Vec<usize> {
    scores
        .iter()
        .zip(answers)
        .map(|(row, &a)| {
            1 + row
                .iter()
                .enumerate()
                .filter(|&(i, &s)| i != a && s >= row[a])
                .count()
        })
        .collect()
}

/// Recall@1, recall@10 and MRR@10 from ranks.
pub fn from_ranks(ranks: &[usize]) -> RetrievalScores {
    let n = ranks.len().max(1) as f32;
    RetrievalScores {
        recall_at_1: ranks.iter().filter(|&&r| r == 1).count() as f32 / n,
        recall_at_10: ranks.iter().filter(|&&r| r <= 10).count() as f32 / n,
        mrr_at_10: ranks
            .iter()
            .filter(|&&r| r <= 10)
            .map(|&r| 1.0 / r as f32)
            .sum::<f32>()
            / n,
        questions: ranks.len(),
    }
}

/// Every question's cosine to every passage with `model`.
pub fn similarities(model: &SentenceEmbeddings, set: &Retrieval) -> Result<Vec<Vec<f32>>> {
    let q = model.embed(&set.questions)?;
    let p = model.embed(&set.passages)?;
    Ok(q.iter()
        .map(|q| p.iter().map(|p| cosine(q, p)).collect())
        .collect())
}

/// Recall@1, recall@10 and MRR@10 of `model` on `set`.
pub fn score(model: &SentenceEmbeddings, set: &Retrieval) -> Result<RetrievalScores> {
    Ok(from_ranks(&ranks(&similarities(model, set)?, &set.answers)))
}

/// Okapi BM25 (`k1` 1.2, `b` 0.75, Lucene's idf `ln(1 + (N - df + 0.5) / (df + 0.5))`) scores of
/// every question's terms against every passage's: the word-overlap baseline.
pub fn bm25_scores(questions: &[Vec<String>], passages: &[Vec<String>]) -> Vec<Vec<f32>> {
    use std::collections::HashMap;
    let (k1, b) = (1.2f64, 0.75f64);
    let n = passages.len() as f64;
    let avg = passages.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
    let mut postings: HashMap<&str, Vec<(usize, f64)>> = HashMap::new();
    for (i, p) in passages.iter().enumerate() {
        let mut tf: HashMap<&str, f64> = HashMap::new();
        p.iter().for_each(|t| *tf.entry(t).or_default() += 1.0);
        for (t, f) in tf {
            postings.entry(t).or_default().push((i, f));
        }
    }
    questions
        .iter()
        .map(|q| {
            let mut row = vec![0.0f64; passages.len()];
            let mut terms: Vec<&str> = q.iter().map(String::as_str).collect();
            terms.sort_unstable();
            terms.dedup();
            for t in terms {
                let Some(list) = postings.get(t) else {
                    continue;
                };
                let df = list.len() as f64;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                for &(i, f) in list {
                    let len = passages[i].len() as f64;
                    row[i] += idf * f * (k1 + 1.0) / (f + k1 * (1.0 - b + b * len / avg));
                }
            }
            row.into_iter().map(|x| x as f32).collect()
        })
        .collect()
}

/// Spearman's rank correlation of `a` and `b` (average ranks for ties).
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    fn ranked(v: &[f32]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            idx[i..=j].iter().for_each(|&k| r[k] = avg);
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranked(a), ranked(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt().max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_scores() {
        let scores = vec![
            vec![0.9, 0.1, 0.2],
            vec![0.5, 0.5, 0.1],
            vec![0.3, 0.2, 0.1],
        ];
        let r = ranks(&scores, &[0, 1, 2]);
        assert_eq!(r, [1, 2, 3]); // a tie ranks the passage after the other
        let s = from_ranks(&r);
        assert_eq!(s.recall_at_1, 1.0 / 3.0);
        assert_eq!(s.recall_at_10, 1.0);
        assert!((s.mrr_at_10 - (1.0 + 0.5 + 1.0 / 3.0) / 3.0).abs() < 1e-6);
    }

    #[test]
    fn bm25_prefers_rare_shared_terms() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let passages = [
            words("the cat sat"),
            words("the dog ran"),
            words("the the the"),
        ];
        let s = bm25_scores(&[words("the cat")], &passages);
        assert!(
            s[0][0] > s[0][2] && s[0][2] > s[0][1] && s[0][1] > 0.0,
            "{s:?}"
        );
        assert_eq!(bm25_scores(&[words("unknown")], &passages)[0], [0.0; 3]);
    }

    #[test]
    fn spearman_of_monotone_and_reversed() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 41.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }
}
