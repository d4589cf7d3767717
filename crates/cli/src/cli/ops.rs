//! The operator's verbs: `cairn gc`, `cairn node forget`, `cairn record delete` (the only
//! commands that delete objects, so the only ones that need `s3:DeleteObject`), `cairn
//! status`, and `--watch` on the listing commands.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use serde::Serialize;

use super::args::GcArgs;
use super::child::Signals;
use super::output::say;
use super::Result;
use super::{exit, output};
use cairn::error::Error;
use cairn::gc::{GcOptions, GcReport};
use cairn::node::{Forget, Nodes};
use cairn::record::{Delete, Records};
use cairn::{Cairn, Name};

/// Parses `--log-before TOPIC:SEQ`.
pub fn log_before(s: &str) -> cairn::Result<(Name, u64)> {
    let bad = || {
        Error::Config(format!(
            "--log-before {s:?}: expected TOPIC:SEQ, e.g. audit:1000 (entries below 1000 go)"
        ))
    };
    let (topic, seq) = s.rsplit_once(':').ok_or_else(bad)?;
    let seq = seq.parse::<u64>().map_err(|_| bad())?;
    Ok((Name::new(topic)?, seq))
}

/// `cairn gc`.
pub async fn gc(cairn: &Cairn, a: &GcArgs, json: bool) -> Result<i32> {
    let options = GcOptions {
        released_older_than: a.released_older_than,
        left_older_than: a.left_older_than,
        log_before: a
            .log_before
            .iter()
            .map(|l| log_before(l))
            .collect::<cairn::Result<_>>()?,
        dry_run: a.dry_run,
    };
    let report = cairn::gc::collect(cairn.manifests(), &cairn.event_log(), &options).await?;
    if json {
        output::json(&report)?;
    } else {
        output::print(&gc_text(&report))?;
        for s in &report.skipped {
            say!(
                "cairn: left alone (unreadable): {}: {}",
                output::text(&s.key),
                output::text(&s.reason)
            );
        }
    }
    Ok(exit::OK)
}

fn gc_text(r: &GcReport) -> String {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    if r.collected.is_empty() {
        return format!(
            "nothing to delete{}\n",
            if r.dry_run { " (dry run)" } else { "" }
        );
    }
    let rows = r
        .collected
        .iter()
        .map(|c| {
            let note = match (c.what, c.version) {
                ("released-lock", Some(v)) => format!("tombstone kept: token {v}"),
                ("deleted-record", Some(v)) => format!("tombstone kept: version {v}"),
                ("log", Some(v)) => format!("entries up to {v}"),
                _ => String::new(),
            };
            vec![
                c.what.to_string(),
                c.name.clone(),
                c.objects.to_string(),
                note,
            ]
        })
        .collect();
    let objects = if r.objects == 1 { "object" } else { "objects" };
    format!(
        "{verb} {} {objects}{}\n{}",
        r.objects,
        if r.dry_run { " (dry run)" } else { "" },
        output::table(&["WHAT", "NAME", "OBJECTS", ""], rows, &[2])
    )
}

/// `cairn node forget`.
pub async fn node_forget(members: &Nodes, node: &str, force: bool, json: bool) -> Result<i32> {
    let outcome = members.forget(&Name::new(node)?, force, false).await?;
    let (code, shape, text) = match &outcome {
        Forget::Forgotten { status, objects } => (
            exit::OK,
            serde_json::json!({ "outcome": "forgotten", "node": node, "objects": objects,
                                "health": status.health, "left": status.left }),
            format!("forgot node {node} ({objects} objects deleted)"),
        ),
        Forget::Refused(status) => (
            exit::LOCK_BUSY,
            serde_json::json!({ "outcome": "refused", "node": node, "health": status.health,
                                "age_ms": status.age_ms }),
            format!(
                "node {node} is {} (heartbeat {} ago); not forgotten (--force removes it anyway)",
                format!("{:?}", status.health).to_lowercase(),
                output::millis(status.age_ms)
            ),
        ),
        Forget::Changed => (
            exit::LOCK_BUSY,
            serde_json::json!({ "outcome": "changed", "node": node }),
            format!("node {node} heartbeated while being forgotten; left alone"),
        ),
        Forget::NotFound => (
            exit::NOT_FOUND,
            serde_json::json!({ "outcome": "not-found", "node": node }),
            format!("no node {node}"),
        ),
    };
    if json {
        output::json(&shape)?;
    } else if code == exit::OK {
        output::line(&text)?;
    } else {
        say!("cairn: {text}");
    }
    Ok(code)
}

/// `cairn record delete`.
pub async fn record_delete(r: &Records, namespace: &str, key: &str, json: bool) -> Result<i32> {
    let outcome = r.delete(&Name::new(namespace)?, &Name::new(key)?).await?;
    if json {
        output::json(&outcome)?;
    }
    Ok(match outcome {
        Delete::Deleted { version } => {
            if !json {
                output::line(&format!(
                    "deleted {namespace}/{key} (tombstone keeps version {version})"
                ))?;
            }
            exit::OK
        }
        Delete::AlreadyDeleted { version } => {
            if !json {
                output::line(&format!(
                    "{namespace}/{key} was deleted already (at version {version})"
                ))?;
            }
            exit::OK
        }
        Delete::NotFound => {
            if !json {
                say!("cairn: no record {namespace}/{key}");
            }
            exit::NOT_FOUND
        }
    })
}

