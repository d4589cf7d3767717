//! The checker: judges every invariant on a recorded [`History`](super::history::History)
//! alone. It trusts nothing the code under test says about itself beyond what the harness
//! recorded around each call, so the same functions run on hand-made histories in tests.
//!
//! How intervals are judged:
//!
//! - A lock holder's interval runs from its acquire returning to the first of: the holder
//!   starting its release, the loss it observed (ended at its local deadline if that came
//!   first: the holder must not use a lease past it), its node being killed, the run's end.
//! - A fenced write is stale when a higher token had already been handed out when it was made.
//! - For the process lock (real `cairn` processes), a holder's interval runs from the first
//!   line its command wrote to the work file to its last (a command killed mid-work has no
//!   `end`), by the times the command itself wrote on them; tokens must increase in the
//!   order the intervals start.
//! - A missing turn number is excused only by a claim of that window that ended in an error
//!   or was cut short by a kill (the claim may have landed without anyone running it).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::history::{Event, What};

/// Whether an invariant held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Checked, and it held.
    Held,
    /// Checked, and it was violated.
    Violated,
    /// Nothing in the history exercised it.
    NotExercised,
}

/// One violation, with the events that show it.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// What went wrong.
    pub what: String,
    /// The history excerpt that shows it.
    pub excerpt: Vec<Event>,
}

/// The verdict on one invariant.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    /// Its name.
    pub name: &'static str,
    /// Held, violated, or not exercised.
    pub verdict: Verdict,
    /// How many things were checked (intervals, turn numbers, streams, …).
    pub checked: usize,
    /// A note on what was excused or how it was judged.
    pub note: String,
    /// The violations (at most [`MAX_SHOWN`] kept).
    pub violations: Vec<Violation>,
    /// How many violations there were in all.
    pub violation_count: usize,
}

/// Violations kept per invariant.
pub const MAX_SHOWN: usize = 5;

struct Acc {
    name: &'static str,
    checked: usize,
    note: String,
    violations: Vec<Violation>,
    count: usize,
}

impl Acc {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            checked: 0,
            note: String::new(),
            violations: Vec::new(),
            count: 0,
        }
    }

    fn violate(&mut self, what: String, excerpt: Vec<&Event>) {
        self.count += 1;
        if self.violations.len() < MAX_SHOWN {
            self.violations.push(Violation {
                what,
                excerpt: excerpt.into_iter().cloned().collect(),
            });
        }
    }

    fn done(self) -> Invariant {
        let verdict = if self.count > 0 {
            Verdict::Violated
        } else if self.checked == 0 {
            Verdict::NotExercised
        } else {
            Verdict::Held
        };
        Invariant {
            name: self.name,
            verdict,
            checked: self.checked,
            note: self.note,
            violations: self.violations,
            violation_count: self.count,
        }
    }
}

/// Judges every invariant on `events` (in recorded order).
pub fn check(events: &[Event]) -> Vec<Invariant> {
    let (holders, tokens, fenced) = locks(events);
    let (one_run, no_skip) = turns(events);
    let (proc_holders, proc_tokens) = proc_locks(events);
    vec![
        holders,
        tokens,
        fenced,
        proc_holders,
        proc_tokens,
        one_run,
        no_skip,
        streams(events),
        follower(events),
        records(events),
        log(events),
        offline(events),
        killed_node_seen(events),
        misconfigured(events),
    ]
}

/// When the lifecycle actor deleted every object of a `kind` (`lock`, `turn`), for each
/// deletion that deleted something and failed nowhere: from when it began to when it was
/// done (a write that landed in between may be among the deleted).
#[derive(Debug, Clone, Copy)]
struct Deletion {
    began: f64,
    done: f64,
}

impl Deletion {
    /// Whether this deletion may have removed what was written at `from` and come before
    /// what happened at `to`.
    fn between(&self, from: f64, to: f64) -> bool {
        self.done >= from && self.began <= to
    }
}

/// The lifecycle actor's deletions of one kind, and what they excuse.
struct Deletions {
    list: Vec<Deletion>,
    /// The fleet ran the version chain: a node that knew a chain's head before a deletion
    /// keeps writing on that knowledge, a line of its own beside the chain created again,
    /// until it next lists: within the prefix's `gc_min_age` (`super::CHAIN_GC_MIN_AGE` in the
    /// torture). Its holds and turns then overlap the new line's, with numbers drawn from time
    /// (`Manifests::next_start`) keeping them apart.
    chain: bool,
}

