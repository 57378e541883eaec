//! Times as people read them (`humantime` does the calendar).

use std::time::{Duration, UNIX_EPOCH};

/// ISO 8601 for `<time datetime>`: `2026-11-30T21:41:00Z`.
pub(crate) fn iso(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `2026-11-30 21:40 UTC` for a time in ms since the Unix epoch.
pub(crate) fn utc(ms: u64) -> String {
    let iso = iso(ms);
    // `YYYY-MM-DDTHH:MM:SSZ`: the date, the hour and minute.
    match (iso.get(..10), iso.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => iso,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::iso(1_796_074_860_000), "2026-11-30T21:41:00Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
