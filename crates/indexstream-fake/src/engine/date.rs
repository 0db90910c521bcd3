//! Date parsing as OpenSearch does it for `date` and `date_nanos` fields: named formats
//! (`strict_date_optional_time`, `epoch_millis`, ...), Java-style patterns
//! (`yyyy-MM-dd HH:mm:ss.SSS`), `||`-separated alternatives, fixed UTC offsets, and date math
//! (`now-30s`, `now/d`, `2024-01-01||+1M/d`). All instants are UTC.

use serde_json::Value;

/// An instant as seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp {
            secs: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as u32,
        }
    }

    pub fn millis(self) -> i64 {
        self.secs
            .saturating_mul(1000)
            .saturating_add((self.nanos / 1_000_000) as i64)
    }

    /// Nanoseconds since the epoch; `None` outside what `date_nanos` can hold (1970..2262).
    pub fn epoch_nanos(self) -> Option<i64> {
        if self.secs < 0 {
            return None;
        }
        self.secs
            .checked_mul(1_000_000_000)?
            .checked_add(self.nanos as i64)
    }

    /// The last nanosecond before the next whole millisecond: used when a bound rounds up.
    fn plus_millis(self, ms: i64) -> Self {
        let total = self.millis() + ms;
        Timestamp::from_millis(total)
    }
}

impl Timestamp {
    fn to_jiff(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_nanosecond(
            i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos),
        )
        .ok()
    }

    fn from_jiff(t: jiff::Timestamp) -> Timestamp {
        let ns = t.as_nanosecond();
        Timestamp {
            secs: ns.div_euclid(1_000_000_000) as i64,
            nanos: ns.rem_euclid(1_000_000_000) as u32,
        }
    }

    /// This instant as the wall-clock time at `offset_secs` from UTC.
    fn local(self, offset_secs: i32) -> Option<(jiff::tz::Offset, jiff::civil::DateTime)> {
        let offset = jiff::tz::Offset::from_seconds(offset_secs).ok()?;
        Some((offset, offset.to_datetime(self.to_jiff()?)))
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Fields {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_secs: Option<i32>,
}

impl Fields {
    fn to_timestamp(self, default_offset: i32) -> Option<Timestamp> {
        // jiff checks the ranges (a day the month has, hours 0-23, ...) and does the calendar.
        let small = |v: u32| i8::try_from(v).ok();
        let local = jiff::civil::DateTime::new(
            i16::try_from(self.year?).ok()?,
            small(self.month.unwrap_or(1))?,
            small(self.day.unwrap_or(1))?,
            small(self.hour)?,
            small(self.minute)?,
            small(self.second)?,
            i32::try_from(self.nanos).ok()?,
        )
        .ok()?;
        let offset =
            jiff::tz::Offset::from_seconds(self.offset_secs.unwrap_or(default_offset)).ok()?;
        Some(Timestamp::from_jiff(offset.to_timestamp(local).ok()?))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Year(usize),
    Month(usize),
    Day(usize),
    Hour(usize),
    Minute(usize),
    Second(usize),
    Fraction(usize),
    Zone,
    Literal(char),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    IsoOptionalTime { strict: bool },
    EpochMillis,
    EpochSecond,
    Pattern(Vec<Token>),
}

/// A parsed `format` mapping parameter: one or more alternatives separated by `||`.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    text: String,
    parts: Vec<Part>,
}

impl DateFormat {
    pub fn default_date() -> Self {
        Self::parse("strict_date_optional_time||epoch_millis").expect("built-in format")
    }

    pub fn default_date_nanos() -> Self {
        Self::parse("strict_date_optional_time_nanos||epoch_millis").expect("built-in format")
    }

    /// The text the format was given as (echoed in mappings).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        for alt in text.split("||") {
            parts.push(parse_part(alt.trim()).ok_or_else(|| {
                format!("Invalid format: [{text}]: Unknown pattern letter or format name [{alt}]")
            })?);
        }
        if parts.is_empty() {
            return Err(format!("Invalid format: [{text}]"));
        }
        Ok(DateFormat {
            text: text.to_string(),
            parts,
        })
    }

    /// Parse a string with any alternative, in order; `offset` applies where the text has no zone.
    pub fn parse_str(&self, s: &str, offset: i32) -> Option<Timestamp> {
        self.parts.iter().find_map(|p| parse_with(p, s, offset))
    }

    /// Parse a JSON value as a document field holds it: strings with the format, numbers as
    /// epoch millis (as OpenSearch does for the default formats).
    pub fn parse_value(&self, v: &Value) -> Option<Timestamp> {
        match v {
            Value::String(s) => self.parse_str(s, 0),
            Value::Number(n) => {
                if let Some(p) = self.parts.iter().find(|p| matches!(p, Part::EpochSecond)) {
                    if !self.parts.iter().any(|p| matches!(p, Part::EpochMillis)) {
                        return parse_with(p, &n.to_string(), 0);
                    }
                }
                if let Some(i) = n.as_i64() {
                    Some(Timestamp::from_millis(i))
                } else {
                    parse_epoch(&n.to_string(), 1000)
                }
            }
            _ => None,
        }
    }
}

