//! The live terminal view of `cairn fleet`: nodes and their health, the lock holder and its
//! fencing token, the turns and who ran them, the streams and who created them, counters and
//! the latest events. Everything shown is derived from the harness's history, redrawn five
//! times a second; it reads at 80 columns. While it is up, cairn's own log lines (stderr) go
//! to a file, so they cannot tear the screen.

use std::collections::BTreeMap;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event as Key, KeyCode, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use super::Result;
use cairn_drivers::fleet::history::{Event, History, What};
use cairn_drivers::fleet::{Ops, Report};

/// Shows the run until it ends (`Some(report)`) or the user quits with `q` / Ctrl-C (`None`).
pub async fn show(
    header: &str,
    history: &History,
    duration: Duration,
    mut task: tokio::task::JoinHandle<cairn::Result<Report>>,
) -> Result<Option<Report>> {
    let log = std::env::temp_dir().join(format!("cairn-fleet-{}.log", std::process::id()));
    let _stderr = StderrTo::file(&log);
    let mut terminal = ratatui::init();
    let result = loop {
        let model = Model::of(&history.events());
        let _ = terminal.draw(|f| draw(f, header, &model, history.elapsed(), duration));
        if quit_pressed() {
            task.abort();
            break None;
        }
        tokio::select! {
            r = &mut task => break Some(r),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    ratatui::restore();
    drop(_stderr);
    match result {
        None => Ok(None),
        Some(r) => {
            let r =
                r.map_err(|e| cairn::Error::Config(format!("the fleet task failed: {e}")))??;
            Ok(Some(r))
        }
    }
}

fn quit_pressed() -> bool {
    while event::poll(Duration::ZERO).unwrap_or(false) {
        if let Ok(Key::Key(k)) = event::read() {
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if ctrl_c || k.code == KeyCode::Char('q') || k.code == KeyCode::Esc {
                return true;
            }
        }
    }
    false
}

/// fd 2 pointed at a file while the view is up; restored on drop.
struct StderrTo {
    saved: i32,
}

impl StderrTo {
    fn file(path: &std::path::Path) -> Option<Self> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::create(path).ok()?;
        // SAFETY: dup/dup2 on valid descriptors; `saved` is restored and closed on drop.
        unsafe {
            let saved = libc::dup(2);
            if saved < 0 || libc::dup2(f.as_raw_fd(), 2) < 0 {
                return None;
            }
            Some(Self { saved })
        }
    }
}

impl Drop for StderrTo {
    fn drop(&mut self) {
        // SAFETY: restores the descriptor saved in `file`.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
    }
}

#[derive(Default)]
struct NodeRow {
    who: String,
    state: &'static str,
    health: String,
    age_ms: u64,
    skew_ms: i64,
    turns: u64,
    created: u64,
}

#[derive(Default)]
struct Model {
    strategy: String,
    nodes: BTreeMap<String, NodeRow>,
    holder: Option<(String, u64, f64)>,
    acquisitions: u64,
    refused_writes: u64,
    breaks: u64,
    turns: BTreeMap<u64, (String, String)>,
    streams: BTreeMap<String, (String, u64)>,
    kills: u64,
    misfits: Vec<String>,
    recent: Vec<String>,
    ops: Ops,
    now_ms: f64,
}

impl Model {
    fn of(events: &[Event]) -> Self {
        let mut m = Model {
            ops: Ops::of(events),
            ..Model::default()
        };
        for e in events {
            m.now_ms = e.at_ms;
            let is_node = e.node.starts_with("node-");
            match &e.what {
                What::Started { strategy, skew_ms } => {
                    m.strategy = strategy.clone();
                    if is_node {
                        let r = row(&mut m.nodes, &e.node);
                        r.who = e.who();
                        r.state = "up";
                        r.skew_ms = *skew_ms;
                    }
                }
                What::Killed if is_node => {
                    m.kills += 1;
                    let r = row(&mut m.nodes, &e.node);
                    r.state = "KILLED";
                    if m.holder.as_ref().is_some_and(|h| h.0 == e.who()) {
                        m.holder = None;
                    }
                }
                What::Killed => m.kills += 1,
                What::Left if is_node => row(&mut m.nodes, &e.node).state = "left",
                What::Health {
                    of, health, age_ms, ..
                } if of.starts_with("node-") => {
                    let r = row(&mut m.nodes, of);
                    r.health = health.clone();
                    r.age_ms = *age_ms;
                }
                What::Acquired { token, .. } => {
                    m.acquisitions += 1;
                    m.holder = Some((e.who(), *token, e.at_ms));
                }
                What::Releasing { .. } | What::LockLost { .. }
                    if m.holder.as_ref().is_some_and(|h| h.0 == e.who()) =>
                {
                    m.holder = None;
                }
                What::Guarded {
                    accepted: false, ..
                } => m.refused_writes += 1,
                What::Broken { .. } => m.breaks += 1,
                What::TurnRun { number, .. } => {
                    m.turns.insert(*number, (e.who(), "running".into()));
                    if is_node {
                        row(&mut m.nodes, &e.node).turns += 1;
                    }
                }
                What::TurnFinished {
                    number, outcome, ..
                } => {
                    if let Some(t) = m.turns.get_mut(number) {
                        t.1 = outcome.clone();
                    }
                }
                What::StreamCreate {
                    stream,
                    outcome,
                    created_by,
                    ..
                } => {
                    let s = m
                        .streams
                        .entry(stream.clone())
                        .or_insert_with(|| (created_by.clone(), 0));
                    s.0 = created_by.clone();
                    s.1 += 1;
                    if outcome == "created" && is_node {
                        row(&mut m.nodes, &e.node).created += 1;
                    }
                }
                What::Refused { config, .. } => m.misfits.push(format!("{config}: refused")),
                What::Accepted { config, .. } => m.misfits.push(format!("{config}: NOT refused")),
                _ => {}
            }
            if super::fleet::worth_a_line(e) && !matches!(e.what, What::Health { .. }) {
                m.recent.push(format!(
                    "{:>6.1}s {:<11} {}",
                    e.at_ms / 1000.0,
                    e.who(),
                    e.describe()
                ));
            }
        }
        let keep = m.recent.len().saturating_sub(12);
        m.recent.drain(..keep);
        m
    }
}

fn row<'a>(nodes: &'a mut BTreeMap<String, NodeRow>, n: &str) -> &'a mut NodeRow {
    nodes.entry(n.to_string()).or_insert_with(|| NodeRow {
        who: n.to_string(),
        state: "starting",
        ..NodeRow::default()
    })
}

