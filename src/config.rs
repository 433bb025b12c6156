//! `conf.d/NAME.yaml` (SPEC 7): which database, and how carefully to touch it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use crate::error::Error;

pub const CONF_DIR: &str = "conf.d";

/// The keys a config file may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Connection,
    Schema,
    StateTable,
    LockTimeout,
    StatementTimeout,
    LockRetries,
    LockWait,
}

const KEYS: [(&str, Key); 7] = [
    ("connection", Key::Connection),
    ("schema", Key::Schema),
    ("state_table", Key::StateTable),
    ("lock_timeout", Key::LockTimeout),
    ("statement_timeout", Key::StatementTimeout),
    ("lock_retries", Key::LockRetries),
    ("lock_wait", Key::LockWait),
];

impl Key {
    /// What the key's value must be, for messages.
    fn expected(self) -> &'static str {
        match self {
            Key::Connection | Key::Schema | Key::StateTable => "a string",
            Key::LockTimeout | Key::StatementTimeout | Key::LockWait => "a duration such as `5s`",
            Key::LockRetries => "a whole number",
        }
    }
}

#[derive(Clone, PartialEq)]
pub struct Config {
    /// The file it came from, when there was one.
    pub source: Option<PathBuf>,
    pub connection: Option<String>,
    /// Why `connection` could not be expanded (an unset variable).
    pub connection_error: Option<String>,
    pub schema: Option<String>,
    pub state_table: String,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    pub lock_retries: u32,
    pub lock_wait: Duration,
    /// Files in `conf.d` that look like environments but are not read.
    pub warnings: Vec<String>,
}

