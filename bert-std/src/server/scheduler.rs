//! Dynamic batching by token count, as text-embeddings-inference does, for one model or several
//! sharing the cores: requests wait in one bounded queue (full → the caller answers 429); one
//! worker thread takes turns between the models that have work waiting (round robin, a batch
//! each), and for the model whose turn it is takes its oldest request and every later one that
//! can share its forward pass (same task and options) while the tokens stay within
//! `max_batch_tokens`, runs them as one padding-free batch and hands each request its own
//! results. So one busy model cannot hold another's requests back by more than a batch. A request
//! whose client went away is dropped before it runs. If a merged batch fails (one bad input), its
//! requests are run one by one so that only the bad one fails; a panic fails its requests, not
//! the worker.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::server::batcher::{Done, Model, Work};
use crate::server::metrics::Metrics;

/// Where a request's time went in the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// From queueing to the start of its batch.
    pub queue: Duration,
    /// Its batch's time in the model.
    pub inference: Duration,
}

/// What a request gets back: its results and where the time went.
pub type Reply = Result<(Done, Timing)>;

/// One request waiting for a model.
#[derive(Debug)]
pub(crate) struct Job {
    work: Work,
    tokens: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

/// The queue in front of one model (every model's queue feeds the one worker).
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<(usize, Job)>,
    model: usize,
    metrics: Arc<Metrics>,
}

/// Why a request was not queued.
#[derive(Debug)]
pub enum Refused {
    /// The queue is full: answer 429.
    Full,
    /// The worker has stopped (shutting down): answer 503.
    Closed,
}

/// Start the worker for `models` (at most `capacity` requests waiting, all models together);
/// returns one queue per model. The worker stops when every queue is dropped.
pub fn start(
    models: Vec<Arc<Model>>,
    capacity: usize,
    max_batch_tokens: usize,
    metrics: Arc<Metrics>,
) -> (Vec<Queue>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let m = metrics.clone();
    let n = models.len();
    let worker = std::thread::Builder::new()
        .name("bert-batcher".into())
        .spawn(move || work_loop(&models, rx, max_batch_tokens, &m))
        .expect("a thread for the batcher");
    let queues = (0..n)
        .map(|model| Queue {
            tx: tx.clone(),
            model,
            metrics: metrics.clone(),
        })
        .collect();
    (queues, worker)
}

impl Queue {
    /// Queue `work` (`tokens` long); the receiver gets its results.
    pub fn submit(
        &self,
        work: Work,
        tokens: usize,
    ) -> std::result::Result<oneshot::Receiver<Reply>, Refused> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            work,
            tokens,
            enqueued: Instant::now(),
            reply,
        };
        match self.tx.try_send((self.model, job)) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Refused::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Refused::Closed),
        }
    }
}

fn work_loop(
    models: &[Arc<Model>],
    mut rx: mpsc::Receiver<(usize, Job)>,
    max_tokens: usize,
    metrics: &Metrics,
) {
    let mut waiting: Vec<VecDeque<Job>> = models.iter().map(|_| VecDeque::new()).collect();
    let mut turn = 0;
    loop {
        if waiting.iter().all(VecDeque::is_empty) {
            match rx.blocking_recv() {
                Some((m, job)) => waiting[m].push_back(job),
                None => return,
            }
        }
        while let Ok((m, job)) = rx.try_recv() {
            waiting[m].push_back(job);
        }
        let Some((m, mut jobs, _)) = next_batch(&mut waiting, &mut turn, max_tokens) else {
            continue;
        };
        metrics
            .queue_depth
            .fetch_sub(jobs.len() as u64, Ordering::Relaxed);
        // Clients that went away are not worth a forward pass.
        jobs.retain(|j| !j.reply.is_closed());
        if !jobs.is_empty() {
            run_jobs(&models[m], jobs, metrics);
        }
    }
}