fn health_style(h: &str) -> Style {
    match h {
        "online" => Style::default().fg(Color::Green),
        "suspect" => Style::default().fg(Color::Yellow),
        "offline" => Style::default().fg(Color::Red),
        _ => Style::default().fg(Color::DarkGray),
    }
}

fn draw(f: &mut Frame, header: &str, m: &Model, elapsed: Duration, duration: Duration) {
    let area = f.area();
    let skew_row = u16::from(m.nodes.values().any(|r| r.skew_ms != 0));
    let node_rows = (m.nodes.len() as u16 + 3 + skew_row).clamp(6, 14);
    let [title, top, streams, counters, events] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(node_rows),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Min(3),
    ])
    .areas(area);
    let secs = elapsed.as_secs_f64().min(duration.as_secs_f64());
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(
                    format!(
                        "cairn fleet  {secs:>4.1} s of {:.0} s",
                        duration.as_secs_f64()
                    ),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(
                    "  · {} · q quits",
                    if m.strategy.is_empty() {
                        "…"
                    } else {
                        &m.strategy
                    }
                )),
            ]),
            Line::from(Span::styled(
                header.to_string(),
                Style::default().fg(Color::DarkGray),
            )),
        ]),
        title,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Length(42), Constraint::Min(30)]).areas(top);
    draw_nodes(f, left, m);
    let [lock, turns] = Layout::vertical([Constraint::Length(4), Constraint::Min(3)]).areas(right);
    draw_lock(f, lock, m);
    draw_turns(f, turns, m);
    draw_streams(f, streams, m);
    draw_counters(f, counters, m);
    let lines: Vec<Line> = m.recent.iter().map(|l| Line::from(l.as_str())).collect();
    let skip = lines
        .len()
        .saturating_sub(events.height.saturating_sub(2) as usize);
    f.render_widget(
        Paragraph::new(lines[skip..].to_vec()).block(Block::bordered().title(" events ")),
        events,
    );
}

