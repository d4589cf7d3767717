//! `cairn protocol recreate`: the operator's repair of a deleted protocol record.

use serde::Serialize;

use super::exit;
use super::Result;
use cairn::store::protocol::ProtocolRecord;
use cairn::CairnBuilder;

#[derive(Serialize)]
struct Report<'a> {
    store: &'a str,
    strategy: String,
    /// Whether this command wrote the record (else it existed, or another node wrote it
    /// first).
    recreated: bool,
    protocol: Option<&'a ProtocolRecord>,
}

/// Re-creates the protocol record of the prefix at `url` (opened by `builder`) where there
/// is none, with the strategy the objects present show (or `--strategy`, which they must not
/// contradict).
pub async fn recreate(builder: CairnBuilder, url: &str, json: bool) -> Result<i32> {
    let cairn = builder.recreate_protocol().build().await?;
    let p = cairn.protocol();
    let recreated = match (p, cairn.capabilities()) {
        (Some(p), Some(_)) => p.created_by == cairn.node().as_str(),
        _ => false,
    };
    if json {
        super::output::json(&Report {
            store: url,
            strategy: cairn.strategy().to_string(),
            recreated,
            protocol: p,
        })?;
        return Ok(exit::OK);
    }
    // The format too: it says which builds may coordinate here (format 2 locks builds of
    // format 1 out), and where nodes heartbeat.
    let by = p.map_or(String::new(), |p| {
        format!(
            ", format {} (nodes under {}/; recorded by {} at {})",
            p.format,
            p.node_family().folder(),
            super::output::name(&p.created_by),
            super::output::time(p.created_at)
        )
    });
    if recreated {
        super::output::line(&format!("recreated:  {}{by}", cairn.strategy()))?;
    } else {
        super::output::line(&format!(
            "exists:     {}{by}; nothing to re-create",
            cairn.strategy()
        ))?;
    }
    Ok(exit::OK)
}
