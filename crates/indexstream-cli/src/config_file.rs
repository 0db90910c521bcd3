//! The TOML config file: flat keys named as the flags' long names, merged under the flags and
//! the environment. Every error is one line naming the file, the line and the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::UsageError;

/// A config file, read and parsed, its keys not yet checked.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    text: String,
    table: toml::Table,
}

/// Warns when a config file that holds a secret can be read by users other than its owner.
fn warn_if_others_can_read_secrets(path: &Path, table: &toml::Table) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A `[sink]` option is a secret when its name says so (password, token, header).
        let secret_name = |k: &str| {
            ["password", "token", "secret", "header", "api-key"]
                .iter()
                .any(|s| k.contains(s))
        };
        let secret = SECRET_KEYS.iter().any(|k| table.contains_key(*k))
            || table
                .get("sink")
                .and_then(|v| v.as_table())
                .is_some_and(|t| t.keys().any(|k| secret_name(k)));
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777);
        if let (true, Ok(mode)) = (secret, mode) {
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "config file {} holds secrets and other users can read it (mode {mode:o}): chmod 600 {}",
                    path.display(),
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, table);
}

impl ConfigFile {
    /// Reads and parses `path`; a syntax error names its line and column.
    pub fn load(path: &Path) -> Result<Self, UsageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("cannot read config file {}: {e}", path.display())))?;
        let table = text.parse::<toml::Table>().map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (line, col) = line_col(&text, s.start);
                    format!(" line {line}, column {col}")
                })
                .unwrap_or_default();
            UsageError(format!(
                "config file {}{at}: {}",
                path.display(),
                one_line(e.message())
            ))
        })?;
        warn_if_others_can_read_secrets(path, &table);
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
            table,
        })
    }

    /// Refuses a key that is not one of `known`, suggesting the nearest one, and renames
    /// aliases to the names they stand for.
    pub fn check_keys(&mut self, known: &Keys) -> Result<(), UsageError> {
        for (alias, name) in &known.aliases {
            if let Some(v) = self.table.remove(alias) {
                if self.table.contains_key(name) {
                    return Err(self.error(alias, format!("given twice, also as `{name}`")));
                }
                self.table.insert(name.clone(), v);
            }
        }
        self.sink_table()?;
        let known = &known.names;
        for (key, value) in &self.table {
            if known.iter().any(|k| k == key) {
                if value.is_table() {
                    return Err(self.error(key, "expected a value, not a table".into()));
                }
                continue;
            }
            let kebab = key.replace('_', "-");
            let hint = if kebab != *key && known.contains(&kebab) {
                format!("; keys are kebab-case: did you mean `{kebab}`?")
            } else {
                match known.iter().map(|k| (strsim::levenshtein(k, key), k)).min() {
                    Some((d, k)) if d <= 3 => format!("; did you mean `{k}`?"),
                    _ => {
                        "; every key is a flag's long name, see `indexstream consume --help`".into()
                    }
                }
            };
            return Err(self.error(key, format!("unknown key{hint}")));
        }
        Ok(())
    }

    /// A `[sink]` table (`to = "kafka:audit"` and the sink's options as keys, `brokers =
    /// "k1:9092"`) becomes the flat `sink` and `sink-option` keys the flags have.
    fn sink_table(&mut self) -> Result<(), UsageError> {
        let Some(toml::Value::Table(table)) = self.table.get("sink").cloned() else {
            return Ok(());
        };
        if self.table.contains_key("sink-option") {
            return Err(self.error(
                "sink",
                "a [sink] table holds the sink's options: give them there, not also in `sink-option`".into(),
            ));
        }
        let mut to = None;
        let mut options = Vec::new();
        for (key, value) in &table {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    value.to_string()
                }
                // Headers repeat: `header = ["A: 1", "B: 2"]`.
                toml::Value::Array(items) if key.as_str() != "to" => {
                    for item in items {
                        match item {
                            toml::Value::String(s) => {
                                options.push(toml::Value::String(format!("{key}={s}")))
                            }
                            _ => {
                                return Err(self.error(
                                    "sink",
                                    format!("[sink] {key}: expected a list of strings"),
                                ))
                            }
                        }
                    }
                    continue;
                }
                _ => {
                    return Err(self.error(
                        "sink",
                        format!("[sink] {key}: expected a string, a number or a boolean"),
                    ))
                }
            };
            if key == "to" {
                to = Some(text);
            } else {
                options.push(toml::Value::String(format!("{key}={text}")));
            }
        }
        let Some(to) = to else {
            return Err(self.error(
                "sink",
                "a [sink] table needs `to`, the sink as --sink names it (to = \"kafka:audit\")"
                    .into(),
            ));
        };
        self.table.insert("sink".into(), toml::Value::String(to));
        if !options.is_empty() {
            self.table
                .insert("sink-option".into(), toml::Value::Array(options));
        }
        Ok(())
    }

    /// The file's settings with `flags` (set values only) over them, as `T`. A bad value is
    /// reported for the first key (file or flag) that `T` cannot read.
    pub fn merge<T: Serialize + DeserializeOwned>(&self, flags: &T) -> anyhow::Result<T> {
        // Each key on its own first, so that an error names the key and its line.
        for (key, value) in &self.table {
            let one = toml::Table::from_iter([(key.clone(), value.clone())]);
            if let Err(e) = T::deserialize(one) {
                let message = plain(&e.to_string());
                let message = message
                    .strip_suffix(&format!(" in `{key}`"))
                    .unwrap_or(&message);
                let message = if SECRET_KEYS.contains(&key.as_str()) {
                    hide_quoted(message)
                } else {
                    message.to_string()
                };
                return Err(self.error(key, message).into());
            }
        }
        let mut merged = self.table.clone();
        merged.extend(as_table(flags)?);
        T::deserialize(merged).map_err(|e| UsageError(plain(&e.to_string())).into())
    }

    fn error(&self, key: &str, what: String) -> UsageError {
        let line = self
            .text
            .lines()
            .position(|l| {
                let l = l.trim_start();
                l.strip_prefix(key)
                    .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|i| format!(" line {}", i + 1))
            .unwrap_or_default();
        UsageError(format!(
            "config file {}{line}: `{key}`: {what}",
            self.path.display()
        ))
    }
}