fn draw_nodes(f: &mut Frame, area: Rect, m: &Model) {
    let mut lines = vec![Line::from(Span::styled(
        "node      health   beat turns strms",
        Style::default().fg(Color::DarkGray),
    ))];
    for r in m.nodes.values() {
        let health = if r.health.is_empty() {
            "…"
        } else {
            r.health.as_str()
        };
        let holder = m.holder.as_ref().is_some_and(|h| h.0 == r.who);
        let (mark, mark_style) = match r.state {
            "KILLED" => (
                "dead",
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            "left" => ("left", Style::default().fg(Color::DarkGray)),
            _ if holder => (
                "LOCK",
                Style::default()
                    .fg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
            _ => ("", Style::default()),
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<9} ", r.who)),
            Span::styled(format!("{health:<7}"), health_style(&r.health)),
            Span::raw(format!(
                " {:>4.1}s {:>5} {:>5} ",
                r.age_ms as f64 / 1000.0,
                r.turns,
                r.created,
            )),
            Span::styled(mark, mark_style),
        ]));
    }
    let skewed: Vec<String> = m
        .nodes
        .values()
        .filter(|r| r.skew_ms != 0)
        .map(|r| {
            let n = r.who.trim_start_matches("node-");
            format!(
                "n{}{:+.1}s",
                &n[..n.find('#').unwrap_or(n.len())],
                r.skew_ms as f64 / 1000.0
            )
        })
        .collect();
    if !skewed.is_empty() {
        lines.push(Line::from(Span::styled(
            format!("clocks {}", skewed.join(" ")),
            Style::default().fg(Color::DarkGray),
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" nodes, as the querier sees them ")),
        area,
    );
}

fn draw_lock(f: &mut Frame, area: Rect, m: &Model) {
    let held = match &m.holder {
        Some((who, token, since)) => Line::from(vec![
            Span::styled(who.clone(), Style::default().fg(Color::Cyan)),
            Span::raw(format!(
                " holds it, token {token}, {:.1}s",
                (m.now_ms - since) / 1000.0
            )),
        ]),
        None => Line::from(Span::styled("free", Style::default().fg(Color::DarkGray))),
    };
    let stats = Line::from(format!(
        "{} acquired · {} stale refused{}",
        m.acquisitions,
        m.refused_writes,
        if m.breaks > 0 {
            format!(" · {} breaks", m.breaks)
        } else {
            String::new()
        }
    ));
    f.render_widget(
        Paragraph::new(vec![held, stats]).block(Block::bordered().title(" lock compaction ")),
        area,
    );
}

fn draw_turns(f: &mut Frame, area: Rect, m: &Model) {
    let room = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = m
        .turns
        .iter()
        .rev()
        .take(room)
        .map(|(n, (who, outcome))| Line::from(format!("#{n:<3} {who:<10} {outcome}")))
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" turns expiry (newest first) ")),
        area,
    );
}

fn draw_streams(f: &mut Frame, area: Rect, m: &Model) {
    let mut spans = Vec::new();
    for (name, (by, creators)) in m.streams.iter().rev() {
        let short_by = by.trim_start_matches("node-");
        spans.push(Span::raw(format!("{} ", name.trim_start_matches("logs-"))));
        spans.push(Span::styled(
            format!("n{short_by}"),
            Style::default().fg(Color::Cyan),
        ));
        if *creators > 1 {
            spans.push(Span::styled(
                format!("×{creators}"),
                Style::default().fg(Color::Yellow),
            ));
        }
        spans.push(Span::raw("  "));
    }
    f.render_widget(
        Paragraph::new(Line::from(spans))
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(format!(
                " {} streams logs-NNN: creator, ×racers (newest first) ",
                m.streams.len()
            ))),
        area,
    );
}

fn draw_counters(f: &mut Frame, area: Rect, m: &Model) {
    let get = |feature: &str, outcome: &str| {
        m.ops
            .by_feature
            .get(feature)
            .and_then(|o| o.get(outcome))
            .copied()
            .unwrap_or(0)
    };
    let l1 = format!(
        "records {} applied, {} stale refused · log {} appended · turns {} run",
        get("record", "applied"),
        get("record", "stale"),
        get("log", "appended"),
        get("turn", "ran"),
    );
    let mut l2 = format!(
        "streams {} created, {} found existing · kills {}",
        get("stream", "created"),
        get("stream", "exists"),
        m.kills
    );
    for x in &m.misfits {
        l2 += &format!(" · {x}");
    }
    f.render_widget(
        Paragraph::new(vec![Line::from(l1), Line::from(l2)])
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" counters ")),
        area,
    );
}
