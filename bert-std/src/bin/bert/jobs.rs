//! The batch machinery of the `bert` command: inputs from arguments, a JSONL file or stdin;
//! output to stdout or to a file written atomically; one line per input; bad inputs reported
//! by line and skipped; Ctrl-C handled; a summary line on stderr at the end of every run.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

use bert_std::atomic::AtomicFile;
use bert_std::{Error, Result};

use crate::render::Render;

/// Set by the Ctrl-C handler; the work loop stops at the next batch.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Install the Ctrl-C / SIGTERM handler: the first one asks the loop to stop cleanly, a second
/// one exits at once (the output file is then still untouched: only its temporary is left).
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted twice: exiting now; no output file was replaced");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing the current batch, then stopping (Ctrl-C again to quit now)"
        );
    });
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line (JSON Lines).
    Json,
    /// Human-readable text.
    Table,
}

/// One unit of work: where it came from (a JSONL line number, or else the position of a
/// command-line argument), and its fields.
pub struct Item {
    pub line: Option<usize>,
    pub arg: usize,
    pub fields: Value,
}

impl Item {
    /// A string field, or a message naming the missing field.
    pub fn field(&self, name: &str) -> Result<&str> {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Input(format!("missing string field {name:?}")))
    }

    /// An optional string field.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

/// What a run has read and what has happened to it so far.
pub struct Run {
    pub command: &'static str,
    pub input: Option<PathBuf>,
    pub items: Vec<Item>,
    /// (JSONL line or argument number, message).
    pub failures: Vec<(usize, String)>,
    pub blank_lines: usize,
    /// Lines that could not be read as JSON (counted in `failures` too).
    unreadable: usize,
    pub written: usize,
    started: Instant,
}

/// `-` is stdin.
fn open_input(path: &Path) -> Result<Box<dyn Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(Box::new(f))
}

impl Run {
    /// Items from `--input` (JSONL; `-` for stdin) or else from the command line.
    pub fn read(command: &'static str, input: Option<&Path>, args: Vec<Value>) -> Result<Run> {
        let mut run = Run {
            command,
            input: input.map(Path::to_path_buf),
            items: Vec::new(),
            failures: Vec::new(),
            blank_lines: 0,
            unreadable: 0,
            written: 0,
            started: Instant::now(),
        };
        let Some(path) = input else {
            run.items = args
                .into_iter()
                .enumerate()
                .map(|(i, fields)| Item {
                    line: None,
                    arg: i + 1,
                    fields,
                })
                .collect();
            return Ok(run);
        };
        if !args.is_empty() {
            return Err(Error::Input(
                "give the texts either as arguments or with --input, not both".into(),
            ));
        }
        for (i, raw) in BufReader::new(open_input(path)?).split(b'\n').enumerate() {
            let n = i + 1;
            let raw = raw.map_err(|e| Error::io(path, e))?;
            let parsed = std::str::from_utf8(&raw)
                .map_err(|e| format!("invalid UTF-8 ({e})"))
                .and_then(|s| {
                    if s.trim().is_empty() {
                        return Ok(None);
                    }
                    serde_json::from_str::<Value>(s)
                        .map_err(|e| format!("invalid JSON ({e})"))
                        .map(Some)
                });
            match parsed {
                Ok(Some(fields)) => run.items.push(Item {
                    line: Some(n),
                    arg: 0,
                    fields,
                }),
                Ok(None) => run.blank_lines += 1,
                Err(e) => run.failures.push((n, e)),
            }
        }
        run.unreadable = run.failures.len();
        run.started = Instant::now();
        Ok(run)
    }

    /// Time the inputs from now (after the model is loaded, or made: a first use that distils
    /// or trains the model is not counted in the inputs/s of the summary).
    pub fn restart_clock(&mut self) {
        self.started = Instant::now();
    }

    /// An error when there is nothing to do.
    pub fn require_input(&self, usage: &str) -> Result<()> {
        if self.items.is_empty() && self.failures.is_empty() {
            let what = match &self.input {
                Some(p) => format!("{} has no input lines", p.display()),
                None => format!("no input: {usage}, or --input FILE.jsonl (- for stdin)"),
            };
            return Err(Error::Input(what));
        }
        Ok(())
    }

    /// Inputs read (good and bad), blank lines aside.
    fn total(&self) -> usize {
        self.items.len() + self.unreadable
    }

