//! Batching, request retry and partial retry, without servers: a fake `_bulk` sink and
//! a paused clock.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::batch::Batcher;
use super::dead_letter::DeadLetter;
use super::in_flight::InFlight;
use super::lane_time::LaneTime;
use super::request::{BulkSink, Written, write_part};
use super::{LaneContext, WriterError};
use crate::checkpoint::{AckToken, TxnStatus};
use crate::config::{Config, OnRejected};
use crate::es::{EsClient, SendError};
use crate::ordering::{Change, DocKey, Op, Origin, Routed};
use crate::position::Version;

/// Answers `_bulk` requests from a script and records the bodies it was sent.
#[derive(Default)]
struct FakeSink {
    answers: Mutex<VecDeque<Result<Bytes, SendError>>>,
    bodies: Mutex<Vec<String>>,
}

impl FakeSink {
    fn answering(answers: Vec<Result<&'static str, SendError>>) -> Self {
        let answers = answers
            .into_iter()
            .map(|a| a.map(|text: &str| Bytes::from_static(text.as_bytes())))
            .collect();
        Self {
            answers: Mutex::new(answers),
            bodies: Mutex::new(Vec::new()),
        }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

impl BulkSink for FakeSink {
    fn bulk(
        &self,
        body: Bytes,
        _gzip: bool,
    ) -> impl Future<Output = Result<Bytes, SendError>> + Send {
        self.bodies
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).into_owned());
        let answer = self.answers.lock().unwrap().pop_front();
        async move { answer.expect("the fake sink ran out of answers") }
    }
}

fn status(status: u16) -> SendError {
    SendError::Status {
        status,
        body: String::new(),
    }
}

/// A change to document `id`, with the receiver of its transaction's status.
fn change(id: &str) -> (Change, oneshot::Receiver<TxnStatus>) {
    let (ack, status) = AckToken::open();
    let change = Change {
        key: DocKey {
            index: "shop.orders".into(),
            id: id.into(),
        },
        op: Op::Index(Bytes::from_static(b"{\"n\":1}")),
        routing: None,
        version: Version(7),
        origin: Origin {
            file: "b.000001".into(),
            pos: 4,
        },
        ack,
    };
    (change, status)
}

/// A lane context whose client is never used, dead-lettering into `dir`.
fn context(dir: &std::path::Path, max_retries: u32, on_rejected: OnRejected) -> LaneContext {
    let toml = dir.join("c.toml");
    std::fs::write(
        &toml,
        "[mysql]\nurl = \"mysql://u@127.0.0.1:1\"\n[elasticsearch]\nurl = \"http://127.0.0.1:1\"\n\
         [checkpoint]\npath = \"/tmp/x/checkpoint.json\"\n[snapshot]\nmode = \"never\"\n\
         [[tables]]\nmatch = \"shop.*\"\n",
    )
    .unwrap();
    let config = Config::load(&toml).unwrap();
    let mut writer = config.writer.clone();
    writer.max_retries = max_retries;
    LaneContext {
        client: EsClient::new(&config.elasticsearch).unwrap(),
        config: writer,
        on_rejected,
        dead_letter: DeadLetter::file(dir.join("dead.jsonl")),
        abort: CancellationToken::new(),
        documents: None,
    }
}

#[tokio::test(start_paused = true)]
async fn partial_failures_retry_only_the_failed_items_and_dead_letter_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), 0, OnRejected::DeadLetter);
    let sink = FakeSink::answering(vec![
        Err(status(503)),
        Ok(r#"{"errors":true,"items":[
            {"index":{"status":201}},
            {"index":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"index":{"status":400,"error":{"type":"mapper_parsing_exception"}}}]}"#),
        Ok(r#"{"errors":false}"#),
    ]);
    let (a, a_status) = change("a");
    let (b, b_status) = change("b");
    let (c, c_status) = change("c");
    let mut part = vec![a, b, c];
    let mut capacity = 0;
    let written = write_part(&ctx, &sink, &mut part, &mut capacity, &LaneTime::default())
        .await
        .unwrap();
    assert_eq!(written, Written::Done);
    assert!(part.is_empty());
    let bodies = sink.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    // The whole request again after the 503, then only the item that met a 429.
    assert_eq!(bodies[0], bodies[1]);
    assert!(bodies[1].contains("\"_id\":\"c\""));
    assert!(bodies[2].contains("\"_id\":\"b\"") && !bodies[2].contains("\"_id\":\"a\""));
    assert!(!bodies[2].contains("\"_id\":\"c\""));
    assert_eq!(capacity, bodies[2].len());
    for status in [a_status, b_status, c_status] {
        assert_eq!(status.await.unwrap(), TxnStatus::Delivered);
    }
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains("\"id\":\"c\"") && dead.contains("mapper_parsing_exception"));
}

