//! `cairn status`: one screen (80 columns) summarising the bucket.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output;
use super::Result;
use cairn::cache::CacheOptions;
use cairn::lock::{LockInfo, LockState, Locks};
use cairn::log::{Entry, EventLog};
use cairn::manifest::listing::{Entry as Listed, Unreadable};
use cairn::node::{Health, NodeStatus, NodeView};
use cairn::stream::{StreamInfo, StreamState, StreamView};
use cairn::turn::{TurnInfo, Turns};
use cairn::{Cairn, Name};

/// Lines a section takes at most on a screen, its `… N more` line included (the JSON
/// document has every row). With the header, four sections this size, the streams' line,
/// the nodes' three and [`EVENTS`] the screen is 22 lines: it fits 24.
const ROWS: usize = 4;
/// Log events shown.
const EVENTS: usize = 3;
/// The screen's width.
const WIDTH: usize = 80;

/// Everything `status` reads, with the cached views kept across refreshes.
pub struct Status {
    locks: cairn::Result<Locks>,
    turns: Turns,
    streams: StreamView,
    members: NodeView,
    log: EventLog,
    topic: Option<Name>,
}

/// The JSON document.
#[derive(Serialize)]
struct Doc<'a> {
    at: DateTime<Utc>,
    locks: &'a [LockInfo],
    turns: &'a [TurnInfo],
    streams: Streams<'a>,
    nodes: Nodes,
    log: Log,
    /// Locks, turns, streams and nodes that could not be read, each with its key and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreadable: Vec<&'a Unreadable>,
}

#[derive(Serialize)]
struct Streams<'a> {
    count: usize,
    active: usize,
    newest: Option<&'a StreamInfo>,
}

#[derive(Serialize, Default)]
struct Nodes {
    online: Vec<String>,
    suspect: Vec<String>,
    offline: Vec<String>,
    /// Not judged: this node's clock is beyond the bound from the store's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unknown: Vec<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Log {
    Topic { topic: String, events: Vec<Entry> },
    Topics { topics: Vec<Topic> },
}

#[derive(Serialize)]
struct Topic {
    topic: String,
    newest: u64,
}

impl Status {
    /// Reads through `cairn`; `topic` is the log topic to show events of. The views stay
    /// fresh for half of `interval`, so each refresh revalidates (cheaply: one listing, and
    /// a GET per changed entry).
    pub fn new(cairn: &Cairn, topic: Option<Name>, interval: Duration) -> Self {
        let members = cairn.nodes(Default::default());
        let fresh = interval / 2;
        Self {
            locks: cairn.locks(Default::default()),
            turns: cairn.turns(Default::default()),
            streams: cairn.streams().view(CacheOptions {
                fresh,
                ..CacheOptions::for_streams()
            }),
            members: members.view(CacheOptions {
                fresh,
                ..CacheOptions::for_nodes(members.options().interval)
            }),
            log: cairn.event_log(),
            topic,
        }
    }

    /// One refresh: the text screen, or one JSON line.
    pub async fn frame(&self, json: bool) -> super::ops::Frame {
        let locks = match &self.locks {
            Ok(l) => l.entries().await?,
            Err(e) => return Err(cairn::Error::Config(e.to_string()).into()),
        };
        let turns = self.turns.entries().await?;
        let streams = self.streams.entries().await?.items;
        let members = self.members.entries().await?.items;
        let mut unreadable = Vec::new();
        let locks = read(&locks, &mut unreadable);
        let turns = read(&turns, &mut unreadable);
        let streams = read(&streams, &mut unreadable);
        let members: Vec<NodeStatus> = read(&members, &mut unreadable)
            .into_iter()
            .cloned()
            .collect();
        let locks: Vec<LockInfo> = locks.into_iter().cloned().collect();
        let turns: Vec<TurnInfo> = turns.into_iter().cloned().collect();
        let log = self.log().await?;
        let now = Utc::now();
        let newest = streams.iter().copied().max_by_key(|s| s.updated_at);
        let doc = Doc {
            at: now,
            locks: &locks,
            turns: &turns,
            streams: Streams {
                count: streams.len(),
                active: streams
                    .iter()
                    .filter(|s| s.record.state == StreamState::Active)
                    .count(),
                newest,
            },
            nodes: nodes(&members),
            log,
            unreadable,
        };
        let shown = |text| super::ops::Shown {
            text,
            unreadable: doc.unreadable.len(),
        };
        if json {
            return Ok(shown(super::ops::json_frame(&doc)));
        }
        Ok(shown(text(&doc, now)))
    }