/// How long after a deletion on the version chain a stale line may still be written: the
/// torture's `gc_min_age` and a request's length.
fn chain_stale_ms() -> f64 {
    (super::CHAIN_GC_MIN_AGE + std::time::Duration::from_secs(2)).as_secs_f64() * 1000.0
}

impl Deletions {
    /// Whether a deletion may account for what happened at `to` to what was written at
    /// `from`: one between them, or on the version chain one done at most `chain_stale_ms`
    /// before `to`.
    fn cover(&self, from: f64, to: f64) -> bool {
        self.list.iter().any(|v| {
            v.between(from, to) || (self.chain && v.began <= to && to - v.done <= chain_stale_ms())
        })
    }

    /// Whether a number drawn at `later_ms` may lie below one drawn at `earlier_ms` for a
    /// reason the guarantee allows: a deletion took away what the later drawer would have
    /// counted from, and the two were drawn within `DRAWN_WITHIN_MS` of each other. Never an
    /// excuse for an equal number.
    fn drawn_within_clocks(&self, earlier_ms: f64, later_ms: f64) -> bool {
        later_ms >= earlier_ms
            && later_ms - earlier_ms < DRAWN_WITHIN_MS
            && self.cover(earlier_ms, later_ms)
    }
}

fn deletions(events: &[Event], kind: &str) -> Deletions {
    let list = events
        .iter()
        .filter_map(|e| match &e.what {
            What::Vanished {
                what,
                started_ms,
                objects,
                error: None,
                ..
            } if what == kind && *objects > 0 => Some(Deletion {
                began: *started_ms,
                done: e.at_ms,
            }),
            _ => None,
        })
        .collect();
    let chain = events
        .iter()
        .any(|e| matches!(&e.what, What::Started { strategy, .. } if strategy == "version-chain"));
    Deletions { list, chain }
}

/// How far apart two numbers drawn from time (`Manifests::next_start`) may be misordered:
/// drawn 5 s behind the floor of now, by clocks each within the torture's 2 s bound of the
/// store's, with the store's 1 s resolution.
const DRAWN_WITHIN_MS: f64 = 10_000.0;

/// The number of violations in all.
pub fn violations(invariants: &[Invariant]) -> usize {
    invariants.iter().map(|i| i.violation_count).sum()
}

type Actor = (String, u32);

fn actor(e: &Event) -> Actor {
    (e.node.clone(), e.inc)
}

fn end_ms(events: &[Event]) -> f64 {
    events.last().map_or(0.0, |e| e.at_ms)
}

struct Interval<'a> {
    token: u64,
    start: f64,
    end: f64,
    acquired: &'a Event,
    ended: Option<&'a Event>,
}

