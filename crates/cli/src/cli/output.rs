//! How the command line prints: JSON lines for machines (`--json`), and for people tables
//! sized to their content, timestamps in RFC 3339 to the millisecond and durations as they
//! would be written (`5m ± 30s`).
//!
//! Every JSON value a command prints goes through [`json`]: one line, with every
//! floating-point figure rounded to three decimals (`0.402`, not `0.4021934000000001`).
//! Timestamps in JSON are RFC 3339 in UTC as chrono writes them (to the nanosecond).
//!
//! # Writing
//!
//! Everything on stdout goes through [`print()`] (or [`json`]), which returns
//! [`Failure::Output`](super::Failure::Output) when stdout cannot be written (a pipe whose
//! reader exited, a terminal that hung up) instead of panicking as `println!` does: a command
//! that holds a lock releases it and ends cleanly. Rust ignores SIGPIPE, so a closed pipe is
//! such an error, not a signal. Messages for people go to stderr through `say!`
//! ([`stderr_line`]), which never panics (a stderr nobody reads loses the message, nothing
//! else).
//!
//! # Stored text
//!
//! Any node that may write under the prefix can store any string: a holder or node name,
//! a stream's metadata, a turn's outcome. Text output never passes one to the terminal
//! raw: [`text`] escapes control characters (C0, DEL, C1 — so ANSI and OSC escape
//! sequences and line breaks — and Unicode line separators and bidirectional overrides),
//! and [`name`] also marks a name that breaks [`Name`]'s rules, as the store never should
//! hold one. [`table`] and [`Labelled`] escape every cell and value they are given; JSON
//! output is escaped by JSON itself.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{presets::NOTHING, CellAlignment, Table};
use serde::Serialize;

use super::Result;
use cairn::manifest::listing::{Entry, Unreadable};
use cairn::Name;

/// Decimals kept in printed floating-point figures.
const DECIMALS: i32 = 3;

/// `value` as one line of JSON, its fields in declaration order and its floats rounded to
/// three decimals.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Rounding);
    match value.serialize(&mut ser) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        // Only a map with non-string keys fails here, and no printed type has one.
        Err(e) => serde_json::json!({ "error": format!("cannot print as JSON: {e}") }).to_string(),
    }
}

/// Prints `value` as one line of JSON on stdout (see [`json_line`]);
/// [`Failure::Output`](super::Failure::Output) when stdout cannot be written.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    print(&format!("{}\n", json_line(value)))
}

/// Writes `text` to stdout as it is, and flushes; [`Failure::Output`](super::Failure::Output)
/// when stdout cannot be written (see the module docs).
pub fn print(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(super::Failure::Output)
}

/// [`print()`] of `text` and a line break.
pub fn line(text: &str) -> Result<()> {
    print(&format!("{text}\n"))
}

/// Writes one line to stderr, ignoring a stderr that cannot be written. Use `say!`. A
/// message may quote stored text (a holder in a loss reason, an error from the store): it
/// is [`text`]-escaped, each of its own lines apart, so that no escape sequence reaches the
/// terminal; messages that quote a stored name escape its line breaks too ([`name`]).
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let message = args.to_string();
    let escaped: Vec<Cow<'_, str>> = message.split('\n').map(text).collect();
    // One write of the whole line: stderr is unbuffered, and `writeln!` would send the text
    // and its line break apart, so that another process writing to the same stderr (the
    // guard, COMMAND) could land between them.
    let mut line = escaped.join("\n");
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `eprintln!` that never panics: a line for people on stderr, lost if stderr is closed.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::stderr_line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Whether `c` must not reach a terminal raw: a control character (C0, DEL, C1) or a
/// character that moves or reorders text (line and paragraph separators, bidirectional
/// marks, embeddings, overrides and isolates).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `s` fit for a terminal: every control character (C0, DEL, C1) and every character
/// that moves or reorders text written as its Rust escape (`\n`, `\t`, `\u{1b}`,
/// `\u{9b}`), everything else as it is. One line, and no escape sequence can reach the
/// terminal. The one escaping function of text output.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "{}", c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A name read from the store (a holder, a node, a writer), for text output: as it is when
/// it passes [`Name`]'s rules, as every name cairn writes does; otherwise [`text`]-escaped,
/// quoted and marked `(invalid name)`, so that nobody takes it for a real node.
pub fn name(s: &str) -> Cow<'_, str> {
    if Name::new(s).is_ok() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(format!("\"{}\" (invalid name)", text(s)))
}