#[tokio::test(start_paused = true)]
async fn refusals_too_large_and_exhausted_retries_end_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), 3, OnRejected::DeadLetter);
    let (a, _) = change("a");
    let mut part = vec![a];
    let mut capacity = 0;

    let sink = FakeSink::answering(vec![Err(status(413))]);
    let written = write_part(&ctx, &sink, &mut part, &mut capacity, &LaneTime::default()).await;
    assert!(matches!(written, Ok(Written::TooLarge { .. })));
    assert_eq!(part.len(), 1, "a refused part is handed back whole");

    let sink = FakeSink::answering(vec![Err(status(400))]);
    let written = write_part(&ctx, &sink, &mut part, &mut capacity, &LaneTime::default()).await;
    assert!(matches!(
        written,
        Err(WriterError::Refused { status: 400, .. })
    ));

    // 401 is retried like a 5xx (crate::retry), up to writer.max_retries attempts.
    let sink = FakeSink::answering(vec![Err(status(401)), Err(status(502)), Err(status(503))]);
    let written = write_part(&ctx, &sink, &mut part, &mut capacity, &LaneTime::default()).await;
    assert!(
        matches!(
            &written,
            Err(WriterError::RetriesExhausted { attempts: 3, last }) if last.starts_with("HTTP 503")
        ),
        "{written:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejection_stops_the_lane_with_on_rejected_fail() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), 0, OnRejected::Fail);
    let sink = FakeSink::answering(vec![Ok(
        r#"{"errors":true,"items":[{"index":{"status":400,"error":{"type":"x"}}}]}"#,
    )]);
    let (a, a_status) = change("a");
    let mut part = vec![a];
    let written = write_part(&ctx, &sink, &mut part, &mut 0, &LaneTime::default()).await;
    assert!(matches!(
        written,
        Err(WriterError::Rejected { status: 400, .. })
    ));
    assert_eq!(a_status.await.unwrap(), TxnStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_a_part_waiting_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), 0, OnRejected::DeadLetter);
    let sink = FakeSink::answering(vec![Err(status(503))]);
    let (a, _) = change("a");
    let mut part = vec![a];
    let abort = ctx.abort.clone();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        abort.cancel();
    });
    let written = write_part(&ctx, &sink, &mut part, &mut 0, &LaneTime::default()).await;
    stopper.await.unwrap();
    assert!(matches!(written, Ok(Written::Abandoned)));
    assert_eq!(part.len(), 1);
}

/// Queues `ids` as routed changes, each holding one byte of a shared budget.
fn routed(budget: &Arc<Semaphore>, id: &str) -> Routed {
    Routed::new(
        change(id).0,
        Arc::clone(budget).try_acquire_owned().unwrap(),
    )
}