fn parse_part(alt: &str) -> Option<Part> {
    let name = alt.strip_prefix("strict_").unwrap_or(alt);
    Some(match name {
        "date_optional_time" | "date_optional_time_nanos" => Part::IsoOptionalTime {
            strict: alt.starts_with("strict_"),
        },
        "epoch_millis" => Part::EpochMillis,
        "epoch_second" => Part::EpochSecond,
        "date" | "year_month_day" => Part::Pattern(tokens("yyyy-MM-dd")?),
        "date_time" | "date_time_no_millis" => Part::IsoOptionalTime { strict: true },
        "date_hour_minute_second" => Part::Pattern(tokens("yyyy-MM-dd'T'HH:mm:ss")?),
        "date_hour_minute_second_millis" | "date_hour_minute_second_fraction" => {
            Part::Pattern(tokens("yyyy-MM-dd'T'HH:mm:ss.SSS")?)
        }
        "basic_date" => Part::Pattern(tokens("yyyyMMdd")?),
        "basic_date_time" => Part::Pattern(tokens("yyyyMMdd'T'HHmmss.SSSZ")?),
        "basic_date_time_no_millis" => Part::Pattern(tokens("yyyyMMdd'T'HHmmssZ")?),
        "year" => Part::Pattern(tokens("yyyy")?),
        "year_month" => Part::Pattern(tokens("yyyy-MM")?),
        _ if alt.chars().all(|c| c.is_ascii_lowercase() || c == '_') && alt.len() > 4 => {
            return None
        }
        _ => Part::Pattern(tokens(alt)?),
    })
}

fn tokens(pattern: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                out.push(Token::Literal(chars[i]));
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let token = match c {
            'y' | 'u' | 'Y' => Token::Year(n),
            'M' => Token::Month(n),
            'd' => Token::Day(n),
            'H' => Token::Hour(n),
            'm' => Token::Minute(n),
            's' => Token::Second(n),
            'S' => Token::Fraction(n),
            'X' | 'x' | 'Z' => Token::Zone,
            c if c.is_ascii_alphabetic() => return None,
            c => {
                for _ in 0..n {
                    out.push(Token::Literal(c));
                }
                i += n;
                continue;
            }
        };
        out.push(token);
        i += n;
    }
    Some(out)
}

/// Reads between `min` and `max` ASCII digits.
fn digits(s: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u64> {
    let start = *pos;
    while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
        *pos += 1;
    }
    if *pos - start < min {
        return None;
    }
    std::str::from_utf8(&s[start..*pos]).ok()?.parse().ok()
}

fn zone(s: &[u8], pos: &mut usize) -> Option<i32> {
    match s.get(*pos)? {
        b'Z' | b'z' => {
            *pos += 1;
            Some(0)
        }
        b'+' | b'-' => {
            let sign = if s[*pos] == b'-' { -1 } else { 1 };
            *pos += 1;
            let h = digits(s, pos, 2, 2)? as i32;
            let mut m = 0;
            if s.get(*pos) == Some(&b':') {
                *pos += 1;
                m = digits(s, pos, 2, 2)? as i32;
            } else if s.get(*pos).is_some_and(|c| c.is_ascii_digit()) {
                m = digits(s, pos, 2, 2)? as i32;
            }
            Some(sign * (h * 3600 + m * 60))
        }
        _ => None,
    }
}