/// Labelled lines (`holder:       node-1`), the labels padded to one width and every value
/// [`text`]-escaped.
pub struct Labelled {
    width: usize,
    out: String,
}

impl Labelled {
    /// No lines yet; labels padded to `width` characters.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            out: String::new(),
        }
    }

    /// Adds `label` and `value`, escaped.
    pub fn line(&mut self, label: &str, value: impl std::fmt::Display) {
        let value = value.to_string();
        let _ = writeln!(self.out, "{label:<w$}{}", text(&value), w = self.width);
    }

    /// The lines, each ending in a line break.
    pub fn finish(self) -> String {
        self.out
    }
}

/// serde_json's compact output, with every float rounded to [`DECIMALS`] decimals as it is
/// written. (Non-finite floats never reach it: serde_json writes them as `null`.)
struct Rounding;

impl serde_json::ser::Formatter for Rounding {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f64) -> std::io::Result<()> {
        serde_json::ser::CompactFormatter.write_f64(w, round(v))
    }

    fn write_f32<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f32) -> std::io::Result<()> {
        serde_json::ser::CompactFormatter.write_f64(w, round(f64::from(v)))
    }
}

/// `x` rounded to `DECIMALS` (3) decimals.
pub fn round(x: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    let r = (x * scale).round() / scale;
    if r.is_finite() {
        r
    } else {
        x
    }
}

