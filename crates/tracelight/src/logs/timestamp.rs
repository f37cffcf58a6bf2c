//! RFC 3339 UTC timestamps with microseconds, without a date-time dependency.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `now` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Digits are written into a fixed buffer, not
/// through `core::fmt` (which cost about ten times as much, on every log line).
pub(super) fn write_rfc3339(buf: &mut String, now: SystemTime) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
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
    fn known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_796_066_400, 123_456), "2026-11-30T19:20:00.123456Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        assert_eq!(at(253_402_300_800, 7), "10000-01-01T00:00:00.000007Z");
    }
}