fn ids(changes: &[Change]) -> Vec<&str> {
    changes.iter().map(|c| c.key.id.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn batches_are_capped_by_docs_bytes_and_delay() {
    let budget = Arc::new(Semaphore::new(100));
    let (tx, rx) = mpsc::channel(16);
    let weight = change("a").0.weight();
    // Room for two documents' bytes, three documents' count.
    let mut batcher = Batcher::new(rx, 3, 2 * weight, Duration::from_millis(50), 0);
    for id in ["a", "b", "c", "d"] {
        tx.send(routed(&budget, id)).await.unwrap();
    }
    assert!(batcher.first().await);
    let batch = batcher.fill().await.unwrap();
    assert_eq!(ids(&batch.changes), ["a", "b"], "capped by bytes");
    assert_eq!(batch.held.num_permits(), 2);
    drop(batch);
    assert_eq!(
        budget.available_permits(),
        98,
        "the batch gave its budget back"
    );

    // `c` was carried over and `d` fills the bytes: no waiting.
    let started = tokio::time::Instant::now();
    assert!(batcher.first().await);
    let batch = batcher.fill().await.unwrap();
    assert_eq!(ids(&batch.changes), ["c", "d"]);
    assert_eq!(started.elapsed(), Duration::ZERO);

    // A lone change waits max_delay for company, then goes alone.
    let late = {
        let tx = tx.clone();
        let budget = Arc::clone(&budget);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(80)).await;
            tx.send(routed(&budget, "e")).await.unwrap();
        })
    };
    assert!(batcher.first().await);
    assert_eq!(started.elapsed(), Duration::from_millis(80));
    let batch = batcher.fill().await.unwrap();
    assert_eq!(ids(&batch.changes), ["e"]);
    assert_eq!(started.elapsed(), Duration::from_millis(130));
    late.await.unwrap();
    assert!(!batcher.finished());

    // The queue closes: the last batch drains it and the batcher is finished.
    tx.send(routed(&budget, "f")).await.unwrap();
    drop(tx);
    assert!(batcher.first().await);
    let batch = batcher.fill().await.unwrap();
    assert_eq!(ids(&batch.changes), ["f"]);
    assert!(batcher.finished());
    assert!(!batcher.first().await);

    let (tx, rx) = mpsc::channel(16);
    let mut by_count = Batcher::new(rx, 3, usize::MAX, Duration::from_secs(1), 0);
    for id in ["a", "b", "c", "d"] {
        tx.send(routed(&budget, id)).await.unwrap();
    }
    assert!(by_count.first().await);
    assert_eq!(
        ids(&by_count.fill().await.unwrap().changes),
        ["a", "b", "c"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_lane_gathers_its_queue_and_collapses_it_up_to_the_window() {
    let budget = Arc::new(Semaphore::new(100));
    let (tx, rx) = mpsc::channel(16);
    let mut batcher = Batcher::new(rx, 2, usize::MAX, Duration::from_millis(50), 4);
    for id in ["a", "b", "a", "c", "a", "b", "d", "e", "a"] {
        tx.send(routed(&budget, id)).await.unwrap();
    }
    assert!(batcher.has_room());
    batcher.absorb_queued();
    // Up to the window of 4 pending changes: a, b, a, c, a, b, d collapse into a b c d;
    // e and the last a wait in the queue.
    assert!(!batcher.has_room());
    assert_eq!(batcher.collapsed(), 3);
    assert_eq!(
        budget.available_permits(),
        100 - 4 - 2,
        "collapsed changes hold no budget"
    );
    assert!(batcher.first().await);
    let batch = batcher.fill().await.unwrap();
    assert_eq!(ids(&batch.changes), ["a", "b"]);
    assert_eq!(batch.superseded.len(), 3);
    let batch = batcher.fill().await.unwrap();
    assert_eq!(ids(&batch.changes), ["c", "d"]);
    drop(tx);
    let batch = batcher.fill().await.unwrap();
    assert_eq!(ids(&batch.changes), ["e", "a"]);
    assert!(batch.superseded.is_empty());
    assert!(!batcher.first().await && batcher.finished());

    // A window of 0 gathers nothing beyond the batch being filled.
    let (_tx, rx) = mpsc::channel(1);
    assert!(!Batcher::new(rx, 2, usize::MAX, Duration::ZERO, 0).has_room());
}

#[tokio::test(start_paused = true)]
async fn in_flight_requests_hold_their_documents_until_settled() {
    let (a, _) = change("a");
    let (b, _) = change("b");
    let mut one = InFlight::new(1, false, Default::default());
    assert!(
        one.keys_of(&[a]).is_empty(),
        "one request at a time needs no keys"
    );

    let mut two = InFlight::new(2, false, Default::default());
    let held = two.keys_of(std::slice::from_ref(&b));
    let (release, released) = oneshot::channel::<()>();
    two.spawn(
        async move {
            let _ = released.await;
            (Ok(()), 123)
        },
        held.clone(),
    );
    assert!(two.holds_any(&held) && !two.is_full() && !two.is_empty());
    let (other, _) = change("other");
    assert!(!two.holds_any(&two.keys_of(&[other])));
    release.send(()).unwrap();
    two.settle_one().await.unwrap();
    assert!(!two.holds_any(&held) && two.is_empty());
    assert_eq!(two.body_capacity(), 123);

    one.spawn(
        async { (Err(WriterError::Task("x".into())), 0) },
        Default::default(),
    );
    assert!(one.is_full());
    assert!(one.drain().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn adaptive_in_flight_grows_while_saturated_and_backs_off_on_push_back() {
    let times = std::sync::Arc::new(LaneTime::default());
    let mut lane = InFlight::new(4, true, std::sync::Arc::clone(&times));
    let settle_round = |lane: &mut InFlight| {
        let mut n = 0;
        while !lane.is_full() {
            lane.spawn(
                async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    (Ok(()), 0)
                },
                Default::default(),
            );
            n += 1;
        }
        lane.saturated();
        n
    };
    // Flat round trips while batches wait: one more request per round, up to the depth.
    let mut sizes = Vec::new();
    for _ in 0..6 {
        sizes.push(settle_round(&mut lane));
        lane.drain().await.unwrap();
    }
    assert_eq!(sizes, [1, 2, 3, 4, 4, 4]);
    // The sink pushes back: down to half at once.
    settle_round(&mut lane);
    times.pushed_back();
    lane.settle_one().await.unwrap();
    lane.drain().await.unwrap();
    assert_eq!(settle_round(&mut lane), 2);
    lane.drain().await.unwrap();
}
