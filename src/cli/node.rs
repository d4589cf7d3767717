//! `cairn node heartbeat|ls`.

use super::child::Signals;
use super::exit;
use crate::member::{HeartbeatEnd, Membership};
use crate::Result;

/// `cairn node heartbeat`: join, heartbeat until stopped, leave.
pub async fn heartbeat(members: &Membership, json: bool) -> Result<i32> {
    let mut signals = Signals::install()?;
    let hb = tokio::select! {
        h = members.join() => h?,
        sig = signals.recv() => return Ok(128 + sig),
    };
    let joined = hb.last();
    if json {
        println!(
            "{}",
            serde_json::json!({ "event": "joined", "node": hb.node(), "session": joined.body.session })
        );
    } else {
        eprintln!(
            "cairn: node {} joined (session {}); heartbeat every {:?}",
            hb.node(),
            joined.body.session,
            members.options().interval
        );
    }
    tokio::select! {
        _ = signals.recv() => {
            let node = hb.node().clone();
            hb.leave().await?;
            if json {
                println!("{}", serde_json::json!({ "event": "left", "node": node }));
            } else {
                eprintln!("cairn: node {node} left");
            }
            Ok(exit::OK)
        }
        end = hb.ended() => {
            match end {
                HeartbeatEnd::Duplicate { other_session, other_started_at } => eprintln!(
                    "cairn: node id {} is in use by another process (session {other_session}, \
                     started {other_started_at}); stopped",
                    hb.node()
                ),
            }
            Ok(exit::DUPLICATE_NODE)
        }
    }
}

/// `cairn node ls`.
pub async fn ls(members: &Membership, json: bool) -> Result<i32> {
    let all = members.list().await?;
    if json {
        println!("{}", serde_json::to_string(&all).unwrap_or_default());
        return Ok(exit::OK);
    }
    println!(
        "{:<32} {:<8} {:>9} {:>9} {:>8} {:>11}",
        "NODE", "HEALTH", "AGE", "TIMEOUT", "BEATS", "LATENCY"
    );
    for m in &all {
        let health = format!("{:?}", m.health).to_lowercase();
        println!(
            "{:<32} {:<8} {:>8.1}s {:>8.1}s {:>8} {:>9.1}ms{}",
            m.node,
            health,
            m.age_ms as f64 / 1000.0,
            m.timeout_ms as f64 / 1000.0,
            m.record.beats,
            m.record.write_latency_ms,
            if m.left { "  (left)" } else { "" }
        );
    }
    Ok(exit::OK)
}
