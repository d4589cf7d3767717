//! Durations as people write them: plain seconds (`5`, `0.5`), a number with a unit
//! (`500ms`, `30s`, `5m`, `1h`, `2d`), or several of those (`1h30m`, `1m 30s`), parsed by
//! the `humantime` crate. `0` is zero.

use std::time::Duration;

/// Parses plain seconds (`5`, `0.5`) or a `humantime` duration (`30s`, `1h30m`, `1m 30s`).
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let n: f64 = t
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?;
        // Digits only: finite and not negative, so only too big to represent can fail,
        // and the range check then names the range.
        return Ok(Duration::try_from_secs_f64(n).unwrap_or(Duration::MAX));
    }
    match humantime::parse_duration(t) {
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Ok(Duration::MAX),
        Err(e) => Err(format!(
            "{s:?} is not a duration ({e}): write 30s, 5m, 1h30m, or plain seconds (5)"
        )),
    }
}

/// A parser for durations in `[min, max]`, whose error names the range.
fn ranged(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse(s)?;
    if d < min || d > max {
        return Err(format!(
            "{s:?} is out of range: allowed from {} to {}",
            show(min),
            show(max)
        ));
    }
    Ok(d)
}

/// A duration as the user would write it back: `500ms`, `30s`, `5m`, `24h`, `366d`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0".into(),
        ms if ms % 86_400_000 == 0 && ms > 86_400_000 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const YEAR: Duration = Duration::from_secs(366 * 24 * 3600);

/// `lock run --ttl`: 1 s (a renewal must fit in a third of it) to 24 h.
pub fn ttl(s: &str) -> Result<Duration, String> {
    ranged(s, SEC, cairn::lock::MAX_TTL)
}

/// `lock run --grace`: 0 to 1 h (and it must fit in the ttl, checked with it).
pub fn grace(s: &str) -> Result<Duration, String> {
    ranged(s, Duration::ZERO, HOUR)
}

/// `lock run --wait`: 0 (try once) to 366 days.
pub fn wait(s: &str) -> Result<Duration, String> {
    ranged(s, Duration::ZERO, YEAR)
}

/// `turn run --every`: 1 s to 366 days.
pub fn window(s: &str) -> Result<Duration, String> {
    ranged(s, SEC, cairn::turn::MAX_WINDOW)
}

/// `turn run --jitter`: 0 to 183 days (and at most half the window, checked with it).
pub fn jitter(s: &str) -> Result<Duration, String> {
    ranged(s, Duration::ZERO, cairn::turn::MAX_WINDOW / 2)
}

/// Heartbeat and polling intervals: 100 ms to 1 h.
pub fn interval(s: &str) -> Result<Duration, String> {
    ranged(s, 100 * MS, HOUR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_write() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(2 * 86400));
        for bad in [
            "", "s", "3x", "-1s", "-1", "1..2s", "1.2.3", "nan", "inf", "5 apples",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absurd_durations_are_refused_with_the_allowed_range() {
        assert_eq!(
            ttl("0").unwrap_err(),
            "\"0\" is out of range: allowed from 1s to 24h"
        );
        assert!(ttl("3000000000h").unwrap_err().contains("out of range"));
        assert!(interval("0s").unwrap_err().contains("from 100ms to 1h"));
        assert!(window("0").is_err());
        assert!(window("3000000000h").is_err());
        assert!(wait("1h30m").is_ok());
        assert_eq!(
            wait("400d").unwrap_err(),
            "\"400d\" is out of range: allowed from 0 to 366d"
        );
        assert!(ttl("99999999999999999999")
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(window("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::from_secs(7200)), "2h");
    }
}
