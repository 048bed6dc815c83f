//! `bert train classify|ner|qa|pretrain`: fine-tune or pre-train a task model (see `bert_std::train`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use bert_std::fetch::MINILM;
use bert_std::train::classify::{split, train_classifier};
use bert_std::train::data::read_classification;
use bert_std::train::{Step, TrainOptions};
use bert_std::{Error, Result};

use crate::model_args::model_path;

/// What to train.
#[derive(Subcommand)]
pub enum TrainKind {
    /// A sequence classifier (texts or text pairs → labels), e.g. IMDB sentiment or BoolQ, from
    /// CSV (`text,label` columns) or JSON Lines ("text" (+ "pair") and "label"; BoolQ's
    /// "question", "passage", "answer" too); scored by accuracy against the majority class.
    Classify(ClassifyArgs),
    /// A token classifier (NER) from CoNLL-style data (`word ... TAG` per line, blank lines
    /// between sentences); scored by entity-level F1.
    Ner(NerArgs),
    /// Extractive question answering from JSON Lines (`question`, `passage` or `context`,
    /// `answer` or `answers`): answers found verbatim in the passage become spans; scored by
    /// SQuAD exact match and F1 against a word-overlap baseline.
    Qa(QaArgs),
    /// Continued pre-training (MLM + NSP) on documents: JSON Lines ("passage", "text",
    /// "context" or "document"; repeated documents read once) or plain text (documents
    /// separated by blank lines); scored by held-out NSP accuracy and MLM loss.
    Pretrain(PretrainArgs),
    /// Next-sentence-prediction fine-tuning (HF's BertForNextSentencePrediction: the NSP loss
    /// alone) on the sentence pairs of documents read as `pretrain` reads them; starts from the
    /// model's NSP head when it has one (e.g. a `pretrain` checkpoint); scored by held-out NSP
    /// accuracy.
    Nsp(NspArgs),
    /// A small sentence encoder distilled from a teacher (all-MiniLM-L6-v2 by default): its
    /// vocabulary pruned on the corpus, its weights drawn (or cut from the teacher's), trained to
    /// give the teacher's embeddings (MSE, in the teacher's top principal directions or through a
    /// learned projection); written as a sentence-transformers directory and scored on held-out
    /// BoolQ dev retrieval.
    Distill(crate::distill::DistillArgs),
}

/// What every `bert train` command takes.
#[derive(Args)]
pub struct Common {
    /// The base model directory (default: all-MiniLM-L6-v2).
    #[arg(long, env = "BERT_MODEL")]
    pub model: Option<PathBuf>,
    /// Training data.
    #[arg(long)]
    pub data: PathBuf,
    /// Held-out data in the same form (default: 20% of --data, split with --seed).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Where to write the model (an HF directory, replaced file by file atomically; a
    /// checkpoint after every epoch).
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training data (1..=1000).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Examples per forward and backward pass (1..=256).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Batches whose gradients are averaged before each optimizer step (1..=1024): an
    /// effective batch of batch-size × grad-accum in the memory of one batch.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Seed of the head's initialization, the shuffling and the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of the steps spent warming the learning rate up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f32,
    /// AdamW's weight decay (not on biases and LayerNorm weights).
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// Continue an interrupted run from the trainer state in --out (same settings and data);
    /// the result equals an uninterrupted run's. Without a state, training starts afresh.
    #[arg(long)]
    pub resume: bool,
    /// Train without dropout (every step in evaluation mode); by default dropout is on, with
    /// the probabilities of the model's config.json, as HF's `model.train()`.
    #[arg(long)]
    pub no_dropout: bool,
}

