//! `cairn doctor`: probe a store and report.

use serde::Serialize;

use super::output;
use super::Result;
use cairn::store::probe::Capabilities;
use cairn::{CairnBuilder, Strategy};

#[derive(Serialize)]
struct Report<'a> {
    store: &'a str,
    strategy: String,
    protocol: Option<&'a cairn::store::protocol::ProtocolRecord>,
    /// A coordination object found where the protocol record is missing (it was deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol_missing: Option<String>,
    /// What the probe found about If-Match, and so which strategy it picks, in a sentence.
    reason: String,
    capabilities: &'a Capabilities,
    /// This node's clock against the store's (a clock check).
    clock: Clock,
    /// What doctor can say about bucket lifecycle rules.
    lifecycle: Lifecycle,
}

#[derive(Serialize)]
struct Clock {
    offset: cairn::store::time::ClockOffset,
    bound_ms: u64,
    within_bound: bool,
}

/// What doctor can say about bucket lifecycle rules: it cannot read them (object_store has
/// no call for a bucket's lifecycle configuration, and cairn sends no request of its own), so
/// it says so and gives the rule to follow (docs/STORES.md, "Lifecycle rules").
#[derive(Serialize)]
struct Lifecycle {
    /// Always `false`: the rules were not read.
    checked: bool,
    /// What a rule may touch under the prefix.
    guidance: &'static str,
}

const LIFECYCLE_GUIDANCE: &str = "a bucket lifecycle rule must not expire or transition \
     objects under the prefix's _cairn/, locks/, turns/, streams/, records/, nodes/, members/, \
     app/ or scratch/ (held leases, record tombstones and turn schedules would vanish); log/ \
     only if losing old entries is acceptable; _probe/ freely (docs/STORES.md, \"Lifecycle \
     rules\")";

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
            fresh = cairn.store().probe().await?;
            &fresh
        }
    };
    let p = cairn.protocol();
    let manifests = cairn.manifests();
    let time = manifests.store_time();
    let witness = time.check(cairn.store(), manifests.node()).await?;
    let offset = witness.offset_at(manifests.clock().monotonic(), manifests.clock().now());
    let clock = Clock {
        offset,
        bound_ms: cairn::clock::millis(time.max_offset()),
        within_bound: !offset.beyond(time.max_offset()),
    };
    if json {
        let r = Report {
            store: url,
            strategy: cairn.strategy().to_string(),
            protocol: p,
            protocol_missing: cairn.protocol_missing().map(ToString::to_string),
            reason: caps.reason(),
            capabilities: caps,
            clock,
            lifecycle: lifecycle(),
        };
        return output::json(&r);
    }
    // Built whole, then escaped line by line: the protocol record and the store's answers
    // are stored or remote text.
    let mut lines = vec![format!("store:      {url}")];
    for c in &caps.checks {
        let mark = if c.passed { "ok  " } else { "no  " };
        lines.push(format!("  {mark} {:<32} {}", c.name, c.detail));
    }
    match (p, cairn.protocol_missing()) {
        (Some(p), _) => lines.push(format!(
            "strategy:   {} (this prefix's protocol, recorded by {} at {})",
            cairn.strategy(),
            output::name(&p.created_by),
            output::time(p.created_at)
        )),
        (None, Some(found)) => {
            lines.push(format!(
                "strategy:   {} (read from the objects' key shapes)",
                cairn.strategy()
            ));
            lines.push(format!(
                "warning:    the protocol record is MISSING, yet this prefix is in use \
                 ({found}): nodes refuse it; check why it vanished (no lifecycle rule may \
                 expire _cairn/), then run `cairn protocol recreate`"
            ));
        }
        (None, None) => lines.push(format!(
            "strategy:   {} (no protocol recorded yet: the first coordinating command \
             records it)",
            cairn.strategy()
        )),
    }
    let folder = cairn.manifests().node_family().folder();
    lines.push(match p {
        Some(p) => format!(
            "format:     {} (nodes heartbeat under {folder}/; docs/GUARANTEES.md, \"Formats\")",
            p.format
        ),
        None => format!("format:     none recorded (nodes are read under {folder}/)"),
    });
    if !cairn.strategy().supported_by(caps) {
        lines.push("warning:    this store no longer supports the recorded protocol".into());
    }
    let probed = Strategy::for_capabilities(caps);
    if probed == cairn.strategy() {
        lines.push(format!("because:    {}", caps.reason()));
    } else {
        lines.push(format!(
            "probe:      {} ({probed} for a new prefix)",
            caps.reason()
        ));
    }
    lines.push(format!(
        "round trip: {:.1} ms (median of the probe's requests)",
        caps.round_trip.as_secs_f64() * 1e3
    ));
    let verdict = if clock.within_bound {
        "within"
    } else {
        "BEYOND"
    };
    lines.push(format!(
        "clock:      {offset}: {verdict} the {} s bound{}",
        time.max_offset().as_secs_f64(),
        if clock.within_bound {
            ""
        } else {
            " (this node takes over no lease by expiry, claims no turn and ages no node until \
             its clock is corrected)"
        }
    ));
    lines.push(format!(
        "warning:    lifecycle rules not checked (the bucket's lifecycle configuration cannot \
         be read through object_store); {LIFECYCLE_GUIDANCE}"
    ));
    let text: String = lines
        .iter()
        .map(|l| format!("{}\n", output::text(l)))
        .collect();
    output::print(&text)
}
