//! A lane's backlog: changes taken off its queue and not yet in a batch, one slot per
//! document in first-seen order, where a later change to a document collapses into its
//! slot.
//!
//! While every request slot of a lane is busy the lane keeps moving its queue into here,
//! so when the sink is the bottleneck (a replay after downtime, the stream after a copy)
//! changes to one document across many transactions become one write. The superseded
//! changes' acknowledgements stay with the slot and travel with the batch that writes it,
//! so their transactions complete, and the checkpoint moves, only once that write is
//! acknowledged.
//!
//! Plain changes (no routing, not a refresh) collapse at once, giving back their share of
//! the byte budget. Routed changes and refreshes are kept in the slot's chain, in stream
//! order, for [`coalesce`] to judge when the batch is cut; a long chain is collapsed by the
//! same function on the way, so the result is what coalescing the whole stream would give.

use std::collections::VecDeque;

use hashbrown::HashTable;
use tokio::sync::OwnedSemaphorePermit;

use crate::checkpoint::AckToken;
use crate::ordering::{Change, DocKey, Op, Routed, coalesce};

/// A chain longer than this is collapsed when a change joins it.
const CHAIN_COLLAPSE: usize = 8;

/// A slot's changes in stream order: one, without a heap allocation of its own (the usual
/// case, and the only one for plain rules), or several.
enum Chain {
    One(Change),
    /// Two or more.
    Many(Vec<Change>),
}

impl Chain {
    fn len(&self) -> usize {
        match self {
            Chain::One(_) => 1,
            Chain::Many(v) => v.len(),
        }
    }

    fn first(&self) -> Option<&Change> {
        match self {
            Chain::One(c) => Some(c),
            Chain::Many(v) => v.first(),
        }
    }

    fn into_vec(self) -> Vec<Change> {
        match self {
            Chain::One(c) => vec![c],
            Chain::Many(v) => v,
        }
    }

    fn extend_into(self, out: &mut Vec<Change>) {
        match self {
            Chain::One(c) => out.push(c),
            Chain::Many(v) => out.extend(v),
        }
    }
}

/// One document's pending changes.
struct Slot {
    chain: Chain,
    /// Budget bytes held for the chain.
    held: OwnedSemaphorePermit,
    /// Acknowledgements of changes collapsed away.
    superseded: Vec<AckToken>,
    /// Sum of the chain's weights.
    weight: usize,
    /// [`crate::ordering::key_hash`] of the document.
    hash: u64,
    /// Chain length after the last collapse (collapse again only once it doubled).
    collapsed_at: usize,
}

impl Slot {
    fn is(&self, key: &DocKey) -> bool {
        self.chain.first().is_some_and(|c| &c.key == key)
    }

    /// Adds `routed`, a later change to the same document.
    fn join(&mut self, routed: Routed) {
        let Routed { change, held, .. } = routed;
        if let Chain::One(only) = &mut self.chain
            && is_plain(only)
            && is_plain(&change)
        {
            // The later plain change stands for the earlier one whatever either is.
            self.weight = change.weight();
            let old = std::mem::replace(only, change);
            self.superseded.push(old.ack);
            // Gives the earlier change's bytes back to the budget.
            drop(std::mem::replace(&mut self.held, held));
            return;
        }
        self.weight += change.weight();
        self.held.merge(held);
        let mut chain = std::mem::replace(&mut self.chain, Chain::Many(Vec::new())).into_vec();
        chain.push(change);
        if chain.len() > CHAIN_COLLAPSE.max(2 * self.collapsed_at) {
            let (kept, superseded) = coalesce(chain);
            self.superseded.extend(superseded);
            self.weight = kept.iter().map(Change::weight).sum();
            self.collapsed_at = kept.len();
            chain = kept;
        }
        self.chain = match chain.len() {
            1 => chain
                .into_iter()
                .next()
                .map_or(Chain::Many(Vec::new()), Chain::One),
            _ => Chain::Many(chain),
        };
    }
}

