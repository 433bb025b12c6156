//! The state tables' SQL, written once for all dialects. Adapters only bind
//! the values below to their driver's parameter types.

use crate::dialect::Dialect;
use crate::error::DbError;
use crate::phase::Phase;
use crate::project::VersionId;
use crate::state::{LogEntry, PhaseState, Status};

/// A bound parameter, converted by each adapter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Text(Option<&'a str>),
    Int(i64),
}

/// SQL statements for one set of state tables.
#[derive(Debug, Clone)]
pub struct StateSql {
    pub state_table: String,
    pub log_table: String,
    pub meta_table: String,
    pub create: Vec<String>,
    pub select_state: String,
    pub select_log: String,
    pub upsert_state: String,
    pub delete_state: String,
    pub insert_log: String,
    pub select_schema_version: String,
    pub insert_schema_version: String,
}

/// Columns of `select_state`: text columns first, then integer columns.
pub const STATE_TEXT_COLUMNS: usize = 10;
pub const STATE_INT_COLUMNS: usize = 3;
/// Columns of `select_log`: text columns first, then `duration_ms`.
pub const LOG_TEXT_COLUMNS: usize = 10;

impl StateSql {
    /// `schema`: the PostgreSQL schema or MySQL database that holds the
    /// tables, named in every statement so that a section's `SET
    /// search_path` or `USE` cannot send pygrate's own writes elsewhere;
    /// `create_schema`: create it if missing (a configured `schema`).
    pub fn new(dialect: Dialect, prefix: &str, schema: Option<&str>, create_schema: bool) -> StateSql {
        let quote = |name: &str| match dialect {
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        };
        let table = |suffix: &str| match schema {
            Some(schema) if dialect != Dialect::Sqlite => {
                format!("{}.{}", quote(schema), quote(&format!("{prefix}_{suffix}")))
            }
            _ => quote(&format!("{prefix}_{suffix}")),
        };
        let (state, log, meta) = (table("state"), table("log"), table("meta"));
        let (text, name, hash, int, id, table_options) = match dialect {
            Dialect::Sqlite => ("TEXT", "TEXT", "TEXT", "INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT", ""),
            Dialect::Postgres => {
                ("text", "text", "text", "bigint", "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "")
            }
            Dialect::Mysql => (
                "TEXT",
                "VARCHAR(255)",
                "VARCHAR(64)",
                "BIGINT",
                "BIGINT AUTO_INCREMENT PRIMARY KEY",
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ),
        };
        let mut create = Vec::new();
        if let (Some(schema), Dialect::Postgres, true) = (schema, dialect, create_schema) {
            // Only when missing: even with IF NOT EXISTS, CREATE SCHEMA needs
            // CREATE on the database, which a role that owns its schema lacks.
            let name = quote(schema);
            create.push(format!(
                "DO $pygrate$ BEGIN IF to_regnamespace('{}') IS NULL THEN CREATE SCHEMA {name}; END IF; END $pygrate$",
                name.replace('\'', "''")
            ));
        }
        create.push(format!(
            "CREATE TABLE IF NOT EXISTS {state} (\
             release_name {name} NOT NULL, version_name {name} NOT NULL, phase {name} NOT NULL, \
             status {name} NOT NULL, checksum {hash}, rollback_checksum {hash}, \
             rolling_back {int} NOT NULL DEFAULT 0, statements_done {int} NOT NULL DEFAULT 0, done_checksum {hash}, \
             applied_at {name} NOT NULL, applied_by {name} NOT NULL, duration_ms {int} NOT NULL DEFAULT 0, error {text}, \
             PRIMARY KEY (release_name, version_name, phase)){table_options}"
        ));
        create.push(format!(
            "CREATE TABLE IF NOT EXISTS {log} (\
             id {id}, run_at {name} NOT NULL, run_by {name} NOT NULL, operation {name} NOT NULL, \
             release_name {name} NOT NULL, version_name {name} NOT NULL, phase {name} NOT NULL, outcome {name} NOT NULL, \
             checksum {hash}, old_checksum {hash}, duration_ms {int} NOT NULL DEFAULT 0, detail {text}){table_options}"
        ));
        create.push(format!(
            "CREATE TABLE IF NOT EXISTS {meta} (meta_key {name} NOT NULL PRIMARY KEY, meta_value {name} NOT NULL){table_options}"
        ));
        let placeholders = |n: usize| -> String {
            (1..=n)
                .map(|i| if dialect == Dialect::Postgres { format!("${i}") } else { "?".to_string() })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let state_columns = "release_name, version_name, phase, status, checksum, rollback_checksum, done_checksum, \
                             applied_at, applied_by, error, rolling_back, statements_done, duration_ms";
        let updated = [
            "status",
            "checksum",
            "rollback_checksum",
            "done_checksum",
            "applied_at",
            "applied_by",
            "error",
            "rolling_back",
            "statements_done",
            "duration_ms",
        ];
        let upsert_tail = match dialect {
            Dialect::Mysql => format!(
                "ON DUPLICATE KEY UPDATE {}",
                updated.iter().map(|c| format!("{c} = VALUES({c})")).collect::<Vec<_>>().join(", ")
            ),
            _ => format!(
                "ON CONFLICT (release_name, version_name, phase) DO UPDATE SET {}",
                updated.iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", ")
            ),
        };
        let log_columns =
            "run_at, run_by, operation, release_name, version_name, phase, outcome, checksum, old_checksum, detail, duration_ms";
        let insert_ignore = match dialect {
            Dialect::Mysql => format!("INSERT IGNORE INTO {meta} (meta_key, meta_value) VALUES ('schema_version', {})", placeholders(1)),
            _ => format!(
                "INSERT INTO {meta} (meta_key, meta_value) VALUES ('schema_version', {}) ON CONFLICT (meta_key) DO NOTHING",
                placeholders(1)
            ),
        };
        let where_key = match dialect {
            Dialect::Postgres => "release_name = $1 AND version_name = $2 AND phase = $3",
            _ => "release_name = ? AND version_name = ? AND phase = ?",
        };
        StateSql {
            select_state: format!("SELECT {state_columns} FROM {state}"),
            select_log: format!("SELECT {log_columns} FROM {log} ORDER BY id"),
            upsert_state: format!("INSERT INTO {state} ({state_columns}) VALUES ({}) {upsert_tail}", placeholders(13)),
            delete_state: format!("DELETE FROM {state} WHERE {where_key}"),
            insert_log: format!("INSERT INTO {log} ({log_columns}) VALUES ({})", placeholders(11)),
            select_schema_version: format!("SELECT meta_value FROM {meta} WHERE meta_key = 'schema_version'"),
            insert_schema_version: insert_ignore,
            state_table: state,
            log_table: log,
            meta_table: meta,
            create,
        }
    }
}

/// `sql` with its placeholders (`$N` on PostgreSQL, `?` on MySQL) replaced
/// by literals, so that a state write can travel in one message with other
/// statements. Text needs no escaping: PostgreSQL gets a dollar-quoted
/// literal whose tag does not occur in it (whatever
/// `standard_conforming_strings` says), MySQL a hex literal with a utf8mb4
/// introducer (whatever `sql_mode` says about backslashes).
pub fn inline(dialect: Dialect, sql: &str, params: &[Value<'_>]) -> String {
    let mut out = String::with_capacity(sql.len() + 512);
    let mut rest = sql;
    let mut next = params.iter();
    let marker = if dialect == Dialect::Postgres { '$' } else { '?' };
    // One pass over the template, so a literal already written is never
    // searched for placeholders again.
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at]);
        let (param, len) = if dialect == Dialect::Postgres {
            let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
            let n = rest[at + 1..at + 1 + digits].parse::<usize>().ok();
            (n.and_then(|n| params.get(n.wrapping_sub(1))), 1 + digits)
        } else {
            (next.next(), 1)
        };
        match param {
            Some(value) => push_literal(&mut out, dialect, value),
            None => out.push_str(&rest[at..at + len]),
        }
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}