impl Common {
    /// Checked options with the task's learning rate and length.
    fn options(&self, lr: f32, max_seq_len: usize) -> Result<TrainOptions> {
        if self.batch_size == 0
            || self.batch_size > 256
            || self.epochs == 0
            || self.epochs > 1000
            || !(1..=1024).contains(&self.grad_accum)
        {
            return Err(Error::Input(
                "--batch-size must be in 1..=256, --epochs in 1..=1000 and --grad-accum in 1..=1024"
                    .into(),
            ));
        }
        if !(lr > 0.0 && lr < 1.0 && (0.0..1.0).contains(&self.warmup_ratio)) {
            return Err(Error::Input(
                "--lr must be in (0, 1) and --warmup-ratio in [0, 1)".into(),
            ));
        }
        if !(8..=8192).contains(&max_seq_len) {
            return Err(Error::Input("--max-seq-len must be in 8..=8192".into()));
        }
        Ok(TrainOptions {
            epochs: self.epochs,
            lr,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            max_seq_len,
            seed: self.seed,
            warmup_ratio: self.warmup_ratio,
            weight_decay: self.weight_decay,
            resume: self.resume,
            dropout: !self.no_dropout,
        })
    }

    fn base(&self) -> Result<PathBuf> {
        let state = self.out.join(bert_std::train::state::STATE_FILE);
        if self.resume && state.is_file() {
            eprintln!("resuming from {}", state.display());
        }
        model_path(self.model.as_deref(), Some(MINILM), "base", false)
    }
}

/// `bert train classify`.
#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f32,
    /// Longest input in tokens (longer ones are truncated).
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
}

/// `bert train ner`.
#[derive(Args)]
pub struct NerArgs {
    #[command(flatten)]
    pub common: Common,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f32,
    /// Longest sentence in tokens (longer ones are skipped and counted).
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
}

/// `bert train qa`.
#[derive(Args)]
pub struct QaArgs {
    #[command(flatten)]
    pub common: Common,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f32,
    /// Window length in tokens (question + passage; long passages make several windows).
    #[arg(long, default_value_t = 256)]
    pub max_seq_len: usize,
    /// Overlap between windows in tokens (at most half the window).
    #[arg(long, default_value_t = 128)]
    pub doc_stride: usize,
    /// Share of the windows without the answer that are trained on (as "no answer here").
    #[arg(long, default_value_t = 0.1)]
    pub negative_share: f32,
    /// Most windows holding the answer trained on per question (default: all).
    #[arg(long)]
    pub answer_windows: Option<usize>,
}

/// `bert train pretrain`.
#[derive(Args)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub common: Common,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f32,
    /// Longest sentence pair in tokens (longer ones are truncated).
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Share of the ordinary tokens masked at each step (BERT: 0.15).
    #[arg(long, default_value_t = 0.15)]
    pub mlm_probability: f64,
}

/// `bert train nsp`.
#[derive(Args)]
pub struct NspArgs {
    #[command(flatten)]
    pub common: Common,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f32,
    /// Longest sentence pair in tokens (longer ones are truncated).
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
}

/// The training steps' pace: examples per second over the steps after the first (the first
/// pays for warm-up; loading, evaluation and checkpoints are not steps).
#[derive(Default)]
pub(crate) struct Pace {
    first_done: Option<Instant>,
    last_done: Option<Instant>,
    examples: usize,
}

impl Pace {
    fn per_second(&self) -> Option<f64> {
        let (a, b) = (self.first_done?, self.last_done?);
        let secs = (b - a).as_secs_f64();
        (secs > 0.0).then(|| self.examples as f64 / secs)
    }
}

/// A progress bar fed by the training steps: step, loss, learning rate, examples/s, ETA; and
/// the steps' pace.
pub(crate) fn progress_bar() -> (ProgressBar, Arc<Mutex<Pace>>, impl FnMut(&Step) + Send) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}")
            .unwrap_or(ProgressStyle::default_bar()),
    );
    let pace = Arc::new(Mutex::new(Pace::default()));
    let (started, mut seen, b, p) = (Instant::now(), 0usize, bar.clone(), pace.clone());
    let update = move |s: &Step| {
        seen += s.examples;
        if let Ok(mut p) = p.lock() {
            let now = Instant::now();
            if p.first_done.is_none() {
                p.first_done = Some(now);
            } else {
                p.examples += s.examples;
                p.last_done = Some(now);
            }
        }
        b.set_length(s.total as u64);
        b.set_position(s.step as u64);
        b.set_message(format!(
            "loss {:.4} lr {:.2e} {:.1} ex/s",
            s.loss,
            s.lr,
            seen as f64 / started.elapsed().as_secs_f64().max(1e-9)
        ));
    };
    (bar, pace, update)
}

