//! `cairn stream …`, `cairn record …`, `cairn log …`.

use std::time::Duration;

use super::child::Signals;
use super::output::say;
use super::Result;
use super::{exit, output};
use cairn::clock::next_number;
use cairn::error::Error;
use cairn::log::EventLog;
use cairn::record::Records;
use cairn::store::keys;
use cairn::stream::{Create, Cursor, StreamEvent, StreamInfo, StreamState, Streams};
use cairn::Name;

/// Parses JSON given inline or as `@FILE`.
pub fn json_arg(what: &str, arg: &str) -> cairn::Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{what}: cannot read {path}: {e}")))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| Error::Config(format!("{what} is not JSON: {e}")))
}

/// What `stream create`, `update` and `delete` print with --json: what happened, and the
/// stream as stored after it.
#[derive(serde::Serialize)]
struct StreamOutcome<'a> {
    /// `created`, `exists`, `conflict`, `updated` or `deleted`.
    outcome: &'a str,
    stream: &'a StreamInfo,
}

/// One line of `stream watch --json`.
#[derive(serde::Serialize)]
struct StreamChange<'a> {
    /// `existing` (there when watching started), `created`, `changed` or `deleted`.
    event: &'a str,
    stream: &'a StreamInfo,
}

fn state(m: &StreamInfo) -> &'static str {
    match m.record.state {
        StreamState::Active => "active",
        StreamState::Deleted => "deleted",
    }
}

/// One stream as labelled lines, stored strings escaped (see [`output::text`]).
fn stream_text(m: &StreamInfo) -> String {
    let mut out = output::Labelled::new(13);
    out.line("name:", output::name(&m.name));
    out.line("state:", state(m));
    out.line("version:", m.version);
    out.line("incarnation:", m.record.incarnation);
    out.line("metadata:", &m.record.metadata);
    out.line("created by:", output::name(&m.record.created_by));
    out.line("created at:", output::time(m.record.created_at));
    out.line("updated by:", output::name(&m.updated_by));
    out.line("updated at:", output::time(m.updated_at));
    out.finish()
}

/// Prints what a stream verb did: `{"outcome", "stream"}` with --json, else a word and the
/// stream.
fn print_outcome(outcome: &str, m: &StreamInfo, json: bool) -> Result<()> {
    if json {
        output::json(&StreamOutcome { outcome, stream: m })
    } else {
        output::print(&format!("{outcome}\n{}", stream_text(m)))
    }
}

/// `stream create`.
pub async fn stream_create(
    s: &Streams,
    name: &str,
    metadata: Option<&str>,
    json: bool,
) -> Result<i32> {
    let metadata = match metadata {
        Some(m) => json_arg("--metadata", m)?,
        None => serde_json::json!({}),
    };
    let outcome = s.create(&Name::new(name)?, metadata).await?;
    let (word, code) = match &outcome {
        Create::Created(_) => ("created", exit::OK),
        Create::Exists(_) => ("exists", exit::OK),
        Create::Conflict(_) => ("conflict", exit::STREAM_CONFLICT),
    };
    if code == exit::STREAM_CONFLICT && !json {
        say!("cairn: stream {name} exists with different metadata; stored manifest:");
        output::print(&stream_text(outcome.info()))?;
    } else {
        print_outcome(word, outcome.info(), json)?;
    }
    Ok(code)
}

/// `stream ls`.
pub async fn stream_ls(s: &cairn::stream::StreamView, json: bool) -> super::ops::Frame {
    let all = s.entries().await?.items;
    Ok(output::entries(
        &all,
        json,
        &[
            "NAME",
            "STATE",
            "VERSION",
            "INCARNATION",
            "UPDATED BY",
            "UPDATED AT",
            "METADATA",
        ],
        &[2, 3],
        |m| {
            vec![
                output::name(&m.name).into_owned(),
                state(m).into(),
                m.version.to_string(),
                m.record.incarnation.to_string(),
                output::name(&m.updated_by).into_owned(),
                output::time(m.updated_at),
                m.record.metadata.to_string(),
            ]
        },
    ))
}