fn locks(events: &[Event]) -> (Invariant, Invariant, Invariant) {
    let mut holders = Acc::new("lock: at most one holder at a time");
    let mut tokens = Acc::new("lock: fencing tokens strictly increase");
    let mut fenced = Acc::new("protected object: never accepts a stale token");
    let mut open: HashMap<Actor, &Event> = HashMap::new();
    let mut done: Vec<Interval> = Vec::new();
    let mut max_token: Option<(u64, &Event)> = None;
    let mut accepted_max: Option<(u64, &Event)> = None;
    let mut rejected = 0usize;
    // When the lifecycle actor deleted the lock's objects: a node may then acquire afresh
    // beside a holder that has not renewed yet (it learns at its next renewal). Such an
    // overlap is the deletion's, not the protocol's, and fencing must cover it: the new
    // token is higher, so the protected object refuses the old holder.
    let vanished = deletions(events, "lock");
    let mut excused = 0usize;
    let mut excused_writes = 0usize;
    // Tokens after a deletion that came out below an earlier holder's, drawn within the clocks'
    // disagreement of each other (counted once per check that met them).
    let mut reversed = 0usize;
    let mut acquired_at: HashMap<u64, f64> = HashMap::new();
    fn close<'a>(
        open: &mut HashMap<Actor, &'a Event>,
        a: &Actor,
        end: f64,
        by: &'a Event,
    ) -> Option<Interval<'a>> {
        open.remove(a).map(|acq| {
            let token = match acq.what {
                What::Acquired { token, .. } => token,
                _ => 0,
            };
            Interval {
                token,
                start: acq.at_ms,
                end: end.max(acq.at_ms),
                acquired: acq,
                ended: Some(by),
            }
        })
    }
    for e in events {
        let a = actor(e);
        match &e.what {
            What::Acquired { token, .. } => {
                tokens.checked += 1;
                // A token handed out twice is never excused, whichever was the highest.
                if let Some(at) = acquired_at.insert(*token, e.at_ms) {
                    let first = events.iter().find(|x| {
                        x.at_ms == at
                            && matches!(x.what, What::Acquired { token: t, .. } if t == *token)
                    });
                    tokens.violate(
                        format!(
                            "{}#{} acquired with token {token}, handed out before",
                            e.node, e.inc
                        ),
                        first.into_iter().chain([e]).collect(),
                    );
                } else if let Some((m, prev)) = max_token {
                    if *token < m && vanished.drawn_within_clocks(prev.at_ms, e.at_ms) {
                        reversed += 1;
                    } else if *token <= m {
                        tokens.violate(
                            format!(
                                "{}#{} acquired with token {token}, not above token {m} handed out before",
                                e.node, e.inc
                            ),
                            vec![prev, e],
                        );
                    }
                }
                if max_token.is_none_or(|(m, _)| *token > m) {
                    max_token = Some((*token, e));
                }
                if let Some(i) = close(&mut open, &a, e.at_ms, e) {
                    done.push(i);
                }
                open.insert(a, e);
            }
            What::Releasing { .. } | What::Killed => {
                if let Some(i) = close(&mut open, &a, e.at_ms, e) {
                    done.push(i);
                }
            }
            What::LockLost { ended_ms, .. } => {
                if let Some(i) = close(&mut open, &a, *ended_ms, e) {
                    done.push(i);
                }
            }
            What::Guarded {
                token, accepted, ..
            } => {
                fenced.checked += 1;
                if !accepted {
                    rejected += 1;
                    continue;
                }
                if let Some((m, prev)) = accepted_max {
                    if *token < m {
                        fenced.violate(
                            format!("the protected object accepted token {token} after token {m}"),
                            vec![prev, e],
                        );
                    }
                }
                if let Some((m, acq)) = max_token {
                    // After a deletion of the lock's objects, its old holder may still write
                    // until its next renewal, and the object accepts it until the new holder
                    // presents its higher token: fencing then refuses it (the check above).
                    let by_deletion = acquired_at.get(token).is_some_and(|at| {
                        vanished.cover(*at, acq.at_ms)
                            || vanished.drawn_within_clocks(acq.at_ms, *at)
                    });
                    if *token < m && by_deletion {
                        excused_writes += 1;
                    } else if *token < m {
                        fenced.violate(
                            format!(
                                "{}#{} wrote with token {token} after token {m} was handed out, and the write was accepted",
                                e.node, e.inc
                            ),
                            vec![acq, e],
                        );
                    }
                }
                if accepted_max.is_none_or(|(m, _)| *token >= m) {
                    accepted_max = Some((*token, e));
                }
            }
            _ => {}
        }
    }
    let end = end_ms(events);
    for (_, acq) in open.drain() {
        let token = match acq.what {
            What::Acquired { token, .. } => token,
            _ => 0,
        };
        done.push(Interval {
            token,
            start: acq.at_ms,
            end,
            acquired: acq,
            ended: None,
        });
    }
    done.sort_by(|a, b| a.start.total_cmp(&b.start));
    holders.checked = done.len();
    for (i, a) in done.iter().enumerate() {
        for b in &done[i + 1..] {
            if b.start >= a.end {
                break;
            }
            if actor(a.acquired) == actor(b.acquired) {
                continue;
            }
            if b.token > a.token && vanished.cover(a.start, b.start) {
                excused += 1;
                continue;
            }
            if b.token < a.token && vanished.drawn_within_clocks(a.start, b.start) {
                reversed += 1;
                continue;
            }
            let mut ex = vec![a.acquired, b.acquired];
            ex.extend(a.ended);
            ex.sort_by_key(|e| e.seq);
            holders.violate(
                format!(
                    "{}#{} (token {}) held from {:.0} to {:.0} ms while {}#{} (token {}) acquired at {:.0} ms",
                    a.acquired.node, a.acquired.inc, a.token, a.start, a.end,
                    b.acquired.node, b.acquired.inc, b.token, b.start
                ),
                ex,
            );
        }
    }
    fenced.note = format!("{rejected} stale writes refused by the object");
    if excused_writes > 0 {
        fenced.note += &format!(
            "; {excused_writes} writes of an old holder accepted after its lock was deleted, \
             before the new holder presented its token"
        );
    }
    if excused > 0 {
        holders.note = format!(
            "{excused} overlaps after the lock's objects were deleted under a live holder, \
             each with a higher token (fenced)"
        );
    }
    if reversed > 0 {
        let note = format!(
            "{reversed} tokens below an earlier holder's after the lock's newest versions were \
             deleted, drawn less than {DRAWN_WITHIN_MS} ms apart (fenced: the object takes the \
             higher)"
        );
        for acc in [&mut holders, &mut tokens] {
            if !acc.note.is_empty() {
                acc.note += "; ";
            }
            acc.note += &note;
        }
    }
    (holders.done(), tokens.done(), fenced.done())
}

