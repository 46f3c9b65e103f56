use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: what the database stores for every timestamp,
/// because it means the same on SQLite and PostgreSQL.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z): later times,
/// which a token's `exp` may name, are written as this one.
pub const MAX_RFC3339_MILLIS: Millis = 253_402_300_799_999;

/// `2026-11-22T10:00:00.123Z`: RFC 3339, UTC, always with milliseconds. Total: times
/// before 1970 or after year 9999 are clamped to those bounds.
pub fn rfc3339_millis(ms: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.clamp(0, MAX_RFC3339_MILLIS) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_795_860_000_123), "2026-11-28T10:00:00.123Z");
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(i64::MIN), "1970-01-01T00:00:00.000Z");
    }
}