/// `stream show`.
pub async fn stream_show(s: &Streams, name: &str, json: bool) -> Result<i32> {
    match s.get(&Name::new(name)?).await? {
        Some(m) => {
            if json {
                output::json(&m)?;
            } else {
                output::print(&stream_text(&m))?;
            }
            Ok(exit::OK)
        }
        None => {
            say!("cairn: no stream named {name}");
            Ok(exit::NOT_FOUND)
        }
    }
}

/// `stream update`.
pub async fn stream_update(s: &Streams, name: &str, metadata: &str, json: bool) -> Result<i32> {
    let metadata = json_arg("--metadata", metadata)?;
    let updated = s
        .update(&Name::new(name)?, |_| Some(metadata.clone()))
        .await?;
    found("updated", updated, json, name)
}

/// `stream delete`.
pub async fn stream_delete(s: &Streams, name: &str, json: bool) -> Result<i32> {
    found("deleted", s.delete(&Name::new(name)?).await?, json, name)
}

fn found(outcome: &str, m: Option<StreamInfo>, json: bool, name: &str) -> Result<i32> {
    match m {
        Some(m) => {
            print_outcome(outcome, &m, json)?;
            Ok(exit::OK)
        }
        None => {
            say!("cairn: no active stream named {name}");
            Ok(exit::NOT_FOUND)
        }
    }
}

/// `stream watch`. The first poll reports the streams there when watching starts: they are
/// `existing`, not `created`.
pub async fn stream_watch(s: &Streams, interval: Duration, once: bool, json: bool) -> Result<i32> {
    let mut f = s.follow(Cursor::default());
    let mut first = true;
    // Installed once, before the first poll: a SIGINT or SIGTERM that arrives while a poll
    // runs is kept for the next select, not lost (a `ctrl_c()` future made afresh each
    // round misses it, and the process then ignores the signal).
    let mut signals = if once {
        None
    } else {
        Some(Signals::install()?)
    };
    loop {
        let events = match signals.as_mut() {
            Some(sig) => tokio::select! {
                r = f.poll() => r?,
                _ = sig.recv() => return Ok(exit::OK),
            },
            None => f.poll().await?,
        };
        for e in events {
            let event = match &e {
                StreamEvent::Created(_) if first => "existing",
                StreamEvent::Created(_) => "created",
                StreamEvent::Changed(_) => "changed",
                StreamEvent::Deleted(_) => "deleted",
            };
            let m = e.info();
            if json {
                output::json(&StreamChange { event, stream: m })?;
            } else {
                output::line(&output::text(&format!(
                    "{event:<8}  {}  version {}  incarnation {}  metadata {}",
                    output::name(&m.name),
                    m.version,
                    m.record.incarnation,
                    m.record.metadata
                )))?;
            }
        }
        first = false;
        let Some(sig) = signals.as_mut() else {
            return Ok(exit::OK);
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = sig.recv() => return Ok(exit::OK),
        }
    }
}

/// `record put`.
pub async fn record_put(
    r: &Records,
    namespace: &str,
    key: &str,
    version: u64,
    value: &str,
    json: bool,
) -> Result<i32> {
    let value = json_arg("--value", value)?;
    let outcome = r
        .put_if_newer(&Name::new(namespace)?, &Name::new(key)?, version, value)
        .await?;
    if json {
        output::json(&outcome)?;
    } else {
        match outcome {
            cairn::record::Put::Applied { version } => {
                output::line(&format!("applied at version {version}"))?
            }
            cairn::record::Put::Stale { stored_version } => {
                output::line(&format!("stale: version {stored_version} is stored"))?
            }
        }
    }
    Ok(exit::OK)
}

