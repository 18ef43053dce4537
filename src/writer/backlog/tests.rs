use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use tokio::sync::Semaphore;

use super::*;
use crate::checkpoint::TxnStatus;
use crate::ordering::{Origin, RootKey};
use crate::position::Version;

fn change(id: &str, op: Op, routing: Option<&str>, version: u64) -> Change {
    Change {
        key: DocKey {
            index: "i".into(),
            id: id.into(),
        },
        op,
        routing: routing.map(Arc::from),
        version: Version(version),
        origin: Origin {
            file: "b.000001".into(),
            pos: version,
        },
        ack: AckToken::open().0,
    }
}

fn index(id: &str, version: u64) -> Change {
    change(id, Op::Index(Bytes::from_static(b"{}")), None, version)
}

fn routed(budget: &Arc<Semaphore>, change: Change) -> Routed {
    let share = u32::try_from(change.weight()).unwrap();
    let held = Arc::clone(budget).try_acquire_many_owned(share).unwrap();
    Routed::new(change, held)
}

fn versions(changes: &[Change]) -> Vec<(&str, u64)> {
    changes
        .iter()
        .map(|c| (c.key.id.as_str(), c.version.0))
        .collect()
}

#[test]
fn later_changes_collapse_into_the_first_seen_slot_and_give_their_bytes_back() {
    let budget = Arc::new(Semaphore::new(1 << 20));
    let mut backlog = Backlog::default();
    let weight = index("a", 1).weight();
    backlog.push(routed(&budget, index("a", 1)));
    backlog.push(routed(&budget, index("b", 2)));
    backlog.push(routed(&budget, change("a", Op::Delete, None, 3)));
    backlog.push(routed(&budget, index("a", 4)));
    assert_eq!(backlog.changes(), 2);
    assert_eq!(backlog.collapsed(), 2);
    assert_eq!(backlog.weight(), 2 * weight);
    assert_eq!(
        budget.available_permits(),
        (1 << 20) - 2 * weight,
        "collapsed changes hold no budget"
    );

    let taken = backlog.take(10, usize::MAX);
    assert_eq!(versions(&taken.changes), [("a", 4), ("b", 2)]);
    assert_eq!(taken.superseded.len(), 2);
    assert!(backlog.is_empty() && backlog.changes() == 0 && backlog.weight() == 0);

    // `a` left with that batch: a new change to it is a new slot, behind `c`.
    backlog.push(routed(&budget, index("c", 5)));
    backlog.push(routed(&budget, index("a", 6)));
    let taken2 = backlog.take(10, usize::MAX);
    assert_eq!(versions(&taken2.changes), [("c", 5), ("a", 6)]);
    assert!(taken2.superseded.is_empty());
    drop((taken, taken2));
    assert_eq!(budget.available_permits(), 1 << 20);
}

#[test]
fn superseded_acknowledgements_complete_their_transactions_with_the_write() {
    let budget = Arc::new(Semaphore::new(1 << 20));
    let mut backlog = Backlog::default();
    let (first_ack, mut first_done) = AckToken::open();
    let mut first = index("a", 1);
    first.ack = first_ack;
    backlog.push(routed(&budget, first));
    backlog.push(routed(&budget, index("a", 2)));
    let taken = backlog.take(10, usize::MAX);
    assert!(
        first_done.try_recv().is_err(),
        "the collapsed change's transaction waits for the write"
    );
    for ack in taken.superseded {
        ack.resolve(TxnStatus::Delivered);
    }
    assert_eq!(first_done.try_recv().unwrap(), TxnStatus::Delivered);
}

#[test]
fn batches_are_cut_by_count_and_weight_in_slot_order() {
    let budget = Arc::new(Semaphore::new(1 << 20));
    let mut backlog = Backlog::default();
    let weight = index("a", 1).weight();
    for (v, id) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        backlog.push(routed(&budget, index(id, v as u64)));
    }
    assert_eq!(
        versions(&backlog.take(2, usize::MAX).changes),
        [("a", 0), ("b", 1)]
    );
    assert_eq!(versions(&backlog.take(9, weight).changes), [("c", 2)]);
    // A slot heavier than the cap goes alone rather than never.
    assert_eq!(versions(&backlog.take(9, 1).changes), [("d", 3)]);
    assert_eq!(versions(&backlog.take(9, usize::MAX).changes), [("e", 4)]);
    assert!(backlog.take(9, usize::MAX).held.is_none());
}

#[test]
fn routed_changes_and_refreshes_keep_what_coalescing_keeps() {
    let budget = Arc::new(Semaphore::new(1 << 20));
    let mut backlog = Backlog::default();
    let src = || Op::Index(Bytes::from_static(b"{}"));
    backlog.push(routed(&budget, change("a", src(), Some("r1"), 1)));
    backlog.push(routed(&budget, change("a", Op::Delete, Some("r1"), 2)));
    backlog.push(routed(&budget, change("a", src(), Some("r2"), 2)));
    backlog.push(routed(&budget, change("b", Op::Delete, None, 3)));
    backlog.push(routed(
        &budget,
        change("b", Op::Refresh(RootKey(vec![])), None, 4),
    ));
    let taken = backlog.take(10, usize::MAX);
    assert_eq!(taken.changes.len(), 5, "chains are kept for the batch");
    let (out, superseded) = coalesce(taken.changes);
    assert_eq!(versions(&out), [("a", 2), ("a", 2), ("b", 3), ("b", 4)]);
    assert_eq!(out[0].routing.as_deref(), Some("r1"));
    assert!(matches!(out[0].op, Op::Delete));
    assert_eq!(superseded.len() + taken.superseded.len(), 1);
}