    /// Print every failure (line by line), then the summary; true when nothing failed.
    pub fn finish(mut self, out: &OutputTarget, interrupted: bool) -> bool {
        self.failures.sort_by_key(|(l, _)| *l);
        for (n, e) in &self.failures {
            let e = if e.chars().count() > 300 {
                format!("{}…", e.chars().take(300).collect::<String>())
            } else {
                e.clone()
            };
            match &self.input {
                Some(p) => eprintln!("error: {}:{n}: {e}", p.display()),
                None => eprintln!("error: argument {n}: {e}"),
            }
        }
        let secs = self.started.elapsed().as_secs_f64();
        let failed = self.failures.len();
        let mut summary = format!(
            "{}: {} of {} input{} {}",
            self.command,
            self.written,
            self.total(),
            if self.total() == 1 { "" } else { "s" },
            match (out, interrupted) {
                (OutputTarget::File(p), true) => {
                    format!(
                        "done, none written: interrupted, {} left as it was",
                        p.display()
                    )
                }
                (OutputTarget::File(p), false) => format!("written to {}", p.display()),
                (OutputTarget::Stdout, true) => "written to stdout before the interrupt".into(),
                (OutputTarget::Stdout, false) => "written".into(),
            }
        );
        if failed > 0 {
            summary += &format!(", {failed} failed");
        }
        if self.blank_lines > 0 {
            summary += &format!(", {} blank line(s) skipped", self.blank_lines);
        }
        summary += &format!(
            "; {:.1} inputs/s ({secs:.2} s)",
            self.written as f64 / secs.max(1e-9)
        );
        eprintln!("{summary}");
        failed == 0 && !interrupted
    }
}

/// Where results go.
pub enum OutputTarget {
    Stdout,
    File(PathBuf),
}

/// An open output: stdout, or a file that replaces its target only when the run succeeds.
pub enum Output {
    Stdout(std::io::StdoutLock<'static>),
    File(AtomicFile),
}

impl Output {
    /// Open `path` (a temporary beside it) or stdout. `input` may not be the same file.
    pub fn open(path: Option<&Path>, input: Option<&Path>) -> Result<Output> {
        let Some(path) = path else {
            return Ok(Output::Stdout(std::io::stdout().lock()));
        };
        if let Some(input) = input {
            let same = match (std::fs::canonicalize(input), std::fs::canonicalize(path)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if same {
                return Err(Error::Input(format!(
                    "--output {} is the --input file; write the results elsewhere",
                    path.display()
                )));
            }
        }
        Ok(Output::File(AtomicFile::create(path)?))
    }

    pub fn target(&self) -> OutputTarget {
        match self {
            Output::Stdout(_) => OutputTarget::Stdout,
            Output::File(f) => OutputTarget::File(f.path().to_path_buf()),
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(s) => s,
            Output::File(f) => f,
        }
    }

    /// Keep the results: flush stdout, or move the file into place.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::Stdout(mut s) => s.flush().map_err(|e| Error::io("<stdout>", e)),
            Output::File(f) => f.commit(),
        }
    }
}

#[derive(Serialize)]
struct Lined<'a, T> {
    line: usize,
    result: &'a T,
}

fn emit<T: Serialize + Render>(
    out: &mut Output,
    format: Format,
    item: &Item,
    value: &T,
) -> Result<()> {
    let w = out.writer();
    let io = |e| Error::io("<output>", e);
    match format {
        Format::Json => {
            match item.line {
                Some(line) => serde_json::to_writer(
                    &mut *w,
                    &Lined {
                        line,
                        result: value,
                    },
                ),
                None => serde_json::to_writer(&mut *w, value),
            }
            .map_err(|e| Error::io("<output>", e.into()))?;
            writeln!(w).map_err(io)
        }
        Format::Table => {
            let mut s = String::new();
            if let Some(line) = item.line {
                s += &format!("line {line}\n");
            }
            value.table(&mut s);
            w.write_all(s.as_bytes()).map_err(io)
        }
    }
}

/// Run `f` over the items in chunks; a chunk that fails is retried one item at a time so that a
/// bad input costs only itself. Returns true when interrupted.
pub fn process<T: Serialize + Render>(
    run: &mut Run,
    out: &mut Output,
    format: Format,
    chunk: usize,
    f: impl Fn(&[&Item]) -> Result<Vec<T>>,
) -> Result<bool> {
    let bar = ProgressBar::with_draw_target(
        Some(run.items.len() as u64),
        ProgressDrawTarget::stderr(), // drawn only on a terminal
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or(ProgressStyle::default_bar()),
    );
    if run.items.len() <= 64 {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let items = std::mem::take(&mut run.items);
    let mut interrupted = false;
    for group in items.chunks(chunk.max(1)) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let refs: Vec<&Item> = group.iter().collect();
        let results: Vec<Result<T>> = bert_std::batching::all_or_each(&refs, &f);
        for (item, r) in group.iter().zip(results) {
            match r {
                Ok(v) => {
                    emit(out, format, item, &v)?;
                    run.written += 1;
                }
                Err(e) => run
                    .failures
                    .push((item.line.unwrap_or(item.arg), e.without_index().to_string())),
            }
        }
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    run.items = items;
    Ok(interrupted)
}