/// The process lock: each fencing token's interval runs from the first to the last line its
/// command wrote (by the times written on the lines); no two overlap, and tokens increase in
/// the order the intervals start. A token whose lines come from two process runs is reused.
fn proc_locks(events: &[Event]) -> (Invariant, Invariant) {
    let mut holders =
        Acc::new("process lock: at most one cairn process's command at work at a time");
    let mut tokens = Acc::new("process lock: fencing tokens increase in the order work starts");
    struct Span<'a> {
        token: u64,
        start: f64,
        end: f64,
        first: &'a Event,
        last: &'a Event,
    }
    let mut spans: BTreeMap<u64, Span> = BTreeMap::new();
    for e in events {
        let What::Work {
            token, wrote_ms, ..
        } = &e.what
        else {
            continue;
        };
        match spans.get_mut(token) {
            None => {
                spans.insert(
                    *token,
                    Span {
                        token: *token,
                        start: *wrote_ms,
                        end: *wrote_ms,
                        first: e,
                        last: e,
                    },
                );
            }
            Some(s) => {
                if actor(s.first) != actor(e) {
                    tokens.violate(
                        format!(
                            "token {token} was given to {} and to {}",
                            s.first.who(),
                            e.who()
                        ),
                        vec![s.first, e],
                    );
                }
                if *wrote_ms < s.start {
                    (s.start, s.first) = (*wrote_ms, e);
                }
                if *wrote_ms >= s.end {
                    (s.end, s.last) = (*wrote_ms, e);
                }
            }
        }
    }
    let mut done: Vec<Span> = spans.into_values().collect();
    done.sort_by(|a, b| a.start.total_cmp(&b.start));
    holders.checked = done.len();
    tokens.checked = done.len();
    for (i, a) in done.iter().enumerate() {
        if let Some(b) = done.get(i + 1) {
            if b.token <= a.token {
                tokens.violate(
                    format!(
                        "{} started work with token {} at {:.0} ms, after {} had started with token {} at {:.0} ms",
                        b.first.who(), b.token, b.start, a.first.who(), a.token, a.start
                    ),
                    vec![a.first, b.first],
                );
            }
        }
        for b in &done[i + 1..] {
            if b.start >= a.end {
                break;
            }
            let mut ex = vec![a.first, a.last, b.first];
            ex.sort_by_key(|e| e.seq);
            ex.dedup_by_key(|e| e.seq);
            holders.violate(
                format!(
                    "{} (token {}) worked from {:.0} to {:.0} ms while {} (token {}) started at {:.0} ms",
                    a.first.who(), a.token, a.start, a.end, b.first.who(), b.token, b.start
                ),
                ex,
            );
        }
    }
    (holders.done(), tokens.done())
}

