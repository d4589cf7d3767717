//! `cairn doctor`: probe a store and report.

use serde::Serialize;

use crate::store::probe::Capabilities;
use crate::{CairnBuilder, Result, Strategy};

#[derive(Serialize)]
struct Report<'a> {
    store: &'a str,
    strategy: String,
    protocol: Option<&'a crate::store::protocol::ProtocolRecord>,
    /// What the probe found about If-Match, and so which strategy it picks, in a sentence.
    reason: String,
    capabilities: &'a Capabilities,
    /// What doctor can say about bucket lifecycle rules.
    lifecycle: Lifecycle,
}

/// What doctor can say about bucket lifecycle rules: it cannot read them (object_store has
/// no call for a bucket's lifecycle configuration, and cairn sends no request of its own), so
/// it says so and gives the rule to follow (README, "Lifecycle rules").
#[derive(Serialize)]
struct Lifecycle {
    /// Always `false`: the rules were not read.
    checked: bool,
    /// What a rule may touch under the prefix.
    guidance: &'static str,
}

const LIFECYCLE_GUIDANCE: &str = "a bucket lifecycle rule must not expire or transition \
     objects under the prefix's _cairn/, locks/, turns/, streams/, records/, members/ or \
     scratch/ (held leases, record tombstones and turn schedules would vanish); log/ only if \
     losing old entries is acceptable; _probe/ freely (README, \"Lifecycle rules\")";

fn lifecycle() -> Lifecycle {
    Lifecycle {
        checked: false,
        guidance: LIFECYCLE_GUIDANCE,
    }
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
            reason: caps.reason(),
            capabilities: caps,
            lifecycle: lifecycle(),
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
        None => println!(
            "strategy:   {} (no protocol recorded yet: the first coordinating command records it)",
            cairn.strategy()
        ),
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
    println!("warning:    lifecycle rules not checked (the bucket's lifecycle configuration cannot be read through object_store); {LIFECYCLE_GUIDANCE}");
    Ok(())
}