    async fn log(&self) -> Result<Log> {
        if let Some(t) = &self.topic {
            let newest = self.log.newest_sequence(t).await?.unwrap_or(0);
            let from = newest.saturating_sub(EVENTS as u64 - 1).max(1);
            let events = if newest == 0 {
                Vec::new()
            } else {
                self.log.read(t, from, EVENTS).await?
            };
            return Ok(Log::Topic {
                topic: t.to_string(),
                events,
            });
        }
        let mut topics = Vec::new();
        for t in self.log.topics().await? {
            let Ok(name) = Name::new(&t) else { continue };
            if let Some(newest) = self.log.newest_sequence(&name).await? {
                topics.push(Topic { topic: t, newest });
            }
        }
        Ok(Log::Topics { topics })
    }
}

/// The entries that were read; those that could not be are added to `unreadable`.
fn read<'a, T>(all: &'a [Listed<T>], unreadable: &mut Vec<&'a Unreadable>) -> Vec<&'a T> {
    let mut out = Vec::with_capacity(all.len());
    for e in all {
        match e {
            Ok(t) => out.push(t),
            Err(u) => unreadable.push(u),
        }
    }
    out
}

fn nodes(members: &[NodeStatus]) -> Nodes {
    let mut n = Nodes::default();
    for m in members {
        match m.health {
            Health::Online => n.online.push(m.node.clone()),
            Health::Suspect => n.suspect.push(m.node.clone()),
            Health::Offline => n.offline.push(m.node.clone()),
            Health::Unknown => n.unknown.push(m.node.clone()),
        }
    }
    n
}

/// `s` escaped ([`output::text`]: every line of the screen passes here, so no stored
/// string reaches the terminal raw) and cut to `width` characters, with `…` when cut.
fn fit(s: &str, width: usize) -> String {
    let s = output::text(s);
    if s.chars().count() <= width {
        return s.into_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// How long from `now` to `t`: `in 12s`, `3m ago`.
fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t.signed_duration_since(now);
    let secs = d.num_seconds();
    let show = |s: i64| output::duration(Duration::from_secs(s.unsigned_abs()));
    if secs >= 0 {
        format!("in {}", show(secs))
    } else {
        format!("{} ago", show(secs))
    }
}

/// When the next turn is due: `next in 4m`, or `due for 1m` once it is.
fn due(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    match (now - t).to_std() {
        Ok(d) if !d.is_zero() => format!("due for {}", output::duration(d)),
        _ => format!("next {}", relative(t, now)),
    }
}

fn lock_state(l: &LockInfo) -> &'static str {
    match l.state {
        LockState::Held => "held",
        LockState::Expired => "expired",
        LockState::Released => "released",
        LockState::Broken => "broken",
    }
}

/// A section heading and at most `rows` lines, the last saying `… N more` when cut.
fn section(out: &mut String, heading: String, lines: Vec<String>, rows: usize) {
    out.push_str(&fit(&heading, WIDTH));
    out.push('\n');
    let shown = if lines.len() > rows {
        rows.saturating_sub(1)
    } else {
        lines.len()
    };
    let more = lines.len() - shown;
    for l in lines.into_iter().take(shown) {
        out.push_str(&fit(&format!("  {l}"), WIDTH));
        out.push('\n');
    }
    if more > 0 {
        out.push_str(&format!("  … {more} more\n"));
    }
}