fn turns(events: &[Event]) -> (Invariant, Invariant) {
    let mut one = Acc::new("turn: exactly one run per turn number");
    let mut skip = Acc::new("turn: no turn skipped");
    // turn name → number → runs
    let mut runs: BTreeMap<&str, BTreeMap<u64, Vec<&Event>>> = BTreeMap::new();
    // Claims whose outcome is unknown: (turn, begun, ended) for failed or cut-short claims.
    let mut open: HashMap<Actor, &Event> = HashMap::new();
    let mut unresolved: Vec<(&str, f64, &Event)> = Vec::new();
    for e in events {
        let a = actor(e);
        match &e.what {
            What::ClaimBegun { .. } => {
                open.insert(a, e);
            }
            What::ClaimEnded { turn, outcome, .. } => {
                if let Some(b) = open.remove(&a) {
                    if outcome == "failed" {
                        unresolved.push((turn, b.at_ms, e));
                    }
                }
            }
            What::TurnRun { turn, number, .. } => {
                open.remove(&a);
                runs.entry(turn)
                    .or_default()
                    .entry(*number)
                    .or_default()
                    .push(e);
            }
            What::Killed => {
                if let Some(b) = open.remove(&a) {
                    if let What::ClaimBegun { turn } = &b.what {
                        unresolved.push((turn, b.at_ms, e));
                    }
                }
            }
            _ => {}
        }
    }
    let mut excused = 0;
    let mut renumbered = 0usize;
    let vanished_turns = deletions(events, "turn");
    let previous_of = |e: &Event| match e.what {
        What::TurnRun { previous, .. } => previous,
        _ => None,
    };
    for (turn, numbers) in &runs {
        // turn number → the runs that followed it (by the `previous` stored with their claim)
        let mut followers: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
        for (n, rs) in numbers {
            one.checked += 1;
            if rs.len() > 1 {
                one.violate(
                    format!("turn {turn} number {n} ran {} times", rs.len()),
                    rs.clone(),
                );
            }
            for r in rs {
                if let Some(p) = previous_of(r) {
                    followers.entry(p).or_default().push(r);
                }
            }
        }
        let ran_at = |n: u64| numbers.get(&n).and_then(|r| r.first()).map(|r| r.at_ms);
        let deleted_between = |from: f64, to: f64| vanished_turns.cover(from, to);
        // Numbers are drawn from time (`Manifests::next_start`), so each claim names the turn
        // it followed: two runs after one turn ran in one window. Unless the lifecycle actor
        // deleted the first follower's claim before the second's: the second is the deletion's
        // (it runs early, under a higher number).
        for (p, rs) in followers.iter_mut() {
            rs.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
            one.checked += 1;
            // From the turn followed; one that never ran, from the first follower's claim.
            let from = ran_at(*p).unwrap_or_else(|| match rs[0].what {
                What::TurnRun { begun_ms, .. } => begun_ms,
                _ => rs[0].at_ms,
            });
            for r in rs.iter().skip(1) {
                if deleted_between(from, r.at_ms) {
                    renumbered += 1;
                } else {
                    one.violate(
                        format!("turn {turn}: {} runs followed number {p}", rs.len()),
                        rs.clone(),
                    );
                    break;
                }
            }
        }
        // Each run follows the run numbered just below it; else the turn in between was
        // claimed and never run (a claim that failed or was killed in flight then), or the
        // lifecycle actor deleted the turn (its new incarnation follows nothing).
        let seen: Vec<(u64, &Event)> = numbers
            .iter()
            .filter_map(|(n, rs)| rs.first().map(|r| (*n, *r)))
            .collect();
        for pair in seen.windows(2) {
            let [(p, p_run), (q, q_run)] = [pair[0], pair[1]];
            skip.checked += 1;
            let followed = previous_of(q_run);
            if followed == Some(p) {
                continue;
            }
            // After a deletion: a new incarnation follows nothing, and a node that knew the
            // deleted turn continues from it (the version chain writes on fresh knowledge).
            let from = [followed, previous_of(p_run)]
                .into_iter()
                .flatten()
                .filter_map(ran_at)
                .fold(p_run.at_ms, f64::min);
            if deleted_between(from, q_run.at_ms.max(p_run.at_ms)) {
                renumbered += 1;
                continue;
            }
            let p_begun = match p_run.what {
                What::TurnRun { begun_ms, .. } => begun_ms,
                _ => p_run.at_ms,
            };
            // A claim whose outcome is unknown may have written the number q followed if it
            // was in flight at any moment between p's claim and q's: it began before the latter
            // and ended (failed, or was killed) after the former.
            let unrun = followed.filter(|x| *x > p && *x < q && !numbers.contains_key(x));
            let excuse = unrun.and_then(|_| {
                unresolved.iter().find(|(t, begun, ended)| {
                    t == turn && ended.at_ms >= p_begun && *begun <= q_run.at_ms
                })
            });
            match excuse {
                Some(_) => excused += 1,
                None => skip.violate(
                    format!(
                        "turn {turn} number {q} followed {}, not {p}, the turn run before it, \
                         and no claim in between failed or was cut short",
                        followed.map_or("nothing".to_string(), |x| x.to_string())
                    ),
                    vec![p_run, q_run],
                ),
            }
        }
    }
    skip.note =
        format!("{excused} numbers claimed by a claim that failed or was killed, and so never run");
    if renumbered > 0 {
        skip.note += &format!("; {renumbered} renumberings after the turn was deleted");
    }
    (one.done(), skip.done())
}

