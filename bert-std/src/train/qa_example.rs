//! What a QA file holds once read: questions with answer spans in their passages. Its own
//! module so that every reader (`qa_data`'s JSONL, `squad`'s SQuAD JSON) shares it without the
//! readers importing each other.

/// One question with an answer span in its passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaExample {
    /// The question.
    pub question: String,
    /// The passage (the context).
    pub passage: String,
    /// Every reference answer, as written in the file (for scoring).
    pub answers: Vec<String>,
    /// The span's first character in the passage (characters, not bytes).
    pub start: usize,
    /// One past its last character.
    pub end: usize,
}

impl QaExample {
    /// An unanswerable question (SQuAD v2): its span is empty and its reference answer "".
    pub fn is_impossible(&self) -> bool {
        self.start >= self.end
    }
}

/// What reading a QA file gave.
#[derive(Debug, Clone, Default)]
pub struct QaLoaded {
    /// Questions whose answer was found in the passage, in file order.
    pub examples: Vec<QaExample>,
    /// Questions read (good lines).
    pub questions: usize,
    /// (line, why) of every line not used, answers not found in the passage included.
    pub skipped: Vec<(usize, String)>,
}