fn push_literal(out: &mut String, dialect: Dialect, value: &Value<'_>) {
    match value {
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Text(None) => out.push_str("NULL"),
        Value::Text(Some(text)) if dialect == Dialect::Postgres => {
            let mut tag = "$v$".to_string();
            let mut n = 0;
            while text.contains(tag.as_str()) {
                n += 1;
                tag = format!("$v{n}$");
            }
            out.push_str(&tag);
            out.push_str(text);
            out.push_str(&tag);
        }
        Value::Text(Some(text)) => {
            // An empty X'' is the empty string too.
            out.push_str("_utf8mb4 X'");
            for byte in text.bytes() {
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
            out.push('\'');
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Parameters of `upsert_state`, in column order.
pub fn state_params(row: &PhaseState) -> Vec<Value<'_>> {
    vec![
        Value::Text(Some(&row.id.release)),
        Value::Text(Some(&row.id.version)),
        Value::Text(Some(row.phase.name())),
        Value::Text(Some(row.status.as_str())),
        Value::Text(row.checksum.as_deref()),
        Value::Text(row.rollback_checksum.as_deref()),
        Value::Text(row.done_checksum.as_deref()),
        Value::Text(Some(&row.at)),
        Value::Text(Some(&row.by)),
        Value::Text(row.error.as_deref()),
        Value::Int(i64::from(row.rolling_back)),
        Value::Int(row.statements_done),
        Value::Int(row.duration_ms),
    ]
}

/// Parameters of `delete_state`.
pub fn key_params<'a>(id: &'a VersionId, phase: Phase) -> Vec<Value<'a>> {
    vec![Value::Text(Some(&id.release)), Value::Text(Some(&id.version)), Value::Text(Some(phase.name()))]
}

/// Parameters of `insert_log`, in column order.
pub fn log_params(entry: &LogEntry) -> Vec<Value<'_>> {
    vec![
        Value::Text(Some(&entry.at)),
        Value::Text(Some(&entry.by)),
        Value::Text(Some(&entry.operation)),
        Value::Text(Some(&entry.release)),
        Value::Text(Some(&entry.version)),
        Value::Text(Some(&entry.phase)),
        Value::Text(Some(&entry.outcome)),
        Value::Text(entry.checksum.as_deref()),
        Value::Text(entry.old_checksum.as_deref()),
        Value::Text(entry.detail.as_deref()),
        Value::Int(entry.duration_ms),
    ]
}

