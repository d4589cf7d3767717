//! The command line's log lines on stderr: what `CAIRN_LOG` shows, and no warning repeated
//! line after line while the store is down.
//!
//! `CAIRN_LOG` takes tracing's filter directives. A bare level (`debug`, `info`) applies to
//! cairn alone: dependencies (hyper, reqwest, aws-config, object_store) stay at `warn`,
//! unless the level is `trace`, or a directive names them (`CAIRN_LOG=debug,hyper=debug`).
//! Default: `warn`.
//!
//! A warning identical to one printed less than [`REPEAT_WINDOW`] ago is not printed again;
//! the next one printed after the window says how many were held back.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// An identical warning is printed at most once in this time.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// At most this many distinct warnings are remembered; older ones are forgotten first.
const REMEMBERED: usize = 256;

/// Installs the stderr logger. Call once, first thing.
pub fn init() {
    let spec = std::env::var("CAIRN_LOG").ok();
    let (filter, bad) = match EnvFilter::try_new(directives(spec.as_deref())) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(directives(None)), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .event_format(Repeats::new(format::Format::default()))
        .init();
    if let Some(e) = bad {
        tracing::warn!("CAIRN_LOG {:?} ignored: {e}", spec.unwrap_or_default());
    }
}

/// The filter directives for a `CAIRN_LOG` value: bare levels scoped to cairn, dependencies
/// at `warn` (quieter when cairn is asked to be quieter; everything at `trace`), and any
/// directive that names a target kept as written.
pub fn directives(spec: Option<&str>) -> String {
    let spec = spec
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("warn");
    let mut dependencies = LevelFilter::WARN;
    let mut out = Vec::new();
    for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.parse::<LevelFilter>() {
            Ok(level) => {
                dependencies = if level == LevelFilter::TRACE {
                    LevelFilter::TRACE
                } else {
                    level.min(LevelFilter::WARN)
                };
                out.push(format!("cairn={level}"));
            }
            Err(_) => out.push(d.to_string()),
        }
    }
    out.insert(0, dependencies.to_string().to_lowercase());
    out.join(",")
}

/// An event formatter that holds back warnings (and errors) identical to one printed less
/// than [`REPEAT_WINDOW`] ago. Identical: the same level, target, spans and fields.
pub struct Repeats<F> {
    inner: F,
    key: Format<Full, ()>,
    seen: Mutex<HashMap<String, Seen>>,
}

struct Seen {
    shown_at: Instant,
    held_back: u64,
}

impl<F> Repeats<F> {
    /// Wraps the formatter that prints.
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            key: format::Format::default().without_time().with_ansi(false),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `None`: hold this one back. `Some(n)`: print it, `n` identical ones were held back.
    fn admit(&self, key: String, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = seen.get_mut(&key) {
            if now.saturating_duration_since(s.shown_at) < REPEAT_WINDOW {
                s.held_back += 1;
                return None;
            }
            let held = s.held_back;
            *s = Seen {
                shown_at: now,
                held_back: 0,
            };
            return Some(held);
        }
        if seen.len() >= REMEMBERED {
            seen.retain(|_, s| now.saturating_duration_since(s.shown_at) < REPEAT_WINDOW);
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(
            key,
            Seen {
                shown_at: now,
                held_back: 0,
            },
        );
        Some(0)
    }
}

impl<S, N, F> FormatEvent<S, N> for Repeats<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if *event.metadata().level() > Level::WARN {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut key = String::new();
        self.key.format_event(ctx, Writer::new(&mut key), event)?;
        match self.admit(key, Instant::now()) {
            None => Ok(()),
            Some(0) => self.inner.format_event(ctx, writer, event),
            Some(held) => {
                let mut line = String::new();
                self.inner
                    .format_event(ctx, Writer::new(&mut line), event)?;
                let line = line.trim_end_matches('\n');
                let times = if held == 1 { "time" } else { "times" };
                writeln!(
                    writer,
                    "{line} (held back {held} more {times} in the last {}s)",
                    REPEAT_WINDOW.as_secs()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_is_scoped_to_cairn() {
        assert_eq!(directives(None), "warn,cairn=warn");
        assert_eq!(directives(Some("debug")), "warn,cairn=debug");
        assert_eq!(directives(Some(" info ")), "warn,cairn=info");
        assert_eq!(directives(Some("error")), "error,cairn=error");
        assert_eq!(directives(Some("trace")), "trace,cairn=trace");
    }

    #[test]
    fn a_named_dependency_is_kept_as_written() {
        assert_eq!(
            directives(Some("debug,hyper=debug")),
            "warn,cairn=debug,hyper=debug"
        );
        assert_eq!(
            directives(Some("cairn::lock=trace")),
            "warn,cairn::lock=trace"
        );
    }

    #[test]
    fn an_identical_warning_is_held_back_within_the_window_then_counted() {
        let r = Repeats::new(());
        let t0 = Instant::now();
        assert_eq!(r.admit("a".into(), t0), Some(0));
        assert_eq!(r.admit("a".into(), t0 + Duration::from_secs(1)), None);
        assert_eq!(r.admit("b".into(), t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(r.admit("a".into(), t0 + Duration::from_secs(29)), None);
        assert_eq!(r.admit("a".into(), t0 + REPEAT_WINDOW), Some(2));
        assert_eq!(r.admit("a".into(), t0 + REPEAT_WINDOW), None);
    }
}