fn print_skipped(path: &Path, skipped: &[(usize, String)]) {
    // Name the first few lines of each reason and count the rest.
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for (line, why) in skipped {
        match reasons.iter_mut().find(|r| r.0 == why) {
            Some(r) => r.1 += 1,
            None => reasons.push((why, 1)),
        }
        let n = reasons.iter().find(|r| r.0 == why).map_or(0, |r| r.1);
        if n <= 5 {
            eprintln!("skipped {}:{line}: {why}", path.display());
        }
    }
    for (why, n) in reasons.iter().filter(|r| r.1 > 5) {
        eprintln!("skipped {n} lines of {} in all: {why}", path.display());
    }
}

/// Run `bert train ...`.
pub fn train(kind: TrainKind) -> Result<ExitCode> {
    match kind {
        TrainKind::Classify(a) => train_classify(a),
        TrainKind::Ner(a) => train_ner(a),
        TrainKind::Qa(a) => train_qa(a),
        TrainKind::Pretrain(a) => train_pretrain(a),
        TrainKind::Nsp(a) => train_nsp(a),
        TrainKind::Distill(a) => crate::distill::train_distill(a),
    }
}

/// Name the held-out labels that no training example has (the model gets an output for each,
/// but cannot learn it), with how many held-out `what` carry each.
fn warn_unseen_labels<'a>(
    train: impl Iterator<Item = &'a str>,
    eval: impl Iterator<Item = &'a str>,
    what: &str,
) {
    let seen: std::collections::BTreeSet<&str> = train.collect();
    let mut unseen = std::collections::BTreeMap::<&str, usize>::new();
    for label in eval.filter(|l| !seen.contains(l)) {
        *unseen.entry(label).or_default() += 1;
    }
    for (label, n) in unseen {
        eprintln!(
            "warning: held-out label {label:?} ({n} {what}) never occurs in the training data: \
             the model has an output for it but cannot learn it"
        );
    }
}