fn fraction(s: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *pos;
    let v = digits(s, pos, min, max)?;
    let n = *pos - start;
    Some((v * 10u64.pow((9 - n) as u32)) as u32)
}

fn parse_iso(s: &str, strict: bool, offset: i32) -> Option<Timestamp> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut f = Fields::default();
    let negative = b.first() == Some(&b'-');
    if negative || b.first() == Some(&b'+') {
        pos += 1;
    }
    let year = digits(b, &mut pos, if strict { 4 } else { 1 }, 9)? as i64;
    f.year = Some(if negative { -year } else { year });
    let mmdd = if strict { 2 } else { 1 };
    if b.get(pos) == Some(&b'-') {
        pos += 1;
        f.month = Some(digits(b, &mut pos, mmdd, 2)? as u32);
        if b.get(pos) == Some(&b'-') {
            pos += 1;
            f.day = Some(digits(b, &mut pos, mmdd, 2)? as u32);
        }
    }
    if b.get(pos) == Some(&b'T') {
        pos += 1;
        f.hour = digits(b, &mut pos, mmdd, 2)? as u32;
        if b.get(pos) == Some(&b':') {
            pos += 1;
            f.minute = digits(b, &mut pos, mmdd, 2)? as u32;
            if b.get(pos) == Some(&b':') {
                pos += 1;
                f.second = digits(b, &mut pos, mmdd, 2)? as u32;
                if matches!(b.get(pos), Some(b'.') | Some(b',')) {
                    pos += 1;
                    f.nanos = fraction(b, &mut pos, 1, 9)?;
                }
            }
        }
        if pos < b.len() {
            f.offset_secs = Some(zone(b, &mut pos)?);
        }
    } else if pos < b.len() && f.day.is_some() {
        f.offset_secs = Some(zone(b, &mut pos)?);
    }
    if pos != b.len() {
        return None;
    }
    f.to_timestamp(offset)
}

fn parse_epoch(s: &str, per_sec: i64) -> Option<Timestamp> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let whole: i64 = int.parse().ok()?;
    let mut nanos_per_unit = 1_000_000_000 / per_sec;
    let mut extra: i64 = 0;
    for c in frac.chars() {
        let d = c.to_digit(10)? as i64;
        nanos_per_unit /= 10;
        extra += d * nanos_per_unit;
    }
    let total_nanos = whole as i128 * (1_000_000_000 / per_sec) as i128
        + if whole < 0 {
            -(extra as i128)
        } else {
            extra as i128
        };
    let secs = total_nanos.div_euclid(1_000_000_000) as i64;
    Some(Timestamp {
        secs,
        nanos: total_nanos.rem_euclid(1_000_000_000) as u32,
    })
}

fn parse_with(part: &Part, s: &str, offset: i32) -> Option<Timestamp> {
    match part {
        Part::IsoOptionalTime { strict } => parse_iso(s, *strict, offset),
        Part::EpochMillis => parse_epoch(s, 1000),
        Part::EpochSecond => parse_epoch(s, 1),
        Part::Pattern(tokens) => {
            let b = s.as_bytes();
            let mut pos = 0;
            let mut f = Fields::default();
            for t in tokens {
                match *t {
                    Token::Year(n) => {
                        f.year = Some(digits(
                            b,
                            &mut pos,
                            if n == 2 { 2 } else { n.min(4) },
                            if n == 2 { 2 } else { 9 },
                        )? as i64)
                    }
                    Token::Month(n) => f.month = Some(digits(b, &mut pos, n, 2)? as u32),
                    Token::Day(n) => f.day = Some(digits(b, &mut pos, n, 2)? as u32),
                    Token::Hour(n) => f.hour = digits(b, &mut pos, n, 2)? as u32,
                    Token::Minute(n) => f.minute = digits(b, &mut pos, n, 2)? as u32,
                    Token::Second(n) => f.second = digits(b, &mut pos, n, 2)? as u32,
                    Token::Fraction(n) => f.nanos = fraction(b, &mut pos, n, n.max(1))?,
                    Token::Zone => f.offset_secs = Some(zone(b, &mut pos)?),
                    Token::Literal(c) => {
                        let mut buf = [0u8; 4];
                        let lit = c.encode_utf8(&mut buf).as_bytes();
                        if !b[pos..].starts_with(lit) {
                            return None;
                        }
                        pos += lit.len();
                    }
                }
            }
            if pos != b.len() {
                return None;
            }
            if f.year.is_none() {
                f.year = Some(1970);
            }
            f.to_timestamp(offset)
        }
    }
}

