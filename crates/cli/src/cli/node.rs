//! `cairn node heartbeat|ls`.

use super::child::Signals;
use super::output::say;
use super::Result;
use super::{exit, output};
use cairn::node::{HeartbeatEnd, Nodes};

/// `cairn node heartbeat`: join, heartbeat until stopped, leave.
pub async fn heartbeat(members: &Nodes, json: bool) -> Result<i32> {
    let mut signals = Signals::install()?;
    let hb = tokio::select! {
        h = members.join() => h?,
        sig = signals.recv() => return Ok(128 + sig),
    };
    let joined = hb.last();
    if json {
        let said = output::json(
            &serde_json::json!({ "event": "joined", "node": hb.node(), "session": joined.body.session }),
        );
        if let Err(e) = said {
            // Nobody reads the events: leave rather than heartbeat unwatched.
            hb.leave().await?;
            return Err(e);
        }
    } else {
        say!(
            "cairn: node {} joined (session {}); heartbeat every {}",
            hb.node(),
            joined.body.session,
            output::duration(members.options().interval)
        );
    }
    tokio::select! {
        _ = signals.recv() => {
            let node = hb.node().clone();
            hb.leave().await?;
            if json {
                output::json(&serde_json::json!({ "event": "left", "node": node }))?;
            } else {
                say!("cairn: node {node} left");
            }
            Ok(exit::OK)
        }
        end = hb.ended() => {
            match end {
                HeartbeatEnd::Duplicate { other_session, other_started_at } => say!(
                    "cairn: node id {} is in use by another process (session {other_session}, \
                     started {}); stopped",
                    hb.node(),
                    output::time(other_started_at)
                ),
                // Reported as the error it is (kind `protocol-changed`, exit 1, "restart it").
                changed @ HeartbeatEnd::ProtocolChanged { .. } => {
                    return Err(changed.into_error(hb.node()).into());
                }
                // `HeartbeatEnd` is non-exhaustive: an end this binary does not know yet.
                other => {
                    say!("cairn: node {} stopped heartbeating: {other:?}", hb.node());
                    return Ok(exit::FAILURE);
                }
            }
            Ok(exit::DUPLICATE_NODE)
        }
    }
}

/// `cairn node ls`.
pub async fn ls(members: &cairn::node::NodeView, json: bool) -> super::ops::Frame {
    let all = members.entries().await?.items;
    Ok(output::entries(
        &all,
        json,
        &[
            "NODE",
            "HEALTH",
            "AGE",
            "TIMEOUT",
            "BEATS",
            "LATENCY",
            "LAST HEARTBEAT",
            "",
        ],
        &[2, 3, 4, 5],
        |m| {
            vec![
                output::name(&m.node).into_owned(),
                format!("{:?}", m.health).to_lowercase(),
                output::millis(m.age_ms),
                output::millis(m.timeout_ms),
                m.record.beats.to_string(),
                format!("{:.1}ms", m.record.write_latency_ms),
                output::time(m.record.heartbeat_at),
                if m.left { "left" } else { "" }.to_string(),
            ]
        },
    ))
}
