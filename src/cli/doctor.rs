//! `cairn doctor`: probe a store and report.

use serde::Serialize;

use crate::store::probe::Capabilities;
use crate::{CairnBuilder, Result, Strategy};

#[derive(Serialize)]
struct Report<'a> {
    store: &'a str,
    strategy: String,
    protocol: Option<&'a crate::store::protocol::ProtocolRecord>,
    /// A coordination object found where the protocol record is missing (it was deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol_missing: Option<String>,
    /// What the probe found about If-Match, and so which strategy it picks, in a sentence.
    reason: String,
    capabilities: &'a Capabilities,
}

/// Probes the store at `url` (opened by `builder`, an observer) and prints what it found.
pub async fn run(builder: CairnBuilder, url: &str, json: bool) -> Result<()> {
    let cairn = builder.build().await?;
    // Always a fresh probe: the protocol record spares coordinating commands the probe,
    // but doctor is where an operator checks the store as it is now.
    let fresh;
    let caps = match cairn.capabilities() {
        Some(c) => c,
        None => {
            fresh = cairn.store().probe(&mut rand::rng()).await?;
            &fresh
        }
    };
    let p = cairn.protocol();
    if json {
        let r = Report {
            store: url,
            strategy: cairn.strategy().to_string(),
            protocol: p,
            protocol_missing: cairn.protocol_missing().map(ToString::to_string),
            reason: caps.reason(),
            capabilities: caps,
        };
        super::output::json(&r);
        return Ok(());
    }
    println!("store:      {url}");
    for c in &caps.checks {
        let mark = if c.passed { "ok  " } else { "no  " };
        println!("  {mark} {:<32} {}", c.name, c.detail);
    }
    match p {
        Some(p) => println!(
            "strategy:   {} (this prefix's protocol, recorded by {} at {})",
            cairn.strategy(),
            p.created_by,
            super::output::time(p.created_at)
        ),
        None => match cairn.protocol_missing() {
            Some(found) => println!(
                "strategy:   {} (read from the objects' key shapes)\n\
                 warning:    the protocol record is MISSING, yet this prefix is in use \
                 ({found}): nodes refuse it; check why it vanished (no lifecycle rule may \
                 expire _cairn/), then run `cairn protocol recreate`",
                cairn.strategy()
            ),
            None => println!(
                "strategy:   {} (no protocol recorded yet: the first coordinating command \
                 records it)",
                cairn.strategy()
            ),
        },
    }
    if !cairn.strategy().supported_by(caps) {
        println!("warning:    this store no longer supports the recorded protocol");
    }
    let probed = Strategy::for_capabilities(caps);
    if probed == cairn.strategy() {
        println!("because:    {}", caps.reason());
    } else {
        println!("probe:      {} ({probed} for a new prefix)", caps.reason());
    }
    println!(
        "round trip: {:.1} ms (median of the probe's requests)",
        caps.round_trip.as_secs_f64() * 1e3
    );
    Ok(())
}