/// By hand: `connection` may hold a password, which `{:?}` in an embedding
/// service's log must not show.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("connection", &self.connection.as_deref().map(redact))
            .field("connection_error", &self.connection_error)
            .field("schema", &self.schema)
            .field("state_table", &self.state_table)
            .field("lock_timeout", &self.lock_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_retries", &self.lock_retries)
            .field("lock_wait", &self.lock_wait)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            connection: None,
            connection_error: None,
            schema: None,
            state_table: "pygrate".to_string(),
            lock_timeout: Some(DEFAULT_LOCK_TIMEOUT),
            statement_timeout: None,
            lock_retries: 3,
            lock_wait: Duration::from_secs(60),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Picks the environment file: `-e NAME`, else the only file in `conf.d`,
    /// else defaults when there is none. Several files and no `-e` is an error.
    pub fn load(root: &Path, env: Option<&str>) -> Result<Config, Error> {
        Config::load_with(root, env, &|var| std::env::var(var).ok())
    }

    /// `load`, with `${VAR}` looked up by `lookup`.
    pub fn load_with(root: &Path, env: Option<&str>, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let dir = root.join(CONF_DIR);
        let mut names = Vec::new();
        let mut warnings = Vec::new();
        for entry in fs::read_dir(&dir).into_iter().flatten().filter_map(|e| e.ok()) {
            let file_name = entry.file_name();
            // A directory named `x.yaml` is no environment. Anything else
            // named so is one, a broken link included: skipping it would
            // leave `DATABASE_URL` to choose the database.
            let Some(file_name) = file_name.to_str().filter(|n| !n.starts_with('.')) else { continue };
            if entry.path().is_dir() {
                continue;
            }
            match file_name.strip_suffix(".yaml") {
                Some(name) => names.push(name.to_string()),
                None if [".yaml", ".yml"].iter().any(|ext| file_name.to_ascii_lowercase().ends_with(ext)) => warnings
                    .push(format!(
                        "{}: ignored: environments are files ending in lowercase `.yaml`; rename it if it is one",
                        entry.path().display()
                    )),
                None => {}
            }
        }
        names.sort();
        let name = match (env, names.as_slice()) {
            (Some(env), _) if names.iter().any(|n| n == env) => env.to_string(),
            (Some(env), []) => {
                return Err(Error::Usage(format!("no environment `{env}`: {} has no *.yaml files", dir.display())))
            }
            (Some(env), _) => {
                return Err(Error::Usage(format!(
                    "no environment `{env}` in {}; choose one of: {}",
                    dir.display(),
                    names.join(", ")
                )))
            }
            (None, []) => return Ok(Config { warnings, ..Config::default() }),
            (None, [only]) => only.clone(),
            (None, _) => {
                return Err(Error::Usage(format!(
                    "{} holds several environments; choose one with -e: {}",
                    dir.display(),
                    names.join(", ")
                )))
            }
        };
        let path = dir.join(format!("{name}.yaml"));
        let unreadable = |why: String| Error::Config { path: path.display().to_string(), message: why };
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => return Err(unreadable("not a regular file; make it one".to_string())),
            Ok(_) => {}
            Err(e) => return Err(unreadable(format!("cannot be read ({e}); if it is a link, its target is missing"))),
        }
        let text = fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(Config { warnings, ..Config::parse(&text, &path, lookup)? })
    }

    pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        // Windows editors write a byte-order mark, which YAML with CRLF
        // lines took for the start of a second document.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let err = |message: String| Error::Config { path: path.display().to_string(), message };
        // Errors about a key name the line it is on, where it can be found.
        let err_at = |key: &str, message: String| Error::Config {
            path: match key_line(text, key) {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            },
            message,
        };
        let value: Value = serde_yaml::from_str(text).map_err(|e| err(format!("not valid YAML: {e}")))?;
        let mut config = Config { source: Some(path.to_path_buf()), ..Config::default() };
        let map = match value {
            Value::Mapping(map) => map,
            Value::Null => return Ok(config),
            _ => return Err(err("expected `key: value` lines".to_string())),
        };
        for (key, value) in map {
            let Some(name) = key.as_str() else {
                return Err(err(format!("keys are names, not {}", kind(&key))));
            };
            let err = |message: String| err_at(name, message);
            let Some(&(_, key)) = KEYS.iter().find(|(known, _)| *known == name) else {
                return Err(err(unknown_key(name)));
            };
            let text = match value {
                // `--conn` overrides the connection, so a variable it needs
                // may be unset then: the error waits until the URL is used.
                Value::String(s) if key == Key::Connection => match expand_env(&s, env) {
                    Ok(url) => url,
                    Err(e) => {
                        config.connection_error = Some(e);
                        continue;
                    }
                },
                Value::String(s) => expand_env(&s, env).map_err(err)?,
                Value::Number(n) => n.to_string(),
                Value::Null => continue,
                // Only the kind: the value may hold a password.
                other => return Err(err(format!("`{name}` must be {}, not {}", key.expected(), kind(&other)))),
            };
            let duration = |text: &str| parse_duration(text).map_err(|m| err(format!("`{name}`: {m}")));
            let timeout = |text: &str| {
                match duration(text)? {
                limit if limit > MAX_TIMEOUT => Err(err(format!(
                    "`{name}`: `{text}` is longer than the databases accept (596h); use 0 for no limit"
                ))),
                // The databases count whole milliseconds: it would become 0, no limit.
                limit if !limit.is_zero() && limit < Duration::from_millis(1) => Err(err(format!(
                    "`{name}`: `{text}` is under 1ms, the finest the databases take; use at least 1ms, or 0 for no limit"
                ))),
                limit => Ok(limit),
            }
            };
            match key {
                Key::Connection => config.connection = Some(text),
                Key::Schema => config.schema = Some(checked_identifier(name, &text).map_err(err)?),
                Key::StateTable => config.state_table = checked_identifier(name, &text).map_err(err)?,
                Key::LockTimeout => config.lock_timeout = Some(timeout(&text)?).filter(|d| !d.is_zero()),
                Key::StatementTimeout => config.statement_timeout = Some(timeout(&text)?).filter(|d| !d.is_zero()),
                Key::LockWait => config.lock_wait = duration(&text)?,
                Key::LockRetries => {
                    config.lock_retries =
                        text.parse().map_err(|_| err(format!("`lock_retries` must be a whole number, not `{text}`")))?
                }
            }
        }
        Ok(config)
    }
}