/// What a stream leaves to write, per document: the last change and the deletes kept
/// beside it (by routing), as (op, routing, version).
type Written = HashMap<
    String,
    (
        BTreeSet<(Option<String>, u64)>,
        Option<(u8, Option<String>, u64)>,
    ),
>;

fn written(changes: &[Change]) -> Written {
    let mut out: Written = HashMap::new();
    for c in changes {
        let entry = out.entry(c.key.id.clone()).or_default();
        if let Some((0, r, v)) = entry.1.take() {
            // The previous one was a delete kept beside a later change.
            entry.0.insert((r, v));
        }
        let op = match c.op {
            Op::Delete => 0,
            Op::Index(_) => 1,
            Op::Refresh(_) => 2,
        };
        entry.1 = Some((op, c.routing.as_deref().map(str::to_owned), c.version.0));
    }
    out
}

/// One generated step for a document: 0 write, 1 delete, 2 move to another routing, 3
/// refresh.
fn stream(steps: &[(u8, u8, u8)]) -> Vec<Change> {
    let mut routing: HashMap<u8, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for (v, &(doc, step, r)) in steps.iter().enumerate() {
        let v = v as u64 + 1;
        let id = format!("d{doc}");
        // Documents 0-1 are plain, 2-3 routed, 4-5 refreshed: as rules make them.
        let family = doc / 2;
        let current = routing
            .entry(doc)
            .or_insert_with(|| (family > 0).then(|| format!("r{r}")))
            .clone();
        let src = || Op::Index(Bytes::from_static(b"{}"));
        match (family, step) {
            (_, 1) => out.push(change(&id, Op::Delete, current.as_deref(), v)),
            (1, 2) => {
                // A routing change: delete under the old routing, write under the new.
                let new = Some(format!("r{r}"));
                out.push(change(&id, Op::Delete, current.as_deref(), v));
                out.push(change(&id, src(), new.as_deref(), v));
                routing.insert(doc, new);
            }
            (2, 2) => {
                routing.insert(doc, Some(format!("r{r}")));
                out.push(change(&id, Op::Refresh(RootKey(vec![])), None, v));
            }
            (2, _) => out.push(change(&id, Op::Refresh(RootKey(vec![])), None, v)),
            _ => out.push(change(&id, src(), current.as_deref(), v)),
        }
    }
    out
}

fn copy(changes: &[Change]) -> Vec<Change> {
    changes
        .iter()
        .map(|c| Change {
            key: c.key.clone(),
            op: c.op.clone(),
            routing: c.routing.clone(),
            version: c.version,
            origin: c.origin.clone(),
            ack: AckToken::open().0,
        })
        .collect()
}

/// A change held in the backlog takes no more memory than the budget charges for it
/// ([`Change::footprint`]), at any backlog size (its slot vector and index grow by
/// doubling), and not much less: the budget bounds memory without wasting it.
#[test]
fn a_held_change_takes_about_its_footprint_of_memory() {
    use crate::test_alloc::live_bytes;
    // Changes as the reader makes them: a document of ~600 bytes, a numeric `_id`, the
    // index and binlog file names shared, a share of the transaction's acknowledgement.
    let index: Arc<str> = "orders".into();
    let file: Arc<str> = "binlog.000001".into();
    let (ack, _status) = AckToken::open();
    let doc = vec![b'x'; 600];
    let budget = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    let mut footprint = 0;
    for n in [1_000u64, 3_000, 10_000, 33_000] {
        let before = live_bytes();
        let mut backlog = Backlog::default();
        for i in 0..n {
            let change = Change {
                key: DocKey {
                    index: Arc::clone(&index),
                    id: (1_000_000 + i).to_string(),
                },
                op: Op::Index(Bytes::copy_from_slice(&doc)),
                routing: None,
                version: Version(i),
                origin: Origin {
                    file: Arc::clone(&file),
                    pos: i,
                },
                ack: ack.clone(),
            };
            footprint = change.footprint();
            backlog.push(routed(&budget, change));
        }
        let per_change = (live_bytes() - before) / n as isize;
        assert!(
            per_change as usize <= footprint && per_change as usize >= footprint * 3 / 4,
            "{n} held changes: {per_change} bytes each, footprint {footprint}"
        );
        drop(backlog);
    }
}

proptest! {
    /// Gathering a stream in the backlog and coalescing the batches cut from it writes
    /// what coalescing the whole stream as one batch writes, and accounts for every change.
    #[test]
    fn backlog_then_batches_write_what_one_batch_would(
        steps in prop::collection::vec((0u8..6, 0u8..4, 0u8..3), 1..120),
        max_docs in 1usize..12,
    ) {
        let changes = stream(&steps);
        let n = changes.len();
        let (whole, _) = coalesce(copy(&changes));
        let budget = Arc::new(Semaphore::new(1 << 24));
        let mut backlog = Backlog::default();
        for c in changes {
            backlog.push(routed(&budget, c));
        }
        let mut out = Vec::new();
        let mut accounted = 0;
        while !backlog.is_empty() {
            let taken = backlog.take(max_docs, usize::MAX);
            let (survivors, superseded) = coalesce(taken.changes);
            accounted += survivors.len() + superseded.len() + taken.superseded.len();
            out.extend(survivors);
        }
        prop_assert_eq!(accounted, n);
        prop_assert_eq!(written(&out), written(&whole));
        prop_assert_eq!(budget.available_permits(), 1 << 24);
    }
}