fn streams(events: &[Event]) -> Invariant {
    let mut acc = Acc::new("stream: created once; every creator holds the same manifest");
    let mut by: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    let mut failed: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut killed: BTreeSet<&str> = BTreeSet::new();
    let mut finals: Vec<(&Event, &(String, String, u64))> = Vec::new();
    for e in events {
        match &e.what {
            What::StreamCreate { stream, .. } => by.entry(stream).or_default().push(e),
            What::StreamCreateFailed { stream, .. } => {
                failed.insert((stream.as_str(), e.node.as_str()));
            }
            What::Killed => {
                killed.insert(e.node.as_str());
            }
            What::FinalStreams { streams } => finals.extend(streams.iter().map(|s| (e, s))),
            _ => {}
        }
    }
    let key = |e: &Event| match &e.what {
        What::StreamCreate {
            version,
            created_by,
            created_at,
            incarnation,
            ..
        } => Some((
            *version,
            created_by.clone(),
            created_at.clone(),
            *incarnation,
        )),
        _ => None,
    };
    for (stream, outcomes) in &by {
        acc.checked += 1;
        let created: Vec<&Event> = outcomes
            .iter()
            .copied()
            .filter(
                |e| matches!(&e.what, What::StreamCreate { outcome, .. } if outcome == "created"),
            )
            .collect();
        if created.len() > 1 {
            acc.violate(
                format!("stream {stream} was created {} times", created.len()),
                created.clone(),
            );
        }
        for e in outcomes {
            if matches!(&e.what, What::StreamCreate { outcome, .. } if outcome == "conflict") {
                acc.violate(
                    format!(
                        "{}#{} got a conflict creating {stream} with the same metadata",
                        e.node, e.inc
                    ),
                    vec![outcomes[0], e],
                );
            }
        }
        let first = key(outcomes[0]);
        if let Some(other) = outcomes.iter().find(|e| key(e) != first) {
            acc.violate(
                format!("creators of {stream} hold different manifests"),
                vec![outcomes[0], other],
            );
        }
        if created.is_empty() {
            if let Some((_, by_node, _, _)) = &first {
                if !failed.contains(&(stream, by_node.as_str()))
                    && !killed.contains(by_node.as_str())
                {
                    acc.violate(
                        format!("{stream} exists, created by {by_node}, whose create never returned created, failed, or was killed"),
                        vec![outcomes[0]],
                    );
                }
            }
        }
        if let Some((fe, (_, by_node, version))) = finals.iter().find(|(_, s)| s.0 == *stream) {
            if let Some((v, b, _, _)) = &first {
                if b != by_node || v != version {
                    acc.violate(
                        format!("{stream} is stored as version {version} by {by_node}, creators were told version {v} by {b}"),
                        vec![outcomes[0], fe],
                    );
                }
            }
        }
    }
    acc.done()
}