fn unknown_key(name: &str) -> String {
    if name == "<<" {
        return "YAML merge keys (`<<`) are not supported; write the keys out".to_string();
    }
    let names = KEYS.map(|(known, _)| known);
    let hint = crate::text::closest(name, &names)
        .map(|c| format!("did you mean `{c}`?"))
        .unwrap_or_else(|| format!("known keys: {}", names.join(", ")));
    format!("unknown key `{name}`; {hint}")
}

/// A YAML value's kind, for messages that must not show the value itself.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The line of a top-level `key:` in a block mapping, for messages. A key
/// written otherwise (in a `{…}` mapping) has none.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let forms = [key.to_string(), format!("\"{key}\""), format!("'{key}'")];
    let is_key = |line: &str| {
        forms.iter().any(|form| line.strip_prefix(form.as_str()).is_some_and(|rest| rest.trim_start().starts_with(':')))
    };
    text.lines().position(is_key).map(|i| i + 1)
}

/// State table prefixes and schemas end up in SQL: keep them plain identifiers.
fn checked_identifier(key: &str, value: &str) -> Result<String, String> {
    let plain = value.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    // 48 + `_state` stays within PostgreSQL's 63 and MySQL's 64 characters.
    if !plain {
        Err(format!(
            "`{key}` must be a plain identifier (ASCII letters, digits, `_`, not starting with a digit), not `{value}`"
        ))
    } else if value.len() > 48 {
        Err(format!("`{key}` is {} characters long; at most 48 fit the databases' name limits", value.len()))
    } else {
        Ok(value.to_string())
    }
}

/// `${VAR}` and `${VAR:-default}` from the environment.
pub fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{}`", redact(text)));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        // `${}` read as "variable `` is not set". The text is not quoted
        // back: it may be part of a password.
        let is_name = |n: &str| {
            n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !is_name(name) {
            return Err(
                "a `${` that is not a variable: write ${NAME} or ${NAME:-default}, NAME of letters, digits and `_`"
                    .to_string(),
            );
        }
        match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set; export it or write `${{{name}:-default}}`"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `lock_timeout` when the config names none: DDL that waits longer for a
/// lock fails and is retried, rather than queue the application's traffic
/// behind it. `0` in the config means no limit.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest `lock_timeout`/`statement_timeout` every database takes:
/// PostgreSQL and SQLite hold it in milliseconds as a 32-bit integer.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// `5s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("`{text}` is not a duration such as `5s`, `500ms`, `2m` or `1m30s`");
    // Number-unit pairs, as durations are printed (`1m30s`); a lone number is seconds.
    let mut rest = text;
    let mut seconds = 0.0;
    let mut parts = 0;
    while parts == 0 || !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(split);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let after_number = after_number.trim_start();
        let unit_end = after_number.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_end);
        let scale = match unit {
            "" if parts == 0 && after_unit.is_empty() => 1.0,
            "" => return Err(invalid()),
            "s" => 1.0,
            "ms" => 0.001,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit `{other}` in `{text}`; use ms, s, m or h")),
        };
        seconds += value * scale;
        parts += 1;
        rest = after_unit.trim_start();
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

