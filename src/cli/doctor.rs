//! `cairn doctor`: probe a store and report.

use serde::Serialize;

use crate::store::probe::Capabilities;
use crate::{Cairn, Result};

#[derive(Serialize)]
struct Report<'a> {
    store: &'a str,
    strategy: String,
    /// Why that strategy, in a sentence.
    reason: String,
    capabilities: &'a Capabilities,
}

/// Probes the store at `url` and prints what it found.
pub async fn run(url: &str, node: Option<&str>, json: bool) -> Result<()> {
    let mut builder = Cairn::open(url).await?;
    if let Some(n) = node {
        builder = builder.node(n)?;
    }
    let cairn = builder.build().await?;
    let caps = cairn
        .capabilities()
        .expect("a probed handle has capabilities");
    if json {
        let r = Report {
            store: url,
            strategy: cairn.strategy().to_string(),
            reason: caps.reason(),
            capabilities: caps,
        };
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    println!("store:      {url}");
    for c in &caps.checks {
        let mark = if c.passed { "ok  " } else { "no  " };
        println!("  {mark} {:<32} {}", c.name, c.detail);
    }
    println!("strategy:   {}", cairn.strategy());
    println!("because:    {}", caps.reason());
    println!(
        "round trip: {:.1} ms (median of the probe's requests)",
        caps.round_trip.as_secs_f64() * 1e3
    );
    Ok(())
}