/// One snapshot of a listing: its text (or one JSON line), and how many of its entries could
/// not be read (each shown in its place).
#[derive(Debug, Clone, Default)]
pub struct Shown {
    /// What is printed.
    pub text: String,
    /// Entries that could not be read.
    pub unreadable: usize,
}

impl From<String> for Shown {
    fn from(text: String) -> Self {
        Self {
            text,
            unreadable: 0,
        }
    }
}

/// One snapshot of a listing.
pub type Frame = Result<Shown>;

/// What is said on stderr after a frame with `n` unreadable entries.
fn unreadable_note(n: usize) -> String {
    let entries = if n == 1 { "entry" } else { "entries" };
    format!("cairn: {n} {entries} could not be read (shown in place, with the key and why)")
}

/// Prints `frame()` once, or with `watch` every `interval` until SIGINT or SIGTERM (then
/// exit 0). On a terminal each refresh redraws the screen in place under a header line;
/// elsewhere each is printed after a `# <time>` header line and followed by a blank line,
/// and under `--json` each is one JSON line and nothing else. A refresh that fails is
/// reported (on stderr off a terminal) and the next one tried: a dashboard outlives an
/// outage. Without `watch`, a failure is the command's error. A stdout that cannot be
/// written ends the command ([`Failure::Output`](super::Failure::Output)), watching or not.
pub async fn show<F, Fut>(
    title: &str,
    watch: Option<Duration>,
    json: bool,
    mut frame: F,
) -> Result<i32>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Frame>,
{
    let Some(interval) = watch else {
        let shown = frame().await?;
        output::print(&shown.text)?;
        if shown.unreadable > 0 {
            say!("{}", unreadable_note(shown.unreadable));
            return Ok(exit::UNREADABLE);
        }
        return Ok(exit::OK);
    };
    let mut signals = Signals::install()?;
    let tty = !json && std::io::stdout().is_terminal();
    loop {
        let got = tokio::select! {
            f = frame() => f,
            _ = signals.recv() => break,
        };
        let now = output::time(chrono::Utc::now());
        if let Ok(s) = &got {
            if s.unreadable > 0 && !tty {
                say!("{}", unreadable_note(s.unreadable));
            }
        }
        let printed = match got.map(|s| s.text) {
            Ok(text) if tty => {
                // Home, clear the screen, then the frame: one write, so it does not flicker.
                let header = format!("{title}  (every {})", output::duration(interval));
                let (cols, rows) = match ratatui::crossterm::terminal::size() {
                    Ok((c, r)) if c > 0 && r > 0 => (c, r),
                    _ => (80, 24), // a terminal that does not say its size
                };
                let screen = format!("{}\n\n{text}", header_line(&header, &now, cols.into()));
                output::print(&format!(
                    "\x1b[H\x1b[2J{}",
                    fit_screen(&screen, cols.into(), rows.into())
                ))
            }
            Ok(text) if json => output::print(&text),
            Ok(text) => output::print(&format!("# {now}\n{text}\n")),
            Err(e) if tty => output::print(&format!(
                "\x1b[H\x1b[2J{title}  {now}\n\ncairn: {}\n",
                output::text(&super::with_hint(&e))
            )),
            Err(e) => {
                say!("cairn: {now}: {}", output::text(&super::with_hint(&e)));
                Ok(())
            }
        };
        printed?;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = signals.recv() => break,
        }
    }
    Ok(exit::OK)
}

/// `left` and `right` on one line of at most `width` columns (right-aligned when it fits).
fn header_line(left: &str, right: &str, width: usize) -> String {
    let gap = width.saturating_sub(left.chars().count() + right.chars().count());
    if gap >= 2 {
        format!("{left}{}{right}", " ".repeat(gap))
    } else {
        format!("{left}  {right}")
    }
}

/// `screen` cut to a terminal of `cols` × `rows`: a redraw in place must not wrap or
/// scroll, or the next one leaves the top of this one behind. Lines longer than the width
/// end in `…`; lines below the last row are replaced by one saying how many were cut.
fn fit_screen(screen: &str, cols: usize, rows: usize) -> String {
    let cols = cols.max(10);
    let rows = rows.max(3);
    let lines: Vec<&str> = screen.lines().collect();
    let mut out = String::new();
    // The last row stays empty: a newline there would scroll the screen.
    let room = rows - 1;
    let cut = lines.len() > room;
    let shown = if cut { room - 1 } else { lines.len() };
    for l in &lines[..shown] {
        if l.chars().count() > cols {
            out.extend(l.chars().take(cols - 1));
            out.push('…');
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if cut {
        out.push_str(&format!(
            "… {} more lines (a taller window shows them)\n",
            lines.len() - shown
        ));
    }
    out
}

/// A value as one JSON line (a frame under `--json`).
pub fn json_frame<T: Serialize + ?Sized>(v: &T) -> String {
    format!("{}\n", output::json_line(v))
}

#[cfg(test)]
mod tests {
    use super::fit_screen;

    #[test]
    fn a_redrawn_screen_never_wraps_or_scrolls() {
        let screen = "header\n\n0123456789abcdef\nshort\nthree\nfour\n";
        assert_eq!(
            fit_screen(screen, 10, 24),
            "header\n\n012345678…\nshort\nthree\nfour\n"
        );
        assert_eq!(
            fit_screen(screen, 80, 5),
            "header\n\n0123456789abcdef\n… 3 more lines (a taller window shows them)\n"
        );
    }
}
