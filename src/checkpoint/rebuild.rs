//! Rebuilds of an index behind its alias (SPEC §10), as the checkpoint records them.
//!
//! Each step of a rebuild rides on a ticket of its own, so it is committed in stream order
//! with the changes around it: once the start is committed, every change read after it was
//! written to both indices, and a restart resumes the step the checkpoint names.

use serde::{Deserialize, Serialize};

use super::copy::TableCopy;
use crate::position::Version;

/// Where a rebuild stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The tables are copied into the new index; changes go to both.
    Copying,
    /// The copies ended; everything routed before must be acknowledged in both.
    CatchingUp,
    /// Readers are being moved to the new index (one `_aliases` request).
    Switching,
    /// Readers see the new index; the old one is being deleted.
    DeletingOld,
}

impl Phase {
    /// The phase's name, as in the checkpoint and `status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Copying => "copying",
            Self::CatchingUp => "catching_up",
            Self::Switching => "switching",
            Self::DeletingOld => "deleting_old",
        }
    }

    /// The value of the `binlog2es_reindex_phase` gauge (0 is "no rebuild").
    pub fn gauge(self) -> u8 {
        match self {
            Self::Copying => 1,
            Self::CatchingUp => 2,
            Self::Switching => 3,
            Self::DeletingOld => 4,
        }
    }

    /// Whether changes to the index are also written to the new one in this phase: until
    /// readers see the new index, which then receives them through the alias.
    pub fn mirrors(self) -> bool {
        self != Self::DeletingOld
    }
}

/// One rebuild in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rebuild {
    /// The name readers use (the rule's index, an alias once switched).
    pub index: String,
    /// The new physical index.
    pub target: String,
    /// The physical index readers saw when the rebuild began (`index` itself when it was a
    /// concrete index).
    pub old: String,
    /// The current step.
    pub phase: Phase,
    /// The version current when changes began to go to both indices.
    pub since: Version,
    /// The tables were listed again after the start and every copy handed out (see
    /// [`RebuildMark::Listed`]).
    #[serde(default)]
    pub listed: bool,
}

/// A step of a rebuild, carried by a ticket and applied when it commits.
#[derive(Debug, Clone, PartialEq)]
pub enum RebuildMark {
    /// The rebuild begins (phase [`Phase::Copying`]), and with it a copy of each of these
    /// tables into the new index: both in one step, so no copy can be missed on a restart.
    Start {
        /// The rebuild (its `since`, the version at this point).
        rebuild: Rebuild,
        /// `(db, table)` of every table whose rule writes the index.
        tables: Vec<(String, String)>,
    },
    /// The tables were listed again after the start: copies of those not yet copied
    /// begin (a table created just before the start).
    Listed {
        /// The rebuilt index.
        index: String,
        /// `(db, table)` of the tables to copy besides the start's.
        tables: Vec<(String, String)>,
    },
    /// The rebuild of `index` reached `phase`.
    Phase {
        /// The rebuilt index.
        index: String,
        /// Its new phase.
        phase: Phase,
    },
    /// The rebuild of `index` is over.
    End {
        /// The rebuilt index.
        index: String,
    },
}

/// Applies `mark` to the rebuilds in progress and, for a start, the copies.
pub fn apply(rebuilds: &mut Vec<Rebuild>, copies: &mut Vec<TableCopy>, mark: RebuildMark) {
    match mark {
        RebuildMark::Start { rebuild, tables } => {
            copies.retain(|c| c.into.as_ref() != Some(&rebuild.target));
            add_copies(copies, &rebuild, tables);
            rebuilds.retain(|r| r.index != rebuild.index);
            rebuilds.push(rebuild);
        }
        RebuildMark::Listed { index, tables } => {
            if let Some(r) = rebuilds.iter_mut().find(|r| r.index == index) {
                r.listed = true;
                add_copies(copies, r, tables);
            }
        }
        RebuildMark::Phase { index, phase } => {
            if let Some(r) = rebuilds.iter_mut().find(|r| r.index == index) {
                r.phase = phase;
            }
        }
        RebuildMark::End { index } => {
            // An abandoned rebuild's copies end with it.
            if let Some(r) = rebuilds.iter().find(|r| r.index == index) {
                copies.retain(|c| c.into.as_ref() != Some(&r.target));
            }
            rebuilds.retain(|r| r.index != index);
        }
    }
}

/// Adds a copy into `rebuild`'s new index of each of `tables` not already being copied.
fn add_copies(copies: &mut Vec<TableCopy>, rebuild: &Rebuild, tables: Vec<(String, String)>) {
    let into = Some(rebuild.target.clone());
    for (db, table) in tables {
        if copies
            .iter()
            .any(|c| c.db == db && c.table == table && c.into == into)
        {
            continue;
        }
        copies.push(TableCopy {
            db,
            table,
            after: None,
            rows: 0,
            since: rebuild.since,
            into: into.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebuild() -> Rebuild {
        Rebuild {
            index: "orders".into(),
            target: "orders-2".into(),
            old: "orders-1".into(),
            phase: Phase::Copying,
            since: Version(7),
            listed: false,
        }
    }

    #[test]
    fn marks_walk_a_rebuild_through_its_phases() {
        let (mut rebuilds, mut copies) = (Vec::new(), Vec::new());
        let start = RebuildMark::Start {
            rebuild: rebuild(),
            tables: vec![("shop".into(), "orders".into())],
        };
        apply(&mut rebuilds, &mut copies, start);
        assert_eq!(
            (copies.len(), copies[0].into.as_deref(), copies[0].since),
            (1, Some("orders-2"), Version(7))
        );
        // Listing again adds only the tables not yet copied.
        let listed = RebuildMark::Listed {
            index: "orders".into(),
            tables: vec![
                ("shop".into(), "orders".into()),
                ("shop".into(), "new".into()),
            ],
        };
        apply(&mut rebuilds, &mut copies, listed);
        assert!(rebuilds[0].listed);
        assert_eq!(copies.len(), 2);
        for phase in [Phase::CatchingUp, Phase::Switching, Phase::DeletingOld] {
            apply(
                &mut rebuilds,
                &mut copies,
                RebuildMark::Phase {
                    index: "orders".into(),
                    phase,
                },
            );
            assert_eq!(rebuilds[0].phase, phase);
        }
        // Another index's step does not move this one.
        apply(
            &mut rebuilds,
            &mut copies,
            RebuildMark::End {
                index: "other".into(),
            },
        );
        assert_eq!(rebuilds.len(), 1);
        apply(
            &mut rebuilds,
            &mut copies,
            RebuildMark::End {
                index: "orders".into(),
            },
        );
        // An end (also of an abandoned rebuild) takes its unfinished copies with it.
        assert!(rebuilds.is_empty() && copies.is_empty());
    }

    #[test]
    fn rebuilds_round_trip_through_json() {
        let text = serde_json::to_string(&rebuild()).unwrap();
        assert_eq!(
            text,
            r#"{"index":"orders","target":"orders-2","old":"orders-1","phase":"copying","since":7,"listed":false}"#
        );
        assert_eq!(serde_json::from_str::<Rebuild>(&text).unwrap(), rebuild());
        assert!(Phase::Switching.mirrors() && !Phase::DeletingOld.mirrors());
    }
}
