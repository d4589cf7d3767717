//! `cairn stream …`, `cairn record …`, `cairn log …`.

use std::time::Duration;

use super::exit;
use crate::clock::next_number;
use crate::error::Error;
use crate::log::EventLog;
use crate::record::Records;
use crate::store::keys;
use crate::stream::{Create, Cursor, StreamManifest, Streams};
use crate::{Name, Result};

/// Parses JSON given inline or as `@FILE`.
pub fn json_arg(what: &str, arg: &str) -> Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{what}: cannot read {path}: {e}")))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| Error::Config(format!("{what} is not JSON: {e}")))
}

fn print_stream(m: &StreamManifest, json: bool) {
    if json {
        println!("{}", serde_json::to_string(m).unwrap_or_default());
    } else {
        println!(
            "{}  version {}  {:?}  incarnation {}  metadata {}",
            m.name, m.version, m.record.state, m.record.incarnation, m.record.metadata
        );
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
    if json {
        println!(
            "{}",
            serde_json::json!({ "outcome": word, "stream": outcome.manifest() })
        );
    } else {
        if code == exit::STREAM_CONFLICT {
            eprintln!("cairn: stream {name} exists with different metadata; stored manifest:");
        } else {
            println!("{word}");
        }
        print_stream(outcome.manifest(), false);
    }
    Ok(code)
}

/// `stream ls`.
pub async fn stream_ls(s: &Streams, json: bool) -> Result<i32> {
    let all = s.list().await?;
    if json {
        println!("{}", serde_json::to_string(&all).unwrap_or_default());
    } else {
        for m in &all {
            print_stream(m, false);
        }
    }
    Ok(exit::OK)
}

/// `stream show`.
pub async fn stream_show(s: &Streams, name: &str, json: bool) -> Result<i32> {
    found(s.get(&Name::new(name)?).await?, json, name)
}

/// `stream update`.
pub async fn stream_update(s: &Streams, name: &str, metadata: &str, json: bool) -> Result<i32> {
    let metadata = json_arg("--metadata", metadata)?;
    found(
        s.update(&Name::new(name)?, |_| Some(metadata.clone()))
            .await?,
        json,
        name,
    )
}

/// `stream delete`.
pub async fn stream_delete(s: &Streams, name: &str, json: bool) -> Result<i32> {
    found(s.delete(&Name::new(name)?).await?, json, name)
}

fn found(m: Option<StreamManifest>, json: bool, name: &str) -> Result<i32> {
    match m {
        Some(m) => {
            print_stream(&m, json);
            Ok(exit::OK)
        }
        None => {
            eprintln!("cairn: no active stream named {name}");
            Ok(exit::NOT_FOUND)
        }
    }
}

/// `stream watch`.
pub async fn stream_watch(s: &Streams, interval: Duration, once: bool) -> Result<i32> {
    let mut f = s.follow(Cursor::default());
    loop {
        for e in f.poll().await? {
            println!("{}", serde_json::to_string(&e).unwrap_or_default());
        }
        if once {
            return Ok(exit::OK);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
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
        println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
    } else {
        match outcome {
            crate::record::Put::Applied { version } => println!("applied at version {version}"),
            crate::record::Put::Stale { stored_version } => {
                println!("stale: version {stored_version} is stored")
            }
        }
    }
    Ok(exit::OK)
}

/// `record get`.
pub async fn record_get(r: &Records, namespace: &str, key: &str, json: bool) -> Result<i32> {
    match r.get(&Name::new(namespace)?, &Name::new(key)?).await? {
        Some(rec) => {
            if json {
                println!("{}", serde_json::to_string(&rec).unwrap_or_default());
            } else {
                println!("version {}  value {}", rec.version, rec.value);
            }
            Ok(exit::OK)
        }
        None => {
            eprintln!("cairn: no record {namespace}/{key}");
            Ok(exit::NOT_FOUND)
        }
    }
}

/// `log append`.
pub async fn log_append(l: &EventLog, topic: &str, event: &str, json: bool) -> Result<i32> {
    let event = json_arg("the event", event)?;
    let seq = l.append(&Name::new(topic)?, event).await?;
    if json {
        println!("{}", serde_json::json!({ "topic": topic, "sequence": seq }));
    } else {
        println!("{seq}");
    }
    Ok(exit::OK)
}

/// `log tail`. With `--follow`, an entry at sequence `u64::MAX` is the last there can ever
/// be: after printing it, following ends with [`Error::Exhausted`] instead of wrapping to the
/// start and printing the log again.
pub async fn log_tail(
    l: &EventLog,
    topic: &str,
    from: u64,
    follow: bool,
    interval: Duration,
) -> Result<i32> {
    let topic = Name::new(topic)?;
    let mut next = from.max(1);
    loop {
        let entries = if follow {
            tokio::select! {
                r = l.wait_for(&topic, next, interval) => r?,
                _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
            }
        } else {
            l.read(&topic, next, usize::MAX).await?
        };
        for e in &entries {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        }
        if !follow {
            return Ok(exit::OK);
        }
        if let Some(last) = entries.last() {
            next = next_number(&keys::log_topic(&topic), "sequence", last.sequence)?;
        }
    }
}
