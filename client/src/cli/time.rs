//! The ISO-8601 forms the command line takes: datetimes
//! (`--to-datetime`, `--offset-time`), parsed with chrono, and durations
//! (`--by-duration`), parsed here since chrono has no parser for them.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone};

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.sss]` followed by
/// `Z`, `±HH:MM` or nothing; without a zone the time is local, as in
/// kafka-consumer-groups.sh.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || {
        format!("{s:?} is not a datetime: want YYYY-MM-DDTHH:MM:SS[.sss] with Z, +HH:MM or nothing (local time)")
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| bad())?;
    match Local.from_local_datetime(&naive).earliest() {
        Some(t) => Ok(t.timestamp_millis()),
        // A local time skipped by a daylight-saving change.
        None => Err(format!("{s:?} does not exist in the local time zone")),
    }
}

/// Milliseconds of an ISO-8601 duration `PnDTnHnMn[.n]S` (each part
/// optional, at least one present; fractions of seconds to the ms), as
/// `--by-duration` takes it.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("{s:?} is not a duration like PT1H or P1DT30M: {why}");
    let rest = s
        .strip_prefix('P')
        .or_else(|| s.strip_prefix('p'))
        .ok_or_else(|| bad("it must start with P"))?;
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut parts = 0;
    let mut add = |number: &str, unit_ms: i64| -> Result<(), String> {
        let ms = if let Some((whole, fraction)) = number.split_once('.') {
            if unit_ms != 1000 {
                return Err(bad("only seconds may have a fraction"));
            }
            let whole: i64 = digits(whole).ok_or_else(|| bad("bad number"))?;
            let fraction = fraction.get(..fraction.len().min(3)).unwrap_or("");
            if !fraction.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad("bad number"));
            }
            let padded = format!("{fraction:0<3}");
            let millis: i64 = padded.parse().map_err(|_| bad("bad number"))?;
            whole
                .checked_mul(1000)
                .and_then(|w| w.checked_add(millis))
                .ok_or_else(|| bad("too long"))?
        } else {
            let n = digits(number).ok_or_else(|| bad("bad number"))?;
            n.checked_mul(unit_ms).ok_or_else(|| bad("too long"))?
        };
        total = total.checked_add(ms).ok_or_else(|| bad("too long"))?;
        parts += 1;
        Ok(())
    };
    let mut split = |text: &str, units: &[(char, i64)]| -> Result<(), String> {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in text.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let c = c.to_ascii_uppercase();
            let at = units[next_unit..]
                .iter()
                .position(|(u, _)| *u == c)
                .ok_or_else(|| bad(&format!("unexpected {c:?}")))?;
            let (_, unit_ms) = units[next_unit + at];
            add(&number, unit_ms)?;
            number.clear();
            next_unit += at + 1;
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(bad("a number has no unit"))
        }
    };
    split(date, &[('D', 86_400_000)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return Err(bad("nothing after T"));
        }
        split(time, &[('H', 3_600_000), ('M', 60_000), ('S', 1000)])?;
    }
    if parts == 0 {
        return Err(bad("no amount"));
    }
    Ok(total)
}

/// A non-empty run of ASCII digits as a number.
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_with_a_zone_or_a_fraction() {
        assert_eq!(
            parse_datetime("2026-01-01T00:00:00Z"),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            parse_datetime("2026-01-01T00:00:00.250Z"),
            Ok(1_767_225_600_250)
        );
        assert_eq!(
            parse_datetime("2026-01-01T01:00:00+01:00"),
            Ok(1_767_225_600_000)
        );
        let local = parse_datetime("2026-01-01T00:00:00.5").unwrap();
        let expected = Local
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .earliest()
            .unwrap()
            .timestamp_millis()
            + 500;
        assert_eq!(local, expected);
        assert!(parse_datetime("2026-01-01").is_err());
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2026-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn durations_in_days_hours_minutes_and_seconds() {
        assert_eq!(parse_duration("PT1H"), Ok(3_600_000));
        assert_eq!(parse_duration("P1D"), Ok(86_400_000));
        assert_eq!(
            parse_duration("P1DT2H3M4.5S"),
            Ok(86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4_500)
        );
        assert_eq!(parse_duration("PT0.001S"), Ok(1));
        assert_eq!(parse_duration("pt90m"), Ok(90 * 60_000));
        for bad in [
            "", "P", "PT", "1H", "PT1", "PT1H1H", "PT1M1H", "PT1.5H", "P1H", "PT-1H", "PT1X",
            "PT.S",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