/// One result row of a driver, read by column index. Adapters implement
/// only this; the layout of the state rows is decoded here, once.
pub trait Cells {
    fn text(&mut self, index: usize) -> Result<Option<String>, DbError>;
    fn int(&mut self, index: usize) -> Result<i64, DbError>;
}

/// A row of `select_state`.
pub fn decode_state(row: &mut impl Cells) -> Result<PhaseState, DbError> {
    let mut texts: [Option<String>; STATE_TEXT_COLUMNS] = Default::default();
    for (i, t) in texts.iter_mut().enumerate() {
        *t = row.text(i)?;
    }
    let mut ints = [0i64; STATE_INT_COLUMNS];
    for (i, v) in ints.iter_mut().enumerate() {
        *v = row.int(STATE_TEXT_COLUMNS + i)?;
    }
    let [release, version, phase, status, checksum, rollback_checksum, done_checksum, at, by, error] = texts;
    let [rolling_back, statements_done, duration_ms] = ints;
    let required = |v: Option<String>, column: &str| {
        v.ok_or_else(|| DbError::new(format!("state table: `{column}` is NULL; the state table was edited by hand")))
    };
    let phase_name = required(phase, "phase")?;
    let status_name = required(status, "status")?;
    Ok(PhaseState {
        id: VersionId::new(required(release, "release_name")?, required(version, "version_name")?),
        phase: Phase::from_name(&phase_name)
            .ok_or_else(|| DbError::new(format!("state table: unknown phase `{phase_name}`")))?,
        status: Status::parse(&status_name)
            .ok_or_else(|| DbError::new(format!("state table: unknown status `{status_name}`")))?,
        checksum,
        rollback_checksum,
        rolling_back: rolling_back != 0,
        statements_done,
        done_checksum,
        at: at.unwrap_or_default(),
        by: by.unwrap_or_default(),
        duration_ms,
        error,
    })
}