fn follower(events: &[Event]) -> Invariant {
    let mut acc = Acc::new("stream: the querier followed every stream");
    let mut followed: HashMap<&str, &Event> = HashMap::new();
    for e in events {
        match &e.what {
            What::StreamFollowed { stream, .. } => {
                followed.insert(stream, e);
            }
            What::FinalStreams { streams } => {
                for (s, by, _) in streams {
                    acc.checked += 1;
                    match followed.get(s.as_str()) {
                        None => acc.violate(
                            format!("stream {s} exists but the querier never reported it"),
                            vec![e],
                        ),
                        Some(f) => {
                            if let What::StreamFollowed { created_by, .. } = &f.what {
                                if created_by != by {
                                    acc.violate(
                                        format!("the querier saw {s} created by {created_by}, it is stored as by {by}"),
                                        vec![f, e],
                                    );
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    acc.done()
}

fn records(events: &[Event]) -> Invariant {
    let mut acc = Acc::new("record: no stale update applied");
    let mut applied: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    let mut failed: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    // Puts begun and not yet ended, per actor: a kill leaves their outcome unknown.
    let mut open: HashMap<Actor, (&str, u64)> = HashMap::new();
    for e in events {
        match &e.what {
            What::RecordPutBegun { key, version } => {
                open.insert(actor(e), (key.as_str(), *version));
            }
            What::Killed => {
                if let Some((key, version)) = open.remove(&actor(e)) {
                    failed.entry(key).or_default().insert(version);
                }
            }
            What::RecordPut {
                key,
                version,
                outcome,
                stored_version,
                ..
            } => {
                open.remove(&actor(e));
                acc.checked += 1;
                if outcome == "applied" {
                    applied.entry(key).or_default().push(e);
                } else if stored_version.is_some_and(|s| s < *version) {
                    acc.violate(
                        format!(
                            "{key} version {version} refused as stale against stored version {}",
                            stored_version.unwrap_or(0)
                        ),
                        vec![e],
                    );
                }
            }
            What::RecordPutFailed { key, version, .. } => {
                open.remove(&actor(e));
                failed.entry(key).or_default().insert(*version);
            }
            What::FinalRecord { key, version } => {
                let max = applied.get(key.as_str()).and_then(|a| {
                    a.iter()
                        .max_by_key(|e| match e.what {
                            What::RecordPut { version, .. } => version,
                            _ => 0,
                        })
                        .copied()
                });
                let max_v = max.map(|e| match e.what {
                    What::RecordPut { version, .. } => version,
                    _ => 0,
                });
                let ok = match (version, max_v) {
                    (None, None) => true,
                    (None, Some(_)) => false,
                    (Some(v), m) => {
                        Some(*v) == m
                            || (m.is_none_or(|m| *v > m)
                                && failed.get(key.as_str()).is_some_and(|f| f.contains(v)))
                    }
                };
                if !ok {
                    let mut ex = vec![e];
                    ex.extend(max);
                    acc.violate(
                        format!(
                            "{key} is stored at version {version:?}, but the highest update applied was {max_v:?}"
                        ),
                        ex,
                    );
                }
            }
            _ => {}
        }
    }
    for (key, list) in &applied {
        for a in list {
            let (av, a_end) = match a.what {
                What::RecordPut { version, .. } => (version, a.at_ms),
                _ => continue,
            };
            for b in list {
                if let What::RecordPut {
                    version, begun_ms, ..
                } = b.what
                {
                    if begun_ms > a_end && version <= av {
                        acc.violate(
                            format!(
                                "{key} version {version} was applied after version {av} had been"
                            ),
                            vec![a, b],
                        );
                    }
                }
            }
        }
    }
    acc.done()
}

fn log(events: &[Event]) -> Invariant {
    let mut acc = Acc::new("log: gap-free, no duplicates, every acknowledged append in place");
    let mut acked: Vec<&Event> = Vec::new();
    for e in events {
        match &e.what {
            What::LogAppended { .. } => acked.push(e),
            What::FinalLog { entries, error } => {
                if let Some(err) = error {
                    acc.violate(format!("the log could not be read: {err}"), vec![e]);
                    continue;
                }
                let mut ids: HashMap<&str, u64> = HashMap::new();
                // A topic's first entry is numbered from a floor drawn from time
                // (`clock::floor`); from there every entry is the previous + 1.
                let first = entries.first().map_or(1, |(seq, _)| *seq);
                for (i, (seq, id)) in entries.iter().enumerate() {
                    acc.checked += 1;
                    if *seq != first + i as u64 {
                        acc.violate(
                            format!("the log's entry {} has sequence {seq}: a gap", i + 1),
                            vec![e],
                        );
                        break;
                    }
                    if id.is_empty() {
                        continue;
                    }
                    if let Some(prev) = ids.insert(id, *seq) {
                        acc.violate(
                            format!("event {id} is in the log twice, at {prev} and {seq}"),
                            vec![e],
                        );
                    }
                }
                for a in &acked {
                    if let What::LogAppended { id, sequence } = &a.what {
                        let found = entries
                            .get((sequence.wrapping_sub(first)) as usize)
                            .map(|(_, i)| i.as_str());
                        if found != Some(id.as_str()) {
                            acc.violate(
                                format!(
                                    "append of {id} was acknowledged at sequence {sequence}, but the log holds {} there",
                                    found.map_or("nothing".to_string(), |f| format!("{f:?}"))
                                ),
                                vec![a],
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    acc.done()
}

/// An offline verdict is false when a fresh view made it although the node's heartbeats
/// were landing. A view at time `t` may show the store as it was up to its freshness ago
/// (one heartbeat interval, at most half the timeout, whose base is two intervals), so the
/// verdict is judged against the last heartbeat stored (as the node's heartbeater reported
/// it) before `t − timeout / 2`, with the clock skew bound (1 s either way within the fleet)
/// and the write's own duration (up to an interval) in the node's favour. Verdicts of views
/// served stale (the viewer could not reach the store) are not declarations; they are counted.
fn offline(events: &[Event]) -> Invariant {
    let mut acc = Acc::new("membership: no live node declared offline while it heartbeated");
    const SKEW_MS: f64 = 1000.0;
    let mut beats: HashMap<&str, Vec<&Event>> = HashMap::new();
    let mut left: HashMap<&str, f64> = HashMap::new();
    let mut stale_views = 0;
    for e in events {
        match &e.what {
            What::Joined | What::Beat | What::Resumed => {
                beats.entry(&e.node).or_default().push(e);
                if matches!(e.what, What::Joined) {
                    left.remove(e.node.as_str());
                }
            }
            What::Left => {
                left.insert(&e.node, e.at_ms);
            }
            What::Health {
                of,
                health,
                timeout_ms,
                age_ms,
                stale,
            } => {
                acc.checked += 1;
                if health != "offline" || left.contains_key(of.as_str()) {
                    continue;
                }
                if *stale {
                    stale_views += 1;
                    continue;
                }
                let t = *timeout_ms as f64;
                let seen_as_of = e.at_ms - t / 2.0;
                let last = beats
                    .get(of.as_str())
                    .and_then(|b| b.iter().rev().find(|b| b.at_ms <= seen_as_of));
                if let Some(beat) = last {
                    let since = e.at_ms - beat.at_ms;
                    // The beat is recorded when its write returned; the record carries the
                    // time the write was sent, up to an interval (half the timeout) earlier.
                    if since + t / 2.0 + SKEW_MS < 2.0 * t {
                        acc.violate(
                            format!(
                                "{of} was declared offline (heartbeat age {age_ms} ms, timeout {timeout_ms} ms) though a heartbeat of it was stored {since:.0} ms before"
                            ),
                            vec![beat, e],
                        );
                    }
                }
            }
            _ => {}
        }
    }
    acc.note = format!("{stale_views} offline verdicts of views served stale, not counted");
    acc.done()
}

fn killed_node_seen(events: &[Event]) -> Invariant {
    let mut acc =
        Acc::new("view: a killed node goes suspect, then offline, then online after restart");
    // For each kill followed by a restart long enough after it: the view must show the node
    // offline in between (suspect may be skipped between two polls) and online after.
    let end = end_ms(events);
    for (i, k) in events.iter().enumerate() {
        if !matches!(k.what, What::Killed) {
            continue;
        }
        fn health_of<'a>(e: &'a Event, node: &str) -> Option<(&'a str, f64)> {
            match &e.what {
                What::Health {
                    of,
                    health,
                    timeout_ms,
                    ..
                } if of == node => Some((health.as_str(), *timeout_ms as f64)),
                _ => None,
            }
        }
        let health_of = |e| health_of(e, &k.node);
        let rest = &events[i + 1..];
        let rejoin = rest
            .iter()
            .position(|e| e.node == k.node && matches!(e.what, What::Joined));
        let Some(j) = rejoin else { continue };
        let timeout = rest
            .iter()
            .filter_map(health_of)
            .map(|(_, t)| t)
            .fold(0.0, f64::max);
        if timeout == 0.0 {
            continue;
        }
        let joined = &rest[j];
        // Long enough dead to be offline, and long enough alive after to be seen online.
        if joined.at_ms - k.at_ms < 3.0 * timeout || end - joined.at_ms < 2.0 * timeout {
            continue;
        }
        acc.checked += 1;
        let before: Vec<&str> = rest[..j]
            .iter()
            .filter_map(health_of)
            .map(|(h, _)| h)
            .collect();
        // From the restart on: a join that failed after its first heartbeat landed (an
        // injected fault on the read after it) is retried, and views see the node online
        // before the join that succeeds; views report changes only, so that one is the last.
        let restarted = rest[..j]
            .iter()
            .position(|e| e.node == k.node && matches!(e.what, What::Started { .. }))
            .unwrap_or(j);
        let after: Vec<&str> = rest[restarted..]
            .iter()
            .filter_map(health_of)
            .map(|(h, _)| h)
            .collect();
        if !before.contains(&"offline") || !after.contains(&"online") {
            acc.violate(
                format!(
                    "{} killed at {:.0} ms and restarted at {:.0} ms: seen {:?} while dead and {:?} after",
                    k.node, k.at_ms, joined.at_ms, before, after
                ),
                vec![k, joined],
            );
        }
    }
    acc.done()
}

fn misconfigured(events: &[Event]) -> Invariant {
    let mut acc = Acc::new("protocol: a misconfigured node is refused");
    for e in events {
        match &e.what {
            What::Refused { .. } => acc.checked += 1,
            What::Accepted { config, detail } => {
                acc.checked += 1;
                acc.violate(
                    format!("{}: a node with {config} was not refused: {detail}", e.node),
                    vec![e],
                );
            }
            _ => {}
        }
    }
    acc.done()
}