fn train_classify(a: ClassifyArgs) -> Result<ExitCode> {
    let c = &a.common;
    let options = c.options(a.lr, a.max_seq_len)?;
    let base = c.base()?;
    let data = read_classification(&c.data)?;
    print_skipped(&c.data, &data.skipped);
    let (train, eval) = match &c.eval {
        Some(p) => {
            let e = read_classification(p)?;
            print_skipped(p, &e.skipped);
            (data.examples, e.examples)
        }
        None => split(&data.examples, 0.2, c.seed),
    };
    eprintln!(
        "training on {} examples ({} lines skipped), evaluating on {}",
        train.len(),
        data.skipped.len(),
        eval.len()
    );
    warn_unseen_labels(
        train.iter().map(|e| e.label.as_str()),
        eval.iter().map(|e| e.label.as_str()),
        "examples",
    );
    let (bar, pace, progress) = progress_bar();
    let started = Instant::now();
    let report = train_classifier(&base, &train, &eval, &options, &c.out, progress)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let seen = train.len() * options.epochs;
    let steps = pace.lock().ok().and_then(|p| p.per_second()).unwrap_or(0.0);
    eprintln!(
        "trained {} steps in {secs:.1} s ({:.1} examples/s; steps alone: {steps:.1} examples/s); \
         held-out accuracy {:.3} on {} examples (majority class {:.3}); model and loss_curve.svg \
         in {}",
        report.losses.len(),
        seen as f64 / secs.max(1e-9),
        report.accuracy,
        report.eval_examples,
        report.majority,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn train_ner(a: NerArgs) -> Result<ExitCode> {
    use bert_std::train::ner::{read_conll, train_ner};
    let c = &a.common;
    let options = c.options(a.lr, a.max_seq_len)?;
    let base = c.base()?;
    let sentences = read_conll(&c.data)?;
    let (train, eval) = match &c.eval {
        Some(p) => (sentences, read_conll(p)?),
        None => {
            let cut = sentences.len() - sentences.len() / 5;
            let mut order: Vec<usize> = (0..sentences.len()).collect();
            let mut rng = bert_core::rng::Rng::new(c.seed ^ 0x5eed);
            rng.shuffle(&mut order);
            let pick = |r: &[usize]| r.iter().map(|&i| sentences[i].clone()).collect::<Vec<_>>();
            (pick(&order[..cut]), pick(&order[cut..]))
        }
    };
    eprintln!(
        "training on {} sentences, evaluating on {}",
        train.len(),
        eval.len()
    );
    warn_unseen_labels(
        train.iter().flat_map(|x| x.tags.iter().map(String::as_str)),
        eval.iter().flat_map(|x| x.tags.iter().map(String::as_str)),
        "words",
    );
    let started = Instant::now();
    let (bar, _, progress) = progress_bar();
    let report = train_ner(&base, &train, &eval, &options, &c.out, progress)?;
    bar.finish_and_clear();
    eprintln!(
        "trained {} steps in {:.1} s ({} sentences over --max-seq-len skipped); held-out \
         entity F1 {:.3}; model and loss_curve.svg in {}",
        report.losses.len(),
        started.elapsed().as_secs_f64(),
        report.too_long,
        report.f1,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn train_qa(a: QaArgs) -> Result<ExitCode> {
    use bert_std::train::qa::{train_qa, QaWindows};
    use bert_std::train::qa_data::{read_qa, split_by_passage};
    let c = &a.common;
    let options = c.options(a.lr, a.max_seq_len)?;
    if !(0.0..=1.0).contains(&a.negative_share) || a.doc_stride == 0 {
        return Err(Error::Input(
            "--negative-share must be in [0, 1] and --doc-stride at least 1".into(),
        ));
    }
    let base = c.base()?;
    let data = read_qa(&c.data)?;
    print_skipped(&c.data, &data.skipped);
    eprintln!(
        "{} of {} questions have an answer verbatim in their passage",
        data.examples.len(),
        data.questions
    );
    let (train, eval) = match &c.eval {
        Some(p) => {
            let e = read_qa(p)?;
            print_skipped(p, &e.skipped);
            (data.examples, e.examples)
        }
        None => split_by_passage(&data.examples, 0.2, c.seed),
    };
    eprintln!(
        "training on {} questions, evaluating on {} (no passage in both)",
        train.len(),
        eval.len()
    );
    let windows = QaWindows {
        doc_stride: a.doc_stride,
        negative_share: a.negative_share,
        answer_windows: a.answer_windows.unwrap_or(usize::MAX),
    };
    let started = Instant::now();
    let (bar, _, progress) = progress_bar();
    let report = train_qa(&base, &train, &eval, &options, &windows, &c.out, progress)?;
    bar.finish_and_clear();
    eprintln!(
        "trained {} steps on {} windows ({} holding the answer) in {:.1} s; held-out exact \
         match {:.3}, F1 {:.3} on {} questions (word-overlap baseline: {:.3}, {:.3}); model and \
         loss_curve.svg in {}",
        report.losses.len(),
        report.windows.0,
        report.windows.1,
        started.elapsed().as_secs_f64(),
        report.exact_match,
        report.f1,
        report.eval_questions,
        report.baseline.0,
        report.baseline.1,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The documents of `--data`, and held-out ones: `--eval`'s, else a seeded 20% of them (split
/// by document); skipped lines are named.
fn documents(
    c: &Common,
) -> Result<(
    bert_std::train::pretrain::Corpus,
    bert_std::train::pretrain::Corpus,
)> {
    use bert_std::train::pretrain::read_corpus;
    let (corpus, skipped) = read_corpus(&c.data)?;
    print_skipped(&c.data, &skipped);
    Ok(match &c.eval {
        Some(p) => {
            let (e, skipped) = read_corpus(p)?;
            print_skipped(p, &skipped);
            (corpus, e)
        }
        None => corpus.split(0.2, c.seed),
    })
}

fn train_pretrain(a: PretrainArgs) -> Result<ExitCode> {
    use bert_std::train::pretrain::pretrain;
    let c = &a.common;
    let options = c.options(a.lr, a.max_seq_len)?;
    let base = c.base()?;
    let (train, eval) = documents(c)?;
    eprintln!(
        "pre-training on {} documents ({} sentences), evaluating on {} ({} sentences)",
        train.documents.len(),
        train.sentences(),
        eval.documents.len(),
        eval.sentences()
    );
    let started = Instant::now();
    let (bar, _, progress) = progress_bar();
    if !bert_std::train::pretrain::has_nsp_head(&base)? {
        // RoBERTa, XLM-R, ELECTRA, DistilBERT: the masked LM alone, as they were pre-trained.
        use bert_std::train::masked_lm::pretrain_masked_lm;
        let mlm = a.mlm_probability;
        let report = pretrain_masked_lm(&base, (&train, &eval), &options, mlm, &c.out, progress)?;
        bar.finish_and_clear();
        let k = report.losses.len().min(20);
        let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len().max(1) as f32;
        eprintln!(
            "trained {} steps on {} pairs in {:.1} s (masked LM; the family has no NSP head); \
             MLM loss {:.3} -> {:.3} (first and last {k} steps); held-out MLM loss {:.3} -> \
             {:.3} on {} pairs; model and loss_curve.svg in {}",
            report.losses.len(),
            report.pairs,
            started.elapsed().as_secs_f64(),
            mean(&report.losses[..k]),
            mean(&report.losses[report.losses.len() - k..]),
            report.eval_mlm.0,
            report.eval_mlm.1,
            report.eval_pairs,
            report.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = pretrain(
        &base,
        &train,
        &eval,
        &options,
        a.mlm_probability,
        &c.out,
        progress,
    )?;
    bar.finish_and_clear();
    let mean = |xs: &[(f32, f32)]| {
        let n = xs.len().max(1) as f32;
        (
            xs.iter().map(|p| p.0).sum::<f32>() / n,
            xs.iter().map(|p| p.1).sum::<f32>() / n,
        )
    };
    let k = report.parts.len().min(20);
    let (first, last) = (
        mean(&report.parts[..k]),
        mean(&report.parts[report.parts.len() - k..]),
    );
    eprintln!(
        "trained {} steps on {} pairs in {:.1} s; MLM loss {:.3} -> {:.3}, NSP loss {:.3} -> \
         {:.3} (first and last {k} steps); held-out: MLM loss {:.3} -> {:.3}, NSP accuracy \
         {:.3} on {} pairs (majority {:.3}); model and loss_curve.svg in {}",
        report.losses.len(),
        report.pairs,
        started.elapsed().as_secs_f64(),
        first.0,
        last.0,
        first.1,
        last.1,
        report.eval_mlm.0,
        report.eval_mlm.1,
        report.nsp_accuracy,
        report.eval_pairs,
        report.nsp_majority,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn train_nsp(a: NspArgs) -> Result<ExitCode> {
    use bert_std::train::nsp::train_nsp;
    let c = &a.common;
    let options = c.options(a.lr, a.max_seq_len)?;
    let base = c.base()?;
    let (train, eval) = documents(c)?;
    let started = Instant::now();
    let (bar, _, progress) = progress_bar();
    let report = train_nsp(&base, &train, &eval, &options, &c.out, progress)?;
    bar.finish_and_clear();
    let before = report
        .accuracy_before
        .map_or(String::from("new head"), |a| format!("{a:.3} before"));
    eprintln!(
        "trained {} steps on {} pairs in {:.1} s; held-out NSP accuracy {:.3} ({before}) on {} \
         pairs (majority {:.3}); model and loss_curve.svg in {}",
        report.losses.len(),
        report.pairs,
        started.elapsed().as_secs_f64(),
        report.accuracy,
        report.eval_pairs,
        report.majority,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
