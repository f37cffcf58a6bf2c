//! RFC 3339 UTC timestamps with microseconds, without a date-time dependency.

use std::cell::RefCell;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The date and time (to the second) of the last timestamp written on this thread.
struct LastSecond {
    /// Seconds since the Unix epoch; `u64::MAX` before the first timestamp.
    secs: u64,
    /// `YYYY-MM-DDTHH:MM:SS.` for `secs`.
    prefix: String,
}

thread_local! {
    static LAST_SECOND: RefCell<LastSecond> = const {
        RefCell::new(LastSecond {
            secs: u64::MAX,
            prefix: String::new(),
        })
    };
}

/// Appends `now` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Log lines come many per second, so the
/// part up to the second is kept per thread and only the microseconds are formatted when the
/// second is the same as the last one's; digits are written without `core::fmt` (which cost
/// about ten times as much, on every log line).
pub(super) fn write_rfc3339(buf: &mut String, now: SystemTime) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let reused = LAST_SECOND.with(|last| {
        let Ok(last) = last.try_borrow() else {
            return false;
        };
        if last.secs != secs {
            return false;
        }
        buf.push_str(&last.prefix);
        true
    });
    if reused {
        let mut micros = *b"000000Z";
        digits(&mut micros[..6], u64::from(d.subsec_micros()));
        buf.extend(micros.iter().map(|&b| char::from(b)));
        return;
    }
    let start = buf.len();
    write_full(buf, d);
    // Remember the date and time of this second (not for the years past 9999).
    if let Some(prefix) = buf.get(start..).and_then(|t| t.get(..20))
        && prefix.ends_with('.')
    {
        LAST_SECOND.with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                last.secs = secs;
                last.prefix.clear();
                last.prefix.push_str(prefix);
            }
        });
    }
}

/// [`write_rfc3339`] for `d` since the epoch, every field computed.
fn write_full(buf: &mut String, d: std::time::Duration) {
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    let Ok(year @ 0..=9999) = u64::try_from(y) else {
        // Past year 9999: more digits than the fixed layout has.
        let _ = write!(
            buf,
            "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            d.subsec_micros()
        );
        return;
    };
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], u64::from(m));
    digits(&mut out[8..10], u64::from(day));
    digits(&mut out[11..13], rem / 3600);
    digits(&mut out[14..16], rem / 60 % 60);
    digits(&mut out[17..19], rem % 60);
    digits(&mut out[20..26], u64::from(d.subsec_micros()));
    // Only ASCII digits, '-', ':', '.', 'T' and 'Z'.
    buf.push_str(std::str::from_utf8(&out).unwrap_or_default());
}

/// Writes the low `dst.len()` decimal digits of `v`, zero-padded.
fn digits(dst: &mut [u8], mut v: u64) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u64) -> String {
        let mut s = String::new();
        write_rfc3339(
            &mut s,
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
        );
        s
    }

    #[test]
    fn same_second_reuses_the_date_and_time() {
        // Alternating and repeated seconds on one thread, each checked against a fresh
        // computation of the whole timestamp.
        for (secs, micros) in [
            (1_796_066_400, 1),
            (1_796_066_400, 999_999),
            (1_796_066_401, 0),
            (1_796_066_400, 5),
            (0, 0),
            (0, 7),
            (253_402_300_800, 7),
            (253_402_300_800, 8),
            (1_796_066_400, 42),
        ] {
            let d = Duration::from_secs(secs) + Duration::from_micros(micros);
            let mut full = String::new();
            write_full(&mut full, d);
            assert_eq!(at(secs, micros), full);
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_796_066_400, 123_456), "2026-11-30T19:20:00.123456Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        assert_eq!(at(253_402_300_800, 7), "10000-01-01T00:00:00.000007Z");
    }
}