/// Without a file: the flags as they are.
pub fn no_file<T: Serialize + DeserializeOwned>(flags: &T) -> anyhow::Result<T> {
    T::deserialize(as_table(flags)?).map_err(|e| UsageError(plain(&e.to_string())).into())
}

fn as_table<T: Serialize>(v: &T) -> anyhow::Result<toml::Table> {
    Ok(toml::Table::try_from(v)?)
}

/// The keys a config file may hold: a command's long flag names, and their aliases.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Every long name, aliases included.
    names: Vec<String>,
    /// `(alias, long name)`.
    aliases: Vec<(String, String)>,
}

impl Keys {
    /// The long flags of `cmd` but `except`.
    pub fn of(cmd: &clap::Command, except: &[&str]) -> Keys {
        let mut keys = Keys::default();
        for a in cmd.get_arguments() {
            let Some(long) = a.get_long().filter(|l| !except.contains(l)) else {
                continue;
            };
            keys.names.push(long.to_string());
            for alias in a.get_all_aliases().unwrap_or_default() {
                keys.names.push(alias.to_string());
                keys.aliases.push((alias.to_string(), long.to_string()));
            }
        }
        keys
    }
}

/// serde's wording made plain: "expected usize" reads "expected a whole number".
fn plain(message: &str) -> String {
    let mut m = one_line(message);
    for ty in ["usize", "u64", "u32", "u16", "u8", "i64", "i32"] {
        m = m.replace(&format!("expected {ty}"), "expected a whole number");
    }
    m.replace(
        "data did not match any variant of untagged enum Either",
        "expected text or a date-time (earliest, latest, 2024-05-01T10:00:00Z)",
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based line and column of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// A text setting that TOML may also hold as a date-time (`start = 2024-05-01T10:00:00Z`,
/// unquoted): the date-time as RFC 3339 text.
pub fn text_or_datetime<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        DateTime(toml::value::Datetime),
    }
    Ok(
        <Option<Either> as serde::Deserialize>::deserialize(d)?.map(|e| match e {
            Either::Text(t) => t,
            Either::DateTime(dt) => dt.to_string(),
        }),
    )
}

/// `Option<Duration>` as humantime text (`"500ms"`, `"30s"`) in the file and in merged tables.
pub mod duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(d)?;
        text.map(|t| crate::common::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Keys whose values may be secrets: an error about them does not quote the value.
const SECRET_KEYS: &[&str] = &["password", "api-key", "bearer-token", "sink-option"];

/// `message` with every quoted part replaced by `"…"`.
fn hide_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_from_one() {
        assert_eq!(line_col("a = 1\nb = x\n", 10), (2, 5));
        assert_eq!(line_col("a", 0), (1, 1));
    }

    #[test]
    fn serde_types_read_as_words() {
        assert_eq!(
            plain("invalid type: string \"lots\", expected usize"),
            "invalid type: string \"lots\", expected a whole number"
        );
    }

    #[test]
    fn errors_about_secret_keys_do_not_quote_the_value() {
        assert_eq!(
            hide_quoted(r#"invalid type: string "bearer-token=t0k", expected a sequence"#),
            r#"invalid type: string "…", expected a sequence"#
        );
    }
}