/// The URL with any password replaced by `***`, fit for output and logs.
/// Safe on any string, however malformed: a password may hold `/ ? # @ :`,
/// so everything from the first `:` after `scheme://` to the last `@` is
/// masked, even when that hides more than the password.
///
/// Without an `@`, a `:` in the host part that is not followed by a port
/// (`postgres://app:s3cret/db`, the `@host` forgotten) starts a password
/// too: everything from it to the end is masked.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    let is_scheme = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let after_scheme = |end: usize| url[..end].find("://").filter(|&i| is_scheme(&url[..i])).map(|i| i + 3);
    if let Some(at) = url.rfind('@') {
        let start = after_scheme(at).unwrap_or(0);
        if let Some(colon) = url[start..at].find(':') {
            out.replace_range(start + colon + 1..at, "***");
        }
    } else if let Some(start) = after_scheme(url.len()) {
        if let Some(colon) = first_colon_not_before_a_port(&url[start..]) {
            out.replace_range(start + colon + 1.., "***");
        }
    }
    // `?password=…` (and `sslpassword=…`), up to the next parameter.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.to_ascii_lowercase().find("password=") {
        let value_start = i + "password=".len();
        result.push_str(&rest[..value_start]);
        result.push_str("***");
        let value_end = rest[value_start..].find('&').map_or(rest.len(), |j| value_start + j);
        rest = &rest[value_end..];
    }
    result.push_str(rest);
    // A value pasted by mistake can be megabytes long; its start is enough.
    const SHOWN: usize = 300;
    if result.len() > SHOWN {
        return crate::text::shorten(&result, SHOWN);
    }
    result
}