/// The next batch: the first model from `turn` on (round robin) with work waiting, its oldest
/// job and every later waiting job that can share its forward pass, while the tokens stay
/// within `max_tokens`. Returns the model, the jobs and their tokens; `turn` moves past it.
fn next_batch(
    waiting: &mut [VecDeque<Job>],
    turn: &mut usize,
    max_tokens: usize,
) -> Option<(usize, Vec<Job>, usize)> {
    let n = waiting.len();
    let m = (0..n)
        .map(|k| (*turn + k) % n)
        .find(|&m| !waiting[m].is_empty())?;
    *turn = (m + 1) % n;
    let queue = &mut waiting[m];
    let first = queue.pop_front()?;
    let mut tokens = first.tokens;
    let mut jobs = vec![first];
    let mut i = 0;
    while i < queue.len() {
        if jobs[0].work.fits_with(&queue[i].work) && tokens + queue[i].tokens <= max_tokens {
            let job = queue.remove(i).expect("in range");
            tokens += job.tokens;
            jobs.push(job);
        } else {
            i += 1;
        }
    }
    Some((m, jobs, tokens))
}

/// `model.run(work)`, with a panic (a bug, in this crate or a dependency) turned into an error
/// for these requests alone: the worker goes on serving the others.
fn run_guarded(model: &Model, work: &Work) -> Result<Done> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.run(work))).unwrap_or_else(
        |panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Model(format!("internal error: {what}")))
        },
    )
}

fn run_jobs(model: &Model, jobs: Vec<Job>, metrics: &Metrics) {
    // The jobs merged into one batch; if it fails, each alone (only the bad one fails).
    let results = crate::batching::all_or_each(&jobs, |some: &[Job]| {
        let counts: Vec<usize> = some.iter().map(|j| j.work.len()).collect();
        let mut merged = some[0].work.clone();
        for j in &some[1..] {
            merged.absorb(j.work.clone());
        }
        let started = Instant::now();
        let done = run_guarded(model, &merged)?;
        let inference = started.elapsed();
        let tokens = some.iter().map(|j| j.tokens).sum();
        metrics.batch(merged.len(), tokens, inference.as_secs_f64());
        Ok(done
            .split(&counts)
            .into_iter()
            .zip(some)
            .map(|(part, job)| {
                let queue = started.saturating_duration_since(job.enqueued);
                (part, Timing { queue, inference })
            })
            .collect())
    });
    for (job, result) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(texts: usize, tokens: usize, top_k: usize) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            work: Work::FillMask {
                texts: vec!["a [MASK]".into(); texts],
                top_k,
            },
            tokens,
            enqueued: Instant::now(),
            reply,
        }
    }

    #[test]
    fn models_take_turns_and_batches_keep_to_options_and_tokens() {
        // Model 0 has five jobs waiting, model 1 one: model 1 is served second, not sixth.
        let mut waiting = vec![
            (0..5).map(|_| job(1, 40, 5)).collect::<VecDeque<_>>(),
            VecDeque::from([job(1, 10, 5)]),
        ];
        let mut turn = 0;
        let max = 100;
        let (m, jobs, tokens) = next_batch(&mut waiting, &mut turn, max).unwrap();
        assert_eq!(
            (m, jobs.len(), tokens),
            (0, 2, 80),
            "within the token budget"
        );
        let (m, jobs, _) = next_batch(&mut waiting, &mut turn, max).unwrap();
        assert_eq!((m, jobs.len()), (1, 1), "the other model's turn");
        let (m, jobs, _) = next_batch(&mut waiting, &mut turn, max).unwrap();
        assert_eq!((m, jobs.len()), (0, 2));
        let (m, jobs, _) = next_batch(&mut waiting, &mut turn, max).unwrap();
        assert_eq!((m, jobs.len()), (0, 1));
        assert!(next_batch(&mut waiting, &mut turn, max).is_none());

        // Other options wait for a batch of their own; the oldest job is always taken.
        let mut waiting = vec![VecDeque::from([job(1, 500, 5), job(1, 1, 3), job(1, 1, 5)])];
        let (_, jobs, tokens) = next_batch(&mut waiting, &mut turn, 100).unwrap();
        assert_eq!(
            (jobs.len(), tokens),
            (1, 500),
            "an oversized oldest job still runs"
        );
        let (_, jobs, _) = next_batch(&mut waiting, &mut turn, 100).unwrap();
        assert_eq!(jobs.len(), 1, "top_k 3 alone");
        assert_eq!(waiting[0].len(), 1);
    }
}
