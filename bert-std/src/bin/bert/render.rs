//! `--format table`: results as text for a person.

use serde::Serialize;

use bert_std::pipelines::classification::LabelScore;
use bert_std::pipelines::fill_mask::FillMaskOutput;
use bert_std::pipelines::ner::Entity;
use bert_std::pipelines::nsp::NspPrediction;
use bert_std::pipelines::qa::Answer;
use bert_std::pipelines::rerank::Ranked;
use bert_std::pipelines::sparse::SparseVector;

/// A result that can print itself as text.
pub trait Render {
    /// Append the text (ending with a newline) to `out`.
    fn table(&self, out: &mut String);
}

/// One embedding with the text it came from.
#[derive(Serialize)]
pub struct EmbeddingLine {
    pub text: String,
    pub embedding: Vec<f32>,
}

impl Render for EmbeddingLine {
    fn table(&self, out: &mut String) {
        let head: Vec<String> = self
            .embedding
            .iter()
            .take(4)
            .map(|x| format!("{x:+.4}"))
            .collect();
        out.push_str(&format!(
            "{:<40}  dim {}  [{}, …]\n",
            clip(&self.text, 40),
            self.embedding.len(),
            head.join(", ")
        ));
    }
}

/// One sparse vector with the text it came from.
#[derive(Serialize)]
pub struct SparseLine {
    pub text: String,
    pub sparse: SparseVector,
}

impl Render for SparseLine {
    fn table(&self, out: &mut String) {
        out.push_str(&format!("{}\n", clip(&self.text, 70)));
        for (t, w) in self.sparse.terms.iter().zip(&self.sparse.values).take(20) {
            out.push_str(&format!("  {w:>6.3}  {t}\n"));
        }
        if self.sparse.terms.len() > 20 {
            out.push_str(&format!("  … {} terms in all\n", self.sparse.terms.len()));
        }
    }
}

impl Render for Vec<Ranked> {
    fn table(&self, out: &mut String) {
        for r in self {
            out.push_str(&format!("  {:>6.3}  passage {}\n", r.score, r.index + 1));
        }
    }
}

impl Render for FillMaskOutput {
    fn table(&self, out: &mut String) {
        for (i, m) in self.masks.iter().enumerate() {
            out.push_str(&format!("[MASK] #{} (token {})\n", i + 1, m.token_index));
            for c in &m.candidates {
                out.push_str(&format!(
                    "  {:>6.3}  {:<15} {}\n",
                    c.score,
                    c.token_str,
                    clip(&c.sequence, 70)
                ));
            }
        }
    }
}

impl Render for NspPrediction {
    fn table(&self, out: &mut String) {
        let verdict = if self.is_next >= 0.5 {
            "is next"
        } else {
            "not next"
        };
        out.push_str(&format!("{verdict}  p(is next) = {:.4}\n", self.is_next));
    }
}

impl Render for Vec<LabelScore> {
    fn table(&self, out: &mut String) {
        for l in self {
            out.push_str(&format!("  {:>6.3}  {}\n", l.score, l.label));
        }
    }
}

impl Render for Vec<Entity> {
    fn table(&self, out: &mut String) {
        if self.is_empty() {
            out.push_str("  (no entities)\n");
        }
        for e in self {
            out.push_str(&format!(
                "  {:<8} {:>6.3}  {:<25} [{}..{})\n",
                e.label,
                e.score,
                clip(&e.word, 25),
                e.start,
                e.end
            ));
        }
    }
}

impl Render for Vec<Answer> {
    fn table(&self, out: &mut String) {
        for a in self {
            let text = if a.answer.is_empty() {
                "(no answer)"
            } else {
                &a.answer
            };
            out.push_str(&format!(
                "  {:>6.3}  {}  [{}..{})\n",
                a.score,
                clip(text, 60),
                a.start,
                a.end
            ));
        }
    }
}

/// At most `n` characters, with an ellipsis when cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