/// `record get`.
pub async fn record_get(r: &Records, namespace: &str, key: &str, json: bool) -> Result<i32> {
    match r.get_any(&Name::new(namespace)?, &Name::new(key)?).await? {
        Some(rec) if rec.deleted => {
            say!(
                "cairn: record {namespace}/{key} was deleted (its tombstone keeps version {})",
                rec.version
            );
            Ok(exit::NOT_FOUND)
        }
        Some(rec) => {
            if json {
                output::json(&rec)?;
            } else {
                output::line(&output::text(&format!(
                    "version {}  value {}",
                    rec.version, rec.value
                )))?;
            }
            Ok(exit::OK)
        }
        None => {
            say!("cairn: no record {namespace}/{key}");
            Ok(exit::NOT_FOUND)
        }
    }
}

/// `log append`.
pub async fn log_append(l: &EventLog, topic: &str, event: &str, json: bool) -> Result<i32> {
    let event = json_arg("the event", event)?;
    let seq = l.append(&Name::new(topic)?, event).await?;
    if json {
        output::json(&serde_json::json!({ "topic": topic, "sequence": seq }))?;
    } else {
        output::line(&seq.to_string())?;
    }
    Ok(exit::OK)
}

/// How many entries `log tail` reads and prints at a time.
const TAIL_PAGE: usize = 1000;

/// Where `log tail` starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// At this sequence number (`--from`).
    From(u64),
    /// With the last this many entries (`-n`).
    Last(u64),
}

/// `log tail`. A topic with no entries is [`exit::NOT_FOUND`], unless following (then it
/// waits for the first). With `--follow`, an entry at sequence `u64::MAX` is the last there
/// can ever be: after printing it, following ends with [`Error::Exhausted`] instead of
/// wrapping to the start and printing the log again.
pub async fn log_tail(
    l: &EventLog,
    topic: &str,
    start: Start,
    follow: bool,
    interval: Duration,
    json: bool,
) -> Result<i32> {
    let topic = Name::new(topic)?;
    let empty = || {
        if follow {
            say!("cairn: log topic {topic} has no entries yet; waiting for the first");
            Ok(())
        } else {
            say!("cairn: log topic {topic} has no entries (nothing was ever appended to it)");
            Err(exit::NOT_FOUND)
        }
    };
    // Installed once, before the first read (see `stream_watch`): a signal during a read or
    // while printing is kept.
    let signals = if follow {
        Some(Signals::install()?)
    } else {
        None
    };
    // Printed as they are read, a page at a time: memory is bounded by a page, not by the
    // topic.
    let print = |entries: &[cairn::log::Entry]| -> Result<()> {
        for e in entries {
            if json {
                output::json(e)?;
            } else {
                output::line(&output::text(&format!(
                    "{:>6}  {}  {}  {}",
                    e.sequence,
                    output::time(e.appended_at),
                    output::name(&e.appended_by),
                    e.event
                )))?;
            }
        }
        Ok(())
    };
    let after = |seq: u64| next_number(&keys::log_topic(&topic), "sequence", seq);
    let mut next = match start {
        Start::From(from) => {
            let mut next = from.max(1);
            let mut any = false;
            loop {
                let entries = l.read(&topic, next, TAIL_PAGE).await?;
                let Some(last) = entries.last() else { break };
                any = true;
                print(&entries)?;
                if last.sequence == u64::MAX && !follow {
                    return Ok(exit::OK);
                }
                // Following past u64::MAX: Exhausted.
                next = after(last.sequence)?;
            }
            if !any && l.newest_sequence(&topic).await?.is_none() {
                if let Err(code) = empty() {
                    return Ok(code);
                }
            }
            next
        }
        Start::Last(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            match l.last(&topic, n).await? {
                (_, None) => match empty() {
                    Ok(()) => 1,
                    Err(code) => return Ok(code),
                },
                (entries, Some(newest)) => {
                    print(&entries)?;
                    if newest == u64::MAX && follow {
                        after(newest)?;
                    }
                    newest.saturating_add(1)
                }
            }
        }
    };
    let Some(mut signals) = signals else {
        return Ok(exit::OK);
    };
    loop {
        let entries = tokio::select! {
            r = l.wait_for(&topic, next, interval) => r?,
            _ = signals.recv() => return Ok(exit::OK),
        };
        print(&entries)?;
        if let Some(last) = entries.last() {
            next = after(last.sequence)?;
        }
    }
}