fn is_plain(change: &Change) -> bool {
    change.routing.is_none() && !matches!(change.op, Op::Refresh(_))
}

/// What [`Backlog::take`] cut: changes in slot order (a slot's chain in stream order),
/// the acknowledgements they superseded, and their budget bytes.
pub(super) struct Taken {
    /// The changes.
    pub changes: Vec<Change>,
    /// Acknowledgements of changes collapsed in the backlog.
    pub superseded: Vec<AckToken>,
    /// Budget bytes held for `changes`.
    pub held: Option<OwnedSemaphorePermit>,
}

/// Pending changes of one lane, collapsed per document.
#[derive(Default)]
pub(super) struct Backlog {
    slots: VecDeque<Slot>,
    /// Sequence number of `slots[0]`; a slot's number never changes.
    first_seq: u64,
    /// Sequence numbers of the slots, found by document.
    by_key: HashTable<u64>,
    /// Changes in all chains.
    changes: usize,
    /// Sum of all slots' weights.
    weight: usize,
    /// Changes collapsed since the backlog was made (for diagnostics).
    collapsed: u64,
}

impl Backlog {
    /// Adds a change: into its document's slot when one is pending, else as a new last
    /// slot.
    pub fn push(&mut self, routed: Routed) {
        let hash = routed.hash;
        let first = self.first_seq;
        let slots = &self.slots;
        let found = self.by_key.find(hash, |&seq| {
            slots[(seq - first) as usize].is(&routed.change.key)
        });
        if let Some(&seq) = found {
            let slot = &mut self.slots[(seq - first) as usize];
            let (len, weight) = (slot.chain.len(), slot.weight);
            slot.join(routed);
            self.changes = self.changes + slot.chain.len() - len;
            self.weight = self.weight + slot.weight - weight;
            self.collapsed += (len + 1 - slot.chain.len()) as u64;
            return;
        }
        let seq = first + self.slots.len() as u64;
        let Routed { change, held, .. } = routed;
        let weight = change.weight();
        self.slots.push_back(Slot {
            chain: Chain::One(change),
            held,
            superseded: Vec::new(),
            weight,
            hash,
            collapsed_at: 0,
        });
        let slots = &self.slots;
        self.by_key
            .insert_unique(hash, seq, |&s| slots[(s - first) as usize].hash);
        self.changes += 1;
        self.weight += weight;
    }

    /// Cuts the oldest slots into a batch of at most `max_docs` changes and `max_bytes` of
    /// weight (a single heavier slot goes alone).
    pub fn take(&mut self, max_docs: usize, max_bytes: usize) -> Taken {
        let mut taken = Taken {
            changes: Vec::new(),
            superseded: Vec::new(),
            held: None,
        };
        let mut bytes = 0;
        while let Some(front) = self.slots.front() {
            let fits = taken.changes.len() + front.chain.len() <= max_docs
                && bytes + front.weight <= max_bytes;
            if !taken.changes.is_empty() && !fits {
                break;
            }
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            let seq = self.first_seq;
            self.first_seq += 1;
            if let Ok(entry) = self.by_key.find_entry(slot.hash, |&s| s == seq) {
                entry.remove();
            }
            bytes += slot.weight;
            self.weight -= slot.weight;
            self.changes -= slot.chain.len();
            slot.chain.extend_into(&mut taken.changes);
            taken.superseded.extend(slot.superseded);
            match &mut taken.held {
                Some(held) => held.merge(slot.held),
                None => taken.held = Some(slot.held),
            }
        }
        taken
    }

    /// Changes pending.
    pub fn changes(&self) -> usize {
        self.changes
    }

    /// Weight of the changes pending.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Changes collapsed into a later one since this backlog was made.
    pub fn collapsed(&self) -> u64 {
        self.collapsed
    }
}

#[cfg(test)]
mod tests;
