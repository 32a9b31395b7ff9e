//! The micro-batcher: groups preprocessed photos so the model runs on batches, without making
//! any photo wait longer than `max_wait` for company.
//!
//! A batch is flushed when it is full, when its deadline passes, when no photo is on its way
//! to join it ([`Upstream`]: a lone photo is not held for company that is not coming), when
//! the next item may not join it (another model: a batch runs on one), or when the input
//! closes, and says which ([`FlushTrigger`]). The deadline belongs to the batch being filled:
//! it is set when the batch's first item arrives and dropped when the batch is flushed, so a
//! deadline of an earlier batch can never flush a later one early.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// A batch is flushed as soon as it holds this many items.
    pub max_batch_size: usize,
    /// ...or this long after its first item arrived, whichever comes first.
    pub max_wait: Duration,
    /// Whether a batch waits out `max_wait` even when nothing more is on its way (no
    /// [`FlushTrigger::Idle`]): fuller batches from bursty arrivals, for a GPU, at the cost
    /// of latency.
    pub wait_when_idle: bool,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self { max_batch_size: 32, max_wait: Duration::from_millis(20), wait_when_idle: false }
    }
}

/// Why a batch was flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushTrigger {
    Full,
    Deadline,
    /// Nothing more was on its way: the input was empty and no photo was being prepared.
    Idle,
    /// The next item belongs to another model (a hot swap).
    ModelSwap,
    InputClosed,
}

impl FlushTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushTrigger::Full => "full",
            FlushTrigger::Deadline => "deadline",
            FlushTrigger::Idle => "idle",
            FlushTrigger::ModelSwap => "model_swap",
            FlushTrigger::InputClosed => "input_closed",
        }
    }
}

#[derive(Debug)]
pub struct Batch<T> {
    pub items: Vec<T>,
    pub trigger: FlushTrigger,
}

/// The photos being prepared for the batcher (fetched, decoded): the stage before it holds an
/// [`UpstreamGuard`] per photo until the photo is sent or given up.
#[derive(Debug, Default)]
pub struct Upstream {
    busy: AtomicUsize,
    /// Woken when `busy` drops to zero. A wake-up may be stale; the batcher checks again.
    idle: Notify,
}

impl Upstream {
    pub fn start(self: &Arc<Self>) -> UpstreamGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        UpstreamGuard(self.clone())
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }
}

/// One photo on its way to the batcher; dropping it says the photo arrived or never will.
#[derive(Debug)]
pub struct UpstreamGuard(Arc<Upstream>);

impl Drop for UpstreamGuard {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_one();
        }
    }
}

/// Reads `input` until it closes, writing batches to `output`. `fits(first, item)` says
/// whether `item` may join the batch that `first` opened. A batch also goes before its
/// deadline once `upstream` is idle and `input` empty. Returns early if `output` is closed
/// (nobody wants the batches any more).
pub async fn run_batcher<T>(
    config: BatcherConfig,
    mut input: mpsc::Receiver<T>,
    output: mpsc::Sender<Batch<T>>,
    upstream: Arc<Upstream>,
    fits: impl Fn(&T, &T) -> bool,
) {
    let max_batch_size = config.max_batch_size.max(1);
    let nothing_coming = |input: &mpsc::Receiver<T>| !config.wait_when_idle && upstream.is_idle() && input.is_empty();
    let mut items: Vec<T> = Vec::with_capacity(max_batch_size);
    // The deadline of the batch in `items`; `None` exactly when `items` is empty.
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            None => input.recv().await,
            Some(at) => tokio::select! {
                // The deadline first: a busy input must not keep a due batch waiting.
                biased;
                () = tokio::time::sleep_until(at) => {
                    deadline = None;
                    if !flush(&mut items, FlushTrigger::Deadline, &output, max_batch_size).await {
                        return;
                    }
                    continue;
                }
                next = input.recv() => next,
                () = upstream.idle.notified() => {
                    if nothing_coming(&input) {
                        deadline = None;
                        if !flush(&mut items, FlushTrigger::Idle, &output, max_batch_size).await {
                            return;
                        }
                    }
                    continue;
                }
            },
        };
        match next {
            Some(item) => {
                if items.first().is_some_and(|first| !fits(first, &item)) {
                    deadline = None;
                    if !flush(&mut items, FlushTrigger::ModelSwap, &output, max_batch_size).await {
                        return;
                    }
                }
                if items.is_empty() {
                    deadline = Some(Instant::now() + config.max_wait);
                }
                items.push(item);
                let trigger = if items.len() >= max_batch_size {
                    FlushTrigger::Full
                } else if nothing_coming(&input) {
                    FlushTrigger::Idle
                } else {
                    continue;
                };
                deadline = None;
                if !flush(&mut items, trigger, &output, max_batch_size).await {
                    return;
                }
            }
            None => {
                if !items.is_empty() {
                    flush(&mut items, FlushTrigger::InputClosed, &output, max_batch_size).await;
                }
                return;
            }
        }
    }
}