/// Names as `a, b, c`, cut to fit `width`.
fn names(v: &[String], width: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let v: Vec<_> = v.iter().map(|n| output::name(n)).collect();
    fit(&v.join(", "), width)
}

fn text(d: &Doc<'_>, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let held = d
        .locks
        .iter()
        .filter(|l| l.state == LockState::Held)
        .count();
    // What is in use first (held, broken, expired), then what was released: a long list of
    // released locks must not push the held ones off the screen.
    let mut locks: Vec<&LockInfo> = d.locks.iter().collect();
    locks.sort_by_key(|l| (l.state == LockState::Released, l.name.clone()));
    let lines = locks
        .iter()
        .map(|l| {
            let expiry = match l.state {
                LockState::Held | LockState::Broken => {
                    format!("expires {}", relative(l.expires_at, now))
                }
                _ => String::new(),
            };
            format!(
                "{:<18} {:<8} {:<18} token {:<6} {expiry}",
                fit(&output::name(&l.name), 18),
                lock_state(l),
                fit(&output::name(&l.holder), 18),
                l.fencing_token
            )
            .trim_end()
            .to_string()
        })
        .collect();
    section(
        &mut out,
        format!("LOCKS  {} ({held} held)", d.locks.len()),
        lines,
        ROWS,
    );
    let lines = d
        .turns
        .iter()
        .map(|t| {
            let last = match &t.record.outcome {
                Some(o) => o.status.to_string(),
                None => "running".into(),
            };
            format!(
                "{:<18} #{:<5} {:<14} {:<8} {:<10} {}",
                fit(&output::name(&t.name), 18),
                t.record.turn,
                fit(&output::name(&t.record.holder), 14),
                last,
                relative(t.record.started_at, now),
                due(t.next_due_at, now)
            )
        })
        .collect();
    section(&mut out, format!("TURNS  {}", d.turns.len()), lines, ROWS);
    let newest = d.streams.newest.map_or(String::new(), |s| {
        format!(
            " · newest {} ({})",
            fit(&output::name(&s.name), 24),
            relative(s.updated_at, now)
        )
    });
    section(
        &mut out,
        format!(
            "STREAMS  {} ({} active){newest}",
            d.streams.count, d.streams.active
        ),
        Vec::new(),
        0,
    );
    let n = &d.nodes;
    section(
        &mut out,
        format!(
            "NODES  {} online · {} suspect · {} offline",
            n.online.len(),
            n.suspect.len(),
            n.offline.len()
        ),
        [
            ("online", &n.online),
            ("suspect", &n.suspect),
            ("offline", &n.offline),
            ("unknown", &n.unknown),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(label, v)| format!("{label:<8} {}", names(v, WIDTH - 11)))
        .collect(),
        3,
    );
    if !d.unreadable.is_empty() {
        section(
            &mut out,
            format!("UNREADABLE  {}", d.unreadable.len()),
            d.unreadable
                .iter()
                .map(|u| format!("{}: {}", u.key, u.error))
                .collect(),
            ROWS,
        );
    }
    match &d.log {
        Log::Topic { topic, events } => section(
            &mut out,
            format!("LOG  {topic} (latest {})", events.len()),
            events
                .iter()
                .map(|e| {
                    format!(
                        "{:>6} {} {:<12} {}",
                        e.sequence,
                        e.appended_at.format("%H:%M:%S"),
                        fit(&output::name(&e.appended_by), 12),
                        e.event
                    )
                })
                .collect(),
            EVENTS,
        ),
        Log::Topics { topics } => section(
            &mut out,
            format!("LOG  topics: {} (--topic shows events)", topics.len()),
            topics
                .iter()
                .map(|t| format!("{:<24} newest #{}", fit(&t.topic, 24), t.newest))
                .collect(),
            EVENTS,
        ),
    }
    out
}