/// In `host:port,host:port/…` (the part after `scheme://`), the first `:`
/// not followed by a port number, `[IPv6]` literals skipped.
fn first_colon_not_before_a_port(authority: &str) -> Option<usize> {
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    let mut offset = 0;
    for host_port in authority[..end].split(',') {
        let bracket_end = if host_port.starts_with('[') { host_port.find(']').unwrap_or(0) } else { 0 };
        if let Some(colon) = host_port[bracket_end..].find(':').map(|c| c + bracket_end) {
            let port = &host_port[colon + 1..];
            if port.is_empty() || port.parse::<u16>().is_err() {
                return Some(offset + colon);
            }
        }
        offset += host_port.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "PGPASSWORD" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("conf.d/dev.yaml"), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn all_keys() {
        let c = parse(
            "connection: \"postgres://app:${PGPASSWORD}@db:5432/app?sslmode=require\"\nschema: public\nstate_table: deploy\nlock_timeout: 5s\nstatement_timeout: 0\nlock_retries: 4\nlock_wait: 500ms\n",
        );
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.connection.as_deref(), Some("postgres://app:s3cret@db:5432/app?sslmode=require"));
        assert_eq!(c.schema.as_deref(), Some("public"));
        assert_eq!(c.state_table, "deploy");
        assert_eq!(c.lock_timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.statement_timeout, None);
        assert_eq!(c.lock_retries, 4);
        assert_eq!(c.lock_wait, Duration::from_millis(500));
    }

    /// A byte-order mark with CRLF lines was "more than one document".
    #[test]
    fn a_byte_order_mark_and_crlf_lines_are_read() {
        for text in ["\u{feff}lock_retries: 4\r\nlock_wait: 5s\r\n", "\u{feff}lock_retries: 4\nlock_wait: 5s\n"] {
            let c = parse(text);
            assert_eq!(c.map(|c| (c.lock_retries, c.lock_wait)), Ok((4, Duration::from_secs(5))), "{text:?}");
        }
        let e = parse("\u{feff}lock_retries: 4\r\nlock_wiat: 5s\r\n").err().unwrap_or_default();
        assert!(e.starts_with("conf.d/dev.yaml:2: unknown key `lock_wiat`"), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_file() {
        let e = parse("conection: x\n").err().unwrap_or_default();
        assert_eq!(e, "conf.d/dev.yaml:1: unknown key `conection`; did you mean `connection`?");
        let e = parse("schema: x\n\"lock_wiat\" : 5s\n").err().unwrap_or_default();
        assert_eq!(e, "conf.d/dev.yaml:2: unknown key `lock_wiat`; did you mean `lock_wait`?");
        let e = parse("{schema: x, lock_wiat: 5s}").err().unwrap_or_default();
        assert_eq!(e, "conf.d/dev.yaml: unknown key `lock_wiat`; did you mean `lock_wait`?");
        let e = parse("connection: \"${NOPE}\"\n").ok().and_then(|c| c.connection_error).unwrap_or_default();
        assert!(e.contains("`NOPE` is not set"), "{e}");
        assert!(parse("schema: \"${NOPE}\"\n").is_err());
        assert_eq!(
            parse("connection: \"${NOPE:-sqlite::memory:}\"\n").ok().and_then(|c| c.connection).as_deref(),
            Some("sqlite::memory:")
        );
        assert_eq!(parse("connection: \"${EMPTY:-d}\"\n").ok().and_then(|c| c.connection).as_deref(), Some("d"));
        // `${}` said "variable `` is not set"; a name is letters, digits, `_`.
        for bad in ["${}", "${ HOME }", "${1X}", "${:-d}"] {
            let e = parse(&format!("schema: \"{bad}\"\n")).err().unwrap_or_default();
            assert!(e.contains("a `${` that is not a variable: write ${NAME}"), "{bad}: {e}");
        }
        assert!(parse("state_table: \"x; drop\"\n").is_err());
        assert!(parse("lock_wait: 5 fortnights\n").is_err());
        assert_eq!(
            parse("lock_timeout: 596h\n").ok().and_then(|c| c.lock_timeout),
            Some(Duration::from_secs(596 * 3600))
        );
        for key in ["lock_timeout", "statement_timeout"] {
            let e = parse(&format!("{key}: 597h\n")).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&format!("`{key}`: `597h` is longer than the databases accept")), "{e}");
            // The databases count milliseconds: it would have become 0, no limit at all.
            let e = parse(&format!("{key}: 0.0004s\n")).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&format!("`{key}`: `0.0004s` is under 1ms")), "{e}");
        }
    }

    /// Durations read as `text::duration` prints them, and as people write them.
    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("5", ms(5000)),
            ("1.5", ms(1500)),
            ("500ms", ms(500)),
            ("1.5s", ms(1500)),
            ("2m", ms(120_000)),
            ("2min", ms(120_000)),
            ("1m30s", ms(90_000)),
            ("1h 30m", ms(5_400_000)),
            ("1s500ms", ms(1500)),
            (" 0 ", ms(0)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for printed in [250, 1500, 2000, 90_000, 7_200_000] {
            assert_eq!(parse_duration(&crate::text::duration(ms(printed))), Ok(ms(printed)), "{printed}");
        }
        for bad in ["", "s", "-1s", "1m30", "5 fortnights", "1.2.3s", "1s-", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/app?sslmode=require"),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert_eq!(redact("mysql://root:p%40ss@h/db"), "mysql://root:***@h/db");
        assert_eq!(redact("postgres://app@db/app?password=s3cret&x=1"), "postgres://app@db/app?password=***&x=1");
        assert_eq!(redact("sqlite:///hellodb"), "sqlite:///hellodb");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db?sslpassword=s3cret"), "postgres://u@h/db?sslpassword=***");
        // An embedding service may log a config with `{:?}`.
        let config = parse("connection: \"postgres://app:s3cret@db/app\"\n").unwrap_or_default();
        let shown = format!("{config:?}");
        assert!(shown.contains("postgres://app:***@db/app") && !shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn identifiers_say_what_is_wrong() {
        let e = parse(&format!("state_table: {}\n", "a".repeat(49))).err().unwrap_or_default();
        assert!(e.contains("49 characters long; at most 48"), "{e}");
        assert!(parse(&format!("state_table: {}\n", "a".repeat(48))).is_ok());
        let e = parse("schema: my-app\n").err().unwrap_or_default();
        assert!(e.contains("plain identifier (ASCII letters, digits, `_`, not starting with a digit)"), "{e}");
    }

    /// Whatever the password holds, and however broken the URL around it,
    /// none of it shows; hiding more than the password is the lesser evil.
    #[test]
    fn passwords_are_redacted_in_malformed_urls() {
        for (url, shown) in [
            ("mysql://app:Xy/9k+Q=@127.0.0.1:3306/app", "mysql://app:***@127.0.0.1:3306/app"),
            ("postgres://u:ab/cd@127.0.0.1:1/db?foo=1", "postgres://u:***@127.0.0.1:1/db?foo=1"),
            ("postgres://u:a?b#c@d:e@h/db", "postgres://u:***@h/db"),
            ("postgres://u:S3cr@t@127.0.0.1:1/db", "postgres://u:***@127.0.0.1:1/db"),
            ("postgres://u:pw:x@h:notaport/db", "postgres://u:***@h:notaport/db"),
            ("postgres://u:p@h/db?application_name=a@b", "postgres://u:***@b"),
            ("postgres://u:p://w@h/db", "postgres://u:***@h/db"),
            ("app:s3cret@h/db", "app:***@h/db"),
            ("postgres:/app:s3cret@h/db", "postgres:***@h/db"),
            ("post gres://app:s3cret@h/db", "post gres:***@h/db"),
            ("postgres://u@h/db?password=a&b#c", "postgres://u@h/db?password=***&b#c"),
            ("postgres://u@h/db?password=a#b;c d", "postgres://u@h/db?password=***"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
        for url in [
            "sqlite::memory:",
            "sqlite:///a:b.db",
            "postgres://h:5432/db",
            "postgres://u@h/db",
            "postgres://h1:5432,h2:5433/db?x=a:b",
            "postgres://[::1]:5432/db",
            "mysql://h/db",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn a_long_value_is_shown_shortened() {
        let url = format!("postgres://app:s3cret@h/{}", "x".repeat(5_000_000));
        let shown = redact(&url);
        assert!(shown.starts_with("postgres://app:***@h/xxx") && shown.ends_with('…') && shown.chars().count() == 300);
    }

    /// With the `@host` forgotten, what follows the user's `:` was shown
    /// whole: the driver reads it as a port, and the error quoted the URL.
    #[test]
    fn a_password_without_a_host_after_it_is_masked() {
        for (url, shown) in [
            ("postgres://app:hunter2pass/db", "postgres://app:***"),
            ("postgres://app:hunter2pass", "postgres://app:***"),
            ("postgresql://app:hunter2pass?sslmode=require", "postgresql://app:***"),
            ("mysql://root:hunter2pass/db", "mysql://root:***"),
            ("mariadb://root:hunter2pass:3306/db", "mariadb://root:***"),
            ("postgres://app:/db", "postgres://app:***"),
            ("postgres://h1:5432,app:pw/db", "postgres://h1:5432,app:***"),
            ("postgres://app:99999", "postgres://app:***"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    /// A value of the wrong YAML type is named by its kind, never shown: it
    /// may be a connection URL with its password.
    #[test]
    fn type_errors_show_the_kind_never_the_value() {
        let url = "postgres://app:S3cret@127.0.0.1/db";
        for (name, _) in KEYS {
            for (value, found) in [
                (format!("[\"{url}\"]"), "a list"),
                (format!("{{a: \"{url}\"}}"), "a mapping"),
                (format!("!secret \"{url}\""), "a tagged value"),
                ("true".to_string(), "true/false"),
            ] {
                let e = parse(&format!("# dev\n{name}: {value}\n")).err().unwrap_or_default();
                assert!(e.starts_with(&format!("conf.d/dev.yaml:2: `{name}` must be ")), "{e}");
                assert!(e.ends_with(&format!(", not {found}")), "{e}");
                assert!(!e.contains("S3cret"), "{e}");
            }
        }
        let e = parse("lock_retries: [1]\n").err().unwrap_or_default();
        assert_eq!(e, "conf.d/dev.yaml:1: `lock_retries` must be a whole number, not a list");
        let e = parse(&format!("<<: {{connection: \"{url}\"}}\n")).err().unwrap_or_default();
        assert_eq!(e, "conf.d/dev.yaml:1: YAML merge keys (`<<`) are not supported; write the keys out");
        let e = parse(&format!("x: &a {{connection: \"{url}\"}}\n")).err().unwrap_or_default();
        assert!(e.starts_with("conf.d/dev.yaml:1: unknown key `x`") && !e.contains("S3cret"), "{e}");
        let e = parse(&format!("? [\"{url}\"]\n: 1\n")).err().unwrap_or_default();
        assert_eq!(e, "conf.d/dev.yaml: keys are names, not a list");
    }
}
