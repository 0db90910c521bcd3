//! Durations in settings read with serde: a string such as `"500ms"`, `"30s"`, `"1m 30s"` or
//! ISO 8601 `"PT30S"` (jiff's grammar), or a whole number of milliseconds.

use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as \"500ms\", \"30s\" or \"1m\", or milliseconds")
    }

    fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Duration, E> {
        Ok(Duration::from_millis(ms))
    }

    fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Duration, E> {
        u64::try_from(ms)
            .map(Duration::from_millis)
            .map_err(|_| E::custom(format!("a duration cannot be negative ({ms})")))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        parse(s).map_err(E::custom)
    }
}

/// Parses `"500ms"`, `"30s"`, `"1m 30s"`, `"PT30S"`.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s.trim().parse().map_err(|e| {
        format!("invalid duration {s:?} ({e}); examples: \"500ms\", \"30s\", \"1m\"")
    })?;
    Duration::try_from(d).map_err(|_| format!("a duration cannot be negative ({s:?})"))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// An optional duration: absent or `null` is `None`.
pub(crate) mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(deserialize_with = "super::deserialize")] Duration);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_iso_and_milliseconds_parse() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("PT30S"), Ok(Duration::from_secs(30)));
        assert!(parse("-5s").is_err());
        assert!(parse("lots").unwrap_err().contains("\"lots\""));
        let v: serde_json::Value = serde_json::json!(250);
        assert_eq!(deserialize(v).unwrap(), Duration::from_millis(250));
    }
}
