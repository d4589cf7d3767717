//! The fault plan: a stack of seeded [`FaultStore`]s under every node, one per kind of fault,
//! so the report can say how many faults of each kind were injected. The same seed gives
//! every node the same plan (which of its requests get which fault).

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use serde::Serialize;

use cairn::store::fault::{Counts, Fault, FaultStore, Op, Rule};

/// The kinds of fault, in the order the layers are stacked (outermost first).
pub const KINDS: [&str; 5] = [
    "latency",
    "error before the store",
    "409/412/500/503 answer",
    "committed, answer lost (500 or reset)",
    "committed, then timeout",
];

/// Injected faults by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Requests the node made (the outermost layer's count).
    pub requests: u64,
    /// Faults injected, by kind, in [`KINDS`] order.
    pub by_kind: [u64; 5],
}

impl FaultCounts {
    /// Adds another node's counts.
    pub fn add(&mut self, o: &FaultCounts) {
        self.requests += o.requests;
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind) {
            *a += b;
        }
    }

    /// All faults.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().sum()
    }

    /// Writes that landed but whose answer was lost: the outcomes cairn had to resolve by
    /// reading back.
    pub fn lost_answers(&self) -> u64 {
        self.by_kind[3] + self.by_kind[4]
    }
}

/// One node's stack of fault layers.
#[derive(Debug, Clone)]
pub struct Layers {
    layers: Vec<Arc<FaultStore>>,
    top: Arc<dyn ObjectStore>,
}

impl Layers {
    /// Wraps `inner` in the fault layers; with `faults` false the layers only count.
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64, faults: bool) -> Self {
        let mut layers = Vec::new();
        let mut below = inner;
        for (i, kind) in KINDS.iter().enumerate().rev() {
            let fs = Arc::new(FaultStore::new(below, seed.wrapping_add(i as u64 * 7919)));
            if faults {
                for r in rules(kind) {
                    fs.add(r);
                }
            }
            below = fs.clone();
            layers.push(fs);
        }
        layers.reverse();
        Self { layers, top: below }
    }

    /// The store to hand to the node.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.top)
    }

    /// Kills the node's link: from now on every request fails before reaching the store
    /// (requests already sent are unaffected).
    pub fn sever(&self) {
        let outer = &self.layers[0];
        outer.clear();
        for op in [Op::Put, Op::Get, Op::List, Op::Delete] {
            outer.add(Rule::always(op, "", Fault::FailBeforeCommit));
        }
    }

    /// Removes every fault (for the final, fault-free reads).
    pub fn heal(&self) {
        for l in &self.layers {
            l.clear();
        }
    }

    /// Faults injected so far, by kind.
    pub fn counts(&self) -> FaultCounts {
        let c: Vec<Counts> = self.layers.iter().map(|l| l.counts()).collect();
        let mut by_kind = [0; 5];
        for (k, n) in by_kind.iter_mut().zip(&c) {
            *k = n.faults;
        }
        FaultCounts {
            requests: c[0].requests(),
            by_kind,
        }
    }
}

/// The rules of one layer. Probabilities are per request; they are chosen so that a run
/// sees every kind many times while most operations still succeed.
fn rules(kind: &str) -> Vec<Rule> {
    let all = [Op::Put, Op::Get, Op::List];
    let p = |op, fault, prob| Rule::always(op, "", fault).with_probability(prob);
    match kind {
        "latency" => all
            .iter()
            .flat_map(|&op| {
                [
                    p(op, Fault::Delay(Duration::from_millis(150)), 0.01),
                    p(op, Fault::Delay(Duration::from_millis(30)), 0.05),
                    p(op, Fault::Delay(Duration::from_millis(3)), 0.3),
                ]
            })
            .collect(),
        "error before the store" => all
            .iter()
            .map(|&op| p(op, Fault::FailBeforeCommit, 0.02))
            .collect(),
        "409/412/500/503 answer" => vec![
            p(Op::Put, Fault::Status(409), 0.005),
            p(Op::Put, Fault::Status(412), 0.005),
            p(Op::Put, Fault::Status(500), 0.01),
            p(Op::Put, Fault::Status(503), 0.01),
            p(Op::Get, Fault::Status(503), 0.01),
            p(Op::List, Fault::Status(503), 0.01),
        ],
        "committed, answer lost (500 or reset)" => vec![
            p(Op::Put, Fault::CommitThenFail, 0.01),
            p(Op::Put, Fault::CommitThenStatus(500), 0.01),
            p(Op::Put, Fault::CommitThenStatus(412), 0.005),
        ],
        "committed, then timeout" => vec![p(Op::Put, Fault::CommitThenHang, 0.003)],
        _ => Vec::new(),
    }
}