/// A timestamp for people: RFC 3339, UTC, to the millisecond (`2025-01-31T09:30:00.125Z`).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A duration for people: `250ms`, `1.5s`, `30s`, `5m`, `1h30m`, `2d3h`. Whole seconds
/// beyond a minute; zero is `0s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return if ms == 0 {
            "0s".into()
        } else {
            format!("{ms}ms")
        };
    }
    if ms < 60_000 {
        // Tenths, rounded; `6s`, not `6.0s`, for 6001ms (a node's timeout with its latency).
        let tenths = (ms + 50) / 100;
        return if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let s = d.as_secs();
    let parts = [
        (s / 86_400, "d"),
        (s % 86_400 / 3600, "h"),
        (s % 3600 / 60, "m"),
        (s % 60, "s"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// [`duration`] of a count of milliseconds.
pub fn millis(ms: u64) -> String {
    duration(Duration::from_millis(ms))
}

/// What a listing command prints: the items as one JSON array (a line), or a [`table`] of
/// `header` with one row per item. An entry that could not be read is a row that says
/// `unreadable` in the second column and `KEY: why` in the last (in JSON an object
/// `{"name": …, "unreadable": {"key": …, "error": …}}` in its place), and is counted.
pub fn entries<T: Serialize>(
    items: &[Entry<T>],
    json: bool,
    header: &[&str],
    right: &[usize],
    row: impl Fn(&T) -> Vec<String>,
) -> super::ops::Shown {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Item<'a, T> {
        Read(&'a T),
        Unreadable {
            name: &'a str,
            unreadable: &'a Unreadable,
        },
    }
    let unreadable = items.iter().filter(|e| e.is_err()).count();
    let text = if json {
        let all: Vec<Item<'_, T>> = items
            .iter()
            .map(|e| match e {
                Ok(t) => Item::Read(t),
                Err(u) => Item::Unreadable {
                    name: &u.name,
                    unreadable: u,
                },
            })
            .collect();
        super::ops::json_frame(&all)
    } else {
        let rows = items
            .iter()
            .map(|e| match e {
                Ok(t) => row(t),
                Err(u) => unreadable_row(u, header.len()),
            })
            .collect();
        table(header, rows, right)
    };
    super::ops::Shown { text, unreadable }
}

/// The row of an entry that could not be read: its name, `unreadable`, `-` in the columns
/// between, and `KEY: why` in the last.
fn unreadable_row(u: &Unreadable, columns: usize) -> Vec<String> {
    let mut r = vec![name(&u.name).into_owned(), "unreadable".into()];
    while r.len() < columns.saturating_sub(1) {
        r.push("-".into());
    }
    r.push(format!("{}: {}", u.key, u.error));
    r.truncate(columns.max(1));
    r
}

/// A table for people: a header row and columns as wide as their widest cell, two spaces
/// apart, no borders, no trailing spaces, never wrapped. Columns whose index is in `right`
/// are right-aligned (numbers).
pub fn table(header: &[&str], rows: Vec<Vec<String>>, right: &[usize]) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header.to_vec());
    for r in rows {
        // Cells hold stored strings: escaped, so that none reaches the terminal raw.
        t.add_row(r.iter().map(|c| text(c).into_owned()).collect::<Vec<_>>());
    }
    let last = header.len().saturating_sub(1);
    for (i, c) in t.column_iter_mut().enumerate() {
        c.set_padding((0, if i == last { 0 } else { 2 }));
        if right.contains(&i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_rounded_and_integers_kept() {
        #[derive(Serialize)]
        struct T {
            z: f64,
            b: Vec<f64>,
            a: u64,
            n: f64,
        }
        let t = T {
            z: 0.4021934000000001,
            b: vec![1.00049, 7.0],
            a: u64::MAX,
            n: f64::NAN,
        };
        // Fields stay in declaration order.
        assert_eq!(
            json_line(&t),
            format!(r#"{{"z":0.402,"b":[1.0,7.0],"a":{},"n":null}}"#, u64::MAX)
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(millis(0), "0s");
        assert_eq!(millis(250), "250ms");
        assert_eq!(millis(1500), "1.5s");
        assert_eq!(millis(6001), "6s");
        assert_eq!(millis(6049), "6s");
        assert_eq!(millis(6050), "6.1s");
        assert_eq!(millis(59_990), "60s");
        assert_eq!(millis(30_000), "30s");
        assert_eq!(millis(300_000), "5m");
        assert_eq!(millis(5_400_000), "1h30m");
        assert_eq!(millis(97_200_000), "1d3h");
        assert_eq!(
            format!("{} ± {}", millis(300_000), millis(30_000)),
            "5m ± 30s"
        );
    }

    #[test]
    fn stored_text_reaches_the_terminal_escaped_and_invalid_names_marked() {
        assert_eq!(text("node-1 {\"a\": 1} é"), "node-1 {\"a\": 1} é");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        assert_eq!(
            text("\u{1b}]52;c;eA==\u{7}\n released\r\t\u{7f}\u{9b}2J\u{202e}"),
            "\\u{1b}]52;c;eA==\\u{7}\\n released\\r\\t\\u{7f}\\u{9b}2J\\u{202e}"
        );
        // Escaping what is escaped already changes nothing.
        let once = text("a\u{1b}b").into_owned();
        assert_eq!(text(&once), once);
        assert_eq!(name("node-1"), "node-1");
        assert_eq!(name("a\nb"), "\"a\\nb\" (invalid name)");
        assert_eq!(name("has space"), "\"has space\" (invalid name)");
        let t = table(&["H"], vec![vec!["x\ny".into()]], &[]);
        assert_eq!(t, "H\nx\\ny\n");
        let mut l = Labelled::new(7);
        l.line("holder:", "a\u{1b}[2Jb");
        assert_eq!(l.finish(), "holder:a\\u{1b}[2Jb\n");
    }

    #[test]
    fn times_are_rfc3339_to_the_millisecond() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        assert_eq!(time(t), "2027-01-15T08:00:00.123Z");
    }

    #[test]
    fn table_columns_sit_under_their_headers_whatever_the_width() {
        let long = "a-very-long-host-name.example.internal-12345";
        let out = table(
            &["NAME", "HOLDER", "TOKEN"],
            vec![
                vec!["x".into(), long.into(), "7".into()],
                vec!["yy".into(), "b".into(), "12".into()],
            ],
            &[2],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let col = |l: &str, what: &str| l.find(what).unwrap();
        assert_eq!(col(lines[0], "HOLDER"), col(lines[1], long));
        assert_eq!(col(lines[0], "HOLDER"), col(lines[2], "b"));
        // Right-aligned numbers end where the header ends.
        let end = |l: &str, what: &str| l.rfind(what).unwrap() + what.len();
        assert_eq!(end(lines[0], "TOKEN"), end(lines[1], "7"));
        assert_eq!(end(lines[0], "TOKEN"), end(lines[2], "12"));
        assert!(out.lines().all(|l| !l.ends_with(' ')));
    }
}