/// A row of `select_log`.
pub fn decode_log(row: &mut impl Cells) -> Result<LogEntry, DbError> {
    let mut texts: [Option<String>; LOG_TEXT_COLUMNS] = Default::default();
    for (i, t) in texts.iter_mut().enumerate() {
        *t = row.text(i)?;
    }
    let duration_ms = row.int(LOG_TEXT_COLUMNS)?;
    let [at, by, operation, release, version, phase, outcome, checksum, old_checksum, detail] = texts;
    Ok(LogEntry {
        at: at.unwrap_or_default(),
        by: by.unwrap_or_default(),
        operation: operation.unwrap_or_default(),
        release: release.unwrap_or_default(),
        version: version.unwrap_or_default(),
        phase: phase.unwrap_or_default(),
        outcome: outcome.unwrap_or_default(),
        checksum,
        old_checksum,
        duration_ms,
        detail,
    })
}

/// Refuses state tables written by a newer pygrate; there is no upgrade yet
/// because there is only one layout.
pub fn check_schema_version(found: Option<&str>) -> Result<(), DbError> {
    match found.map(str::parse::<i64>) {
        None => Ok(()),
        Some(Ok(v)) if v <= crate::state::SCHEMA_VERSION => Ok(()),
        Some(Ok(v)) => Err(DbError::new(format!(
            "the state tables have schema version {v}, newer than this pygrate understands ({}); upgrade pygrate",
            crate::state::SCHEMA_VERSION
        ))),
        Some(Err(_)) => Err(DbError::new("the state tables' schema_version is not a number; it was edited by hand")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_placeholders_per_dialect() {
        let pg = StateSql::new(Dialect::Postgres, "deploy", Some("ops"), true);
        assert_eq!(pg.state_table, "\"ops\".\"deploy_state\"");
        assert!(pg.upsert_state.contains("$13") && pg.upsert_state.contains("ON CONFLICT"));
        assert!(pg.create[0].contains("IF to_regnamespace('\"ops\"') IS NULL THEN CREATE SCHEMA \"ops\";"));
        let current = StateSql::new(Dialect::Postgres, "deploy", Some("we\"ird"), false);
        assert_eq!(current.state_table, "\"we\"\"ird\".\"deploy_state\"");
        assert!(current.create[0].starts_with("CREATE TABLE"), "the current schema exists already");
        let my = StateSql::new(Dialect::Mysql, "pygrate", Some("app`db"), false);
        assert_eq!(my.log_table, "`app``db`.`pygrate_log`");
        assert!(my.upsert_state.contains("ON DUPLICATE KEY UPDATE") && !my.upsert_state.contains('$'));
        assert_eq!(StateSql::new(Dialect::Mysql, "pygrate", None, false).log_table, "`pygrate_log`");
        let lite = StateSql::new(Dialect::Sqlite, "pygrate", None, false);
        assert_eq!(lite.upsert_state.matches('?').count(), 13);
        assert_eq!(lite.insert_log.matches('?').count(), 11);
    }

    #[test]
    fn postgres_literals_need_no_escaping() {
        let sql = "INSERT INTO t VALUES ($1, $2, $3, $10, $11)";
        let mut params = vec![Value::Text(Some("it's")), Value::Text(None), Value::Int(-7)];
        params.extend([Value::Int(0); 6]);
        params.extend([Value::Text(Some("a$v$b")), Value::Text(Some(r"c:\"))]);
        let pg = |sql, params: &[Value<'_>]| inline(Dialect::Postgres, sql, params);
        // A literal that looks like a placeholder is not replaced again.
        assert_eq!(pg("($1, $2)", &[Value::Text(Some("5$2")), Value::Int(1)]), "($v$5$2$v$, 1)");
        assert_eq!(pg(sql, &params), r"INSERT INTO t VALUES ($v$it's$v$, NULL, -7, $v1$a$v$b$v1$, $v$c:\$v$)");
    }

    #[test]
    fn mysql_literals_need_no_escaping() {
        let params = [Value::Text(Some("a?'\\é")), Value::Text(None), Value::Int(3), Value::Text(Some(""))];
        assert_eq!(
            inline(Dialect::Mysql, "VALUES (?, ?, ?, ?) -- ?", &params),
            "VALUES (_utf8mb4 X'613F275CC3A9', NULL, 3, _utf8mb4 X'') -- ?"
        );
    }

    #[test]
    fn schema_versions() {
        assert!(check_schema_version(None).is_ok());
        assert!(check_schema_version(Some("1")).is_ok());
        assert!(check_schema_version(Some("2")).is_err());
    }
}