async fn flush<T>(items: &mut Vec<T>, trigger: FlushTrigger, output: &mpsc::Sender<Batch<T>>, capacity: usize) -> bool {
    let items = std::mem::replace(items, Vec::with_capacity(capacity));
    tracing::trace!(size = items.len(), trigger = trigger.as_str(), "flushing batch");
    output.send(Batch { items, trigger }).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batcher whose upstream always has a photo on its way, so only size, deadline, model
    /// and closing flush (the idle flush has its own tests).
    fn start(max_batch_size: usize, max_wait_ms: u64) -> (mpsc::Sender<u32>, mpsc::Receiver<Batch<u32>>) {
        start_with(max_batch_size, max_wait_ms, |_, _| true)
    }

    fn start_with(
        max_batch_size: usize,
        max_wait_ms: u64,
        fits: fn(&u32, &u32) -> bool,
    ) -> (mpsc::Sender<u32>, mpsc::Receiver<Batch<u32>>) {
        let upstream = Arc::new(Upstream::default());
        std::mem::forget(upstream.start());
        start_behind(config(max_batch_size, max_wait_ms), fits, upstream)
    }

    fn config(max_batch_size: usize, max_wait_ms: u64) -> BatcherConfig {
        BatcherConfig { max_batch_size, max_wait: Duration::from_millis(max_wait_ms), ..Default::default() }
    }

    fn start_behind(
        config: BatcherConfig,
        fits: fn(&u32, &u32) -> bool,
        upstream: Arc<Upstream>,
    ) -> (mpsc::Sender<u32>, mpsc::Receiver<Batch<u32>>) {
        let (in_tx, in_rx) = mpsc::channel(64);
        let (out_tx, out_rx) = mpsc::channel(64);
        tokio::spawn(run_batcher(config, in_rx, out_tx, upstream, fits));
        (in_tx, out_rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_item_goes_at_once_when_nothing_else_is_coming() {
        let upstream = Arc::new(Upstream::default());
        let (tx, mut rx) = start_behind(config(10, 1_000), |_, _| true, upstream);
        let t0 = Instant::now();
        tx.send(1).await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![1], FlushTrigger::Idle));
        assert_eq!(Instant::now(), t0, "no wait for the deadline");

        // Unless told to wait anyway.
        let waiting = BatcherConfig { wait_when_idle: true, ..config(10, 1_000) };
        let (tx, mut rx) = start_behind(waiting, |_, _| true, Arc::new(Upstream::default()));
        tx.send(2).await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![2], FlushTrigger::Deadline));
        assert_eq!(Instant::now() - t0, Duration::from_millis(1_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_photos_on_their_way_then_goes_when_the_last_arrives() {
        let upstream = Arc::new(Upstream::default());
        let (tx, mut rx) = start_behind(config(10, 1_000), |_, _| true, upstream.clone());
        let t0 = Instant::now();
        let (first, second) = (upstream.start(), upstream.start());
        tx.send(1).await.unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(rx.try_recv().is_err(), "a photo is still on its way: the batch waits for it");
        tx.send(2).await.unwrap();
        drop(second);
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![1, 2], FlushTrigger::Idle));
        assert_eq!(Instant::now() - t0, Duration::from_millis(30), "it went when the last one arrived");

        // A photo given up on the way (a dead letter) sends nothing: its guard's drop still
        // lets the waiting batch go.
        let lost = upstream.start();
        tx.send(3).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(lost);
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![3], FlushTrigger::Idle));
        assert_eq!(Instant::now() - t0, Duration::from_millis(40));
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_that_does_not_fit_flushes_the_batch_before_it() {
        // Items fit a batch whose first item has the same parity (a stand-in for "model").
        let (tx, mut rx) = start_with(10, 1_000, |a, b| a % 2 == b % 2);
        let t0 = Instant::now();
        for i in [2, 4, 1, 3, 6] {
            tx.send(i).await.unwrap();
        }
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![2, 4], FlushTrigger::ModelSwap));
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![1, 3], FlushTrigger::ModelSwap));
        assert_eq!(Instant::now(), t0, "a swap does not wait for the deadline");
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![6], FlushTrigger::Deadline));
        assert_eq!(Instant::now() - t0, Duration::from_millis(1_000), "the new batch has its own deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_when_full_without_waiting() {
        let (tx, mut rx) = start(3, 1_000);
        let t0 = Instant::now();
        for i in 0..7 {
            tx.send(i).await.unwrap();
        }
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![0, 1, 2], FlushTrigger::Full));
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![3, 4, 5], FlushTrigger::Full));
        assert_eq!(Instant::now(), t0, "full batches do not wait for the clock");
        // The 7th waits for its deadline.
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![6], FlushTrigger::Deadline));
        assert_eq!(Instant::now() - t0, Duration::from_millis(1_000));
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_at_the_deadline_of_the_first_item() {
        let (tx, mut rx) = start(10, 50);
        let t0 = Instant::now();
        tx.send(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        tx.send(2).await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![1, 2], FlushTrigger::Deadline));
        // 50 ms after the first item, not after the second.
        assert_eq!(Instant::now() - t0, Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_deadline_does_not_flush_a_newer_batch() {
        let (tx, mut rx) = start(2, 100);
        let t0 = Instant::now();
        // Batch A: opened at 0 (deadline 100), filled at 90.
        tx.send(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(90)).await;
        tx.send(2).await.unwrap();
        let a = rx.recv().await.unwrap();
        assert_eq!((a.items, a.trigger), (vec![1, 2], FlushTrigger::Full));
        // Batch B: opened at 95; A's old deadline (100) must not flush it.
        tokio::time::sleep(Duration::from_millis(5)).await;
        tx.send(3).await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![3], FlushTrigger::Deadline));
        assert_eq!(Instant::now() - t0, Duration::from_millis(195));
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_the_rest_when_the_input_closes_and_then_ends() {
        let (tx, mut rx) = start(10, 1_000);
        let t0 = Instant::now();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        let b = rx.recv().await.unwrap();
        assert_eq!((b.items, b.trigger), (vec![1, 2], FlushTrigger::InputClosed));
        assert_eq!(Instant::now(), t0, "closing does not wait for the deadline");
        assert!(rx.recv().await.is_none(), "the batcher ends after its input");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_batcher_flushes_nothing() {
        let (tx, mut rx) = start(4, 10);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(rx.try_recv().is_err());
        drop(tx);
        assert!(rx.recv().await.is_none(), "no empty batch on close");
    }
}