/// Parses a `time_zone` parameter: `UTC`, `Z`, `GMT` or a fixed offset such as `+01:00`.
pub fn parse_time_zone(tz: &str) -> Option<i32> {
    match tz {
        "UTC" | "Z" | "GMT" | "Etc/UTC" | "utc" => Some(0),
        _ => {
            let mut pos = 0;
            let offset = zone(tz.as_bytes(), &mut pos)?;
            (pos == tz.len()).then_some(offset)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
}

fn unit(c: char) -> Option<Unit> {
    Some(match c {
        'y' => Unit::Year,
        'M' => Unit::Month,
        'w' => Unit::Week,
        'd' => Unit::Day,
        'h' | 'H' => Unit::Hour,
        'm' => Unit::Minute,
        's' => Unit::Second,
        _ => return None,
    })
}

fn add(ts: Timestamp, n: i64, u: Unit) -> Timestamp {
    let secs = match u {
        Unit::Second => {
            return Timestamp {
                secs: ts.secs + n,
                ..ts
            }
        }
        Unit::Minute => n * 60,
        Unit::Hour => n * 3600,
        Unit::Day => n * 86_400,
        Unit::Week => n * 7 * 86_400,
        Unit::Year | Unit::Month => {
            // Calendar months, the day clamped to the month's last (Jan 31 + 1M = Feb 28/29);
            // past the years jiff holds (-9999..=9999) the instant is left as it was.
            let months = if u == Unit::Year { n * 12 } else { n };
            let moved = ts.local(0).and_then(|(offset, dt)| {
                let dt = dt
                    .checked_add(jiff::Span::new().try_months(months).ok()?)
                    .ok()?;
                offset.to_timestamp(dt).ok()
            });
            return moved.map_or(ts, Timestamp::from_jiff);
        }
    };
    Timestamp {
        secs: ts.secs + secs,
        ..ts
    }
}

fn round_down(ts: Timestamp, u: Unit, offset: i32) -> Timestamp {
    let local = ts.secs + offset as i64;
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    let local_start = match u {
        Unit::Second => local,
        Unit::Minute => local - rem % 60,
        Unit::Hour => local - rem % 3600,
        Unit::Day => days * 86_400,
        Unit::Week => (days - (days + 3).rem_euclid(7)) * 86_400,
        Unit::Month | Unit::Year => {
            let start = ts.local(offset).and_then(|(off, dt)| {
                let first = if u == Unit::Month {
                    dt.first_of_month()
                } else {
                    dt.first_of_year()
                };
                off.to_timestamp(first.start_of_day()).ok()
            });
            return start.map_or(ts, Timestamp::from_jiff);
        }
    };
    Timestamp {
        secs: local_start - offset as i64,
        nanos: 0,
    }
}

/// Which end of a rounded unit a range bound takes: `gte`/`lt` round down, `gt`/`lte` round up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    Down,
    Up,
}

/// Parses a date-math expression (`now-1h/d`, `2024-01-01||+1M`) or a plain date.
pub fn parse_math(
    expr: &str,
    format: &DateFormat,
    now: Timestamp,
    rounding: Rounding,
    offset: i32,
) -> Result<Timestamp, String> {
    let (anchor, math) = if let Some(rest) = expr.strip_prefix("now") {
        (now, rest)
    } else if let Some((date, rest)) = expr.split_once("||") {
        (
            format.parse_str(date, offset).ok_or_else(|| {
                format!(
                    "failed to parse date field [{date}] with format [{}]",
                    format.text()
                )
            })?,
            rest,
        )
    } else {
        return format.parse_str(expr, offset).ok_or_else(|| {
            format!(
                "failed to parse date field [{expr}] with format [{}]",
                format.text()
            )
        });
    };
    let chars: Vec<char> = math.chars().collect();
    let mut ts = anchor;
    let mut i = 0;
    while i < chars.len() {
        let op = chars[i];
        i += 1;
        if op == '/' {
            let u = chars.get(i).and_then(|c| unit(*c)).ok_or_else(|| {
                format!("rounding `/` must be followed by a time unit in [{expr}]")
            })?;
            i += 1;
            ts = round_down(ts, u, offset);
            if rounding == Rounding::Up {
                ts = add(ts, 1, u).plus_millis(-1);
            }
        } else if op == '+' || op == '-' {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: i64 = if start == i {
                1
            } else {
                chars[start..i]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .map_err(|_| format!("bad number in [{expr}]"))?
            };
            let u = chars.get(i).and_then(|c| unit(*c)).ok_or_else(|| {
                format!(
                    "unit [{}] not supported for date math [{math}]",
                    chars.get(i).map(|c| c.to_string()).unwrap_or_default()
                )
            })?;
            i += 1;
            ts = add(ts, if op == '-' { -n } else { n }, u);
        } else {
            return Err(format!("operator not supported for date math [{math}]"));
        }
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateFormat::default_date().parse_str(s, 0).unwrap().millis()
    }

    #[test]
    fn iso_with_offsets_is_utc() {
        assert_eq!(ms("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ms("1970-01-01T01:00:00+01:00"), 0);
        assert_eq!(ms("2019-10-21T08:30:04.828Z"), 1_571_646_604_828);
        assert_eq!(ms("2019-10-21"), 1_571_616_000_000);
        assert_eq!(ms("1571646604828"), 1_571_646_604_828);
    }

    #[test]
    fn custom_patterns_parse() {
        let f = DateFormat::parse("yyyy-MM-dd HH:mm:ss.SSS").unwrap();
        assert_eq!(
            f.parse_str("2019-10-21 08:30:04.828", 0).unwrap().millis(),
            1_571_646_604_828
        );
        let n = DateFormat::parse("yyyy-MM-dd HH:mm:ss.SSSSSS").unwrap();
        assert_eq!(
            n.parse_str("2019-10-21 08:30:04.828733", 0)
                .unwrap()
                .epoch_nanos(),
            Some(1_571_646_604_828_733_000)
        );
        assert!(f.parse_str("2019-10-21", 0).is_none());
    }

    #[test]
    fn date_math_rounds_by_bound() {
        let now = Timestamp::from_millis(ms("2024-03-15T10:20:30.400Z"));
        let f = DateFormat::default_date();
        assert_eq!(
            parse_math("now-30s", &f, now, Rounding::Down, 0)
                .unwrap()
                .millis(),
            now.millis() - 30_000
        );
        assert_eq!(
            parse_math("now/d", &f, now, Rounding::Down, 0)
                .unwrap()
                .millis(),
            ms("2024-03-15")
        );
        assert_eq!(
            parse_math("now/d", &f, now, Rounding::Up, 0)
                .unwrap()
                .millis(),
            ms("2024-03-16") - 1
        );
        assert_eq!(
            parse_math("2024-01-31||+1M", &f, now, Rounding::Down, 0)
                .unwrap()
                .millis(),
            ms("2024-02-29")
        );
    }

    #[test]
    fn calendar_math_clamps_to_the_month_and_rounds_in_the_zone() {
        let jan31 = ms("2024-01-31T10:00:00Z");
        let t = add(Timestamp::from_millis(jan31), 1, Unit::Month);
        assert_eq!(t.millis(), ms("2024-02-29T10:00:00Z"));
        let t = add(
            Timestamp::from_millis(ms("2024-02-29T00:00:00Z")),
            1,
            Unit::Year,
        );
        assert_eq!(t.millis(), ms("2025-02-28T00:00:00Z"));
        let t = round_down(
            Timestamp::from_millis(ms("2024-03-01T00:30:00Z")),
            Unit::Month,
            3600,
        );
        assert_eq!(t.millis(), ms("2024-02-29T23:00:00Z"));
        let t = round_down(
            Timestamp::from_millis(ms("2024-07-04T12:00:00Z")),
            Unit::Year,
            0,
        );
        assert_eq!(t.millis(), ms("2024-01-01T00:00:00Z"));
        assert!(DateFormat::default_date()
            .parse_str("2023-02-29", 0)
            .is_none());
        assert!(DateFormat::default_date()
            .parse_str("2024-01-01T24:00:00Z", 0)
            .is_none());
    }
}
