//! The one boundary between pygrate and a database. The executor drives any
//! `Backend`; an adapter per database implements it and knows nothing of lanes.

mod mysql;
mod postgres;
mod sqlite;
pub mod state_sql;

use std::borrow::Cow;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{redact, Config};
use crate::dialect::Dialect;
use crate::error::{DbError, Error};
use crate::interrupt::Canceller;
use crate::phase::Phase;
use crate::project::VersionId;
use crate::state::{elapsed_ms, Actor, LogEntry, PhaseState};

/// What the executor may rely on. It branches on these, never on a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// DDL rolls back with its transaction, so a section and its state row can
    /// commit together. False on MySQL/MariaDB, where DDL commits implicitly.
    pub transactional_ddl: bool,
    /// A write transaction locks the whole database (SQLite), so holding one
    /// across several sections locks nothing a single section would not.
    pub database_wide_writes: bool,
    /// A commit may return before it is on disk and a later one that waits
    /// makes it durable too, the log being flushed in order (PostgreSQL's
    /// `synchronous_commit = off` per transaction): a crash of the server
    /// can undo only the last such commits, each whole, state row included.
    pub deferred_durability: bool,
}

/// Where a section's transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedAt {
    /// The statement at this index of the section.
    Statement(usize),
    /// pygrate's own work around the statements: beginning the transaction,
    /// the state and log rows, the commit.
    Recording,
    /// The section went to the database as one message and the error gives
    /// no position to tell which statement failed.
    Unlocated(Unlocated),
}

/// Why the failing statement of a section sent as one message is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlocated {
    /// A lock wait, a timeout, a cancel or a deadlock: running the section
    /// again to find the statement would wait again, in front of the
    /// application's traffic. Or a serialization failure, which needs the
    /// concurrent transaction it met.
    Waited,
    /// The connection failed: nothing more can be run on it.
    ConnectionLost,
    /// Run again statement by statement in a transaction that was rolled back,
    /// the section did not fail the same way (e.g. the error depended on a
    /// sequence's value or on what other sessions were doing).
    DidNotRecur,
    /// The error came at COMMIT, once every statement had run: a deferred
    /// constraint or constraint trigger is checked there, and no one
    /// statement is to blame.
    AtCommit,
}

/// A section's transaction failed: where, and the database's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionError {
    pub at: FailedAt,
    /// Boxed: keeps the `Result` of every section run small.
    pub error: Box<DbError>,
    /// The section was run a second time, in a transaction that was rolled
    /// back, to find where it failed.
    pub replayed: bool,
}

impl SectionError {
    pub fn new(at: FailedAt, error: DbError) -> SectionError {
        SectionError { at, error: Box::new(error), replayed: false }
    }

    pub fn recording(error: DbError) -> SectionError {
        SectionError::new(FailedAt::Recording, error)
    }
}

/// A section to run in a transaction, with the rows that record it.
pub struct SectionRun<'s> {
    pub statements: &'s [&'s str],
    pub row: &'s PhaseState,
    pub log: &'s LogEntry,
    /// The rows record how long the statements took since then.
    pub started: Instant,
    /// The commit waits until it is on disk; false only where
    /// `Capabilities::deferred_durability`, and a later commit that waits
    /// confirms this one too.
    pub durable: bool,
}

/// How long statements may wait, from the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
}

/// Everything an adapter needs besides the URL.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_table: String,
    pub schema: Option<String>,
    pub timeouts: Timeouts,
    pub actor: Actor,
    /// Used when the URL sets none. None (as after `connect_timeout=0`): wait
    /// as long as the operating system does.
    pub connect_timeout: Option<Duration>,
    pub keepalive: Keepalive,
}

/// TCP keepalive, used for whatever the URL does not set. The drivers' own
/// defaults (PostgreSQL: first probe after 2 hours idle; MySQL: none) leave a
/// run whose database host vanished (failover, network partition) waiting on
/// a dead connection for hours; with these it fails within about two minutes.
/// Probes cost nothing while a long statement runs: the server's kernel
/// answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection counts as dead.
    pub retries: u32,
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive { idle: Duration::from_secs(60), interval: Duration::from_secs(10), retries: 6 }
    }
}

impl Settings {
    pub fn from_config(config: &Config, actor: Actor) -> Settings {
        Settings {
            state_table: config.state_table.clone(),
            schema: config.schema.clone(),
            timeouts: Timeouts { lock_timeout: config.lock_timeout, statement_timeout: config.statement_timeout },
            actor,
            connect_timeout: Some(Duration::from_secs(10)),
            keepalive: Keepalive::default(),
        }
    }
}

pub trait Backend {
    fn capabilities(&self) -> Capabilities;
    fn dialect(&self) -> Dialect;

    /// A handle that cancels, from another thread, the statement this
    /// connection runs at that moment (none, if the engine cannot).
    fn canceller(&mut self) -> Option<Canceller>;

    /// Takes the migration lock if it is free; never waits.
    fn try_lock(&mut self) -> Result<bool, DbError>;
    fn unlock(&mut self) -> Result<(), DbError>;
    /// Who holds the migration lock, as far as the database can tell.
    fn lock_holder(&mut self) -> Result<String, DbError> {
        Ok(self.lock_holder_now()?.unwrap_or_else(|| "another session".to_string()))
    }
    /// Who holds the migration lock at this moment; None when nobody does.
    /// Never waits for the lock, so `status` can ask during a run.
    fn lock_holder_now(&mut self) -> Result<Option<String>, DbError>;

    /// The state tables' schema version; None when they do not exist yet.
    fn schema_version(&mut self) -> Result<Option<String>, DbError>;
    /// Creates whatever state tables are missing and records the schema
    /// version where none is recorded.
    fn create_state_tables(&mut self) -> Result<(), DbError>;

    /// Creates the state tables, or upgrades them, under the lock. Tables
    /// that are current are only read, so a database busy with the
    /// application's writes does not stop a run before its first section.
    fn ensure_state_tables(&mut self) -> Result<(), DbError> {
        let found = self.schema_version()?;
        state_sql::check_schema_version(found.as_deref())?;
        if found.as_deref() == Some(crate::state::SCHEMA_VERSION.to_string().as_str()) {
            return Ok(());
        }
        self.create_state_tables()
    }
    /// The connection's password, to mask wherever a message might quote
    /// it (a statement's error may quote what the statement was given).
    fn password(&self) -> Option<&str> {
        None
    }

    /// Bounds how long what follows waits for a lock another session holds
    /// (None: `lock_timeout` again). Only SQLite's reads wait for writers;
    /// the servers' reads never do.
    fn bound_lock_waits(&mut self, _limit: Option<Duration>) -> Result<(), DbError> {
        Ok(())
    }
    /// Every state row; `None` when the state tables do not exist yet.
    fn read_state(&mut self) -> Result<Option<Vec<PhaseState>>, DbError>;
    /// Every log row, oldest first (for tests and audits).
    fn read_log(&mut self) -> Result<Vec<LogEntry>, DbError>;

    fn begin(&mut self) -> Result<(), DbError>;
    /// Whether a transaction is open now, on the server's word where a
    /// statement may have ended one (MySQL's DDL commits implicitly).
    fn in_transaction(&mut self) -> Result<bool, DbError>;
    fn commit(&mut self) -> Result<(), DbError>;
    fn rollback(&mut self) -> Result<(), DbError>;
    /// Runs one statement of a migration.
    fn execute(&mut self, sql: &str) -> Result<(), DbError>;
    /// Applies the configured timeouts to what follows: to the open
    /// transaction when `in_transaction`, else to the session.
    fn apply_timeouts(&mut self, in_transaction: bool) -> Result<(), DbError>;
    /// The open transaction's commit returns without waiting for the disk
    /// (see `Capabilities::deferred_durability`).
    fn defer_flush(&mut self) -> Result<(), DbError> {
        Ok(())
    }
    /// Returns once every commit of this session is on disk, those that did
    /// not wait included.
    fn flush_commits(&mut self) -> Result<(), DbError> {
        Ok(())
    }
    /// Drops index `name` (as written in SQL) if it exists and is INVALID,
    /// as PostgreSQL leaves one behind when `CREATE INDEX CONCURRENTLY`
    /// fails or is cancelled, so that building it again builds it: true if
    /// it did. Runs like a migration statement (`lock_timeout` applies).
    fn drop_invalid_index(&mut self, _name: &str) -> Result<bool, DbError> {
        Ok(false)
    }
    /// Puts the session back as it was opened (search path, role, current
    /// database) if a statement run since may have changed it, so that a
    /// section runs the same whether or not others ran before it on this
    /// connection: a resume or a later `ff` starts on a fresh one.
    fn reset_session(&mut self) -> Result<(), DbError>;

    /// Runs a section's statements, its state row and its log row in one
    /// transaction. On error the transaction is left for the caller to roll
    /// back. Adapters may override it to save round trips, at the price of
    /// knowing less about where a failure happened (see `FailedAt`).
    /// `on_statement(i)` is called as statement `i` is about to be sent; an
    /// error from it stops the section there, statement `i` unsent.
    fn run_atomic(
        &mut self,
        section: &SectionRun<'_>,
        on_statement: &mut dyn FnMut(usize) -> Result<(), DbError>,
    ) -> Result<(), SectionError> {
        self.run_stepwise(section, on_statement)
    }

    /// `run_atomic` one statement at a time, so that a failure names its
    /// statement without anything being run twice. Not overridden.
    fn run_stepwise(
        &mut self,
        section: &SectionRun<'_>,
        on_statement: &mut dyn FnMut(usize) -> Result<(), DbError>,
    ) -> Result<(), SectionError> {
        self.begin().map_err(SectionError::recording)?;
        self.apply_timeouts(true).map_err(SectionError::recording)?;
        if !section.durable {
            self.defer_flush().map_err(SectionError::recording)?;
        }
        self.run_section(section, on_statement)?;
        self.commit().map_err(|e| SectionError::new(FailedAt::Unlocated(Unlocated::AtCommit), e))
    }

    /// The section's statements, then its state and log rows with how long
    /// the statements took, in the transaction that is open.
    fn run_section(
        &mut self,
        section: &SectionRun<'_>,
        on_statement: &mut dyn FnMut(usize) -> Result<(), DbError>,
    ) -> Result<(), SectionError> {
        for (i, sql) in section.statements.iter().enumerate() {
            on_statement(i).map_err(|error| SectionError::new(FailedAt::Statement(i), error))?;
            self.execute(sql).map_err(|error| SectionError::new(FailedAt::Statement(i), error))?;
        }
        let duration_ms = elapsed_ms(section.started);
        let row = PhaseState { duration_ms, ..section.row.clone() };
        let log = LogEntry { duration_ms, ..section.log.clone() };
        self.record_section(&row, &log).map_err(SectionError::recording)
    }

    /// A section's state and log rows, the last writes of its open
    /// transaction.
    fn record_section(&mut self, row: &PhaseState, log: &LogEntry) -> Result<(), DbError> {
        self.save_phase(row)?;
        self.append_log(log)
    }

    /// Runs a section, its state row and its log row inside the open
    /// transaction, under a savepoint: on error the section leaves nothing
    /// behind and the transaction stays open for what ran before it.
    fn run_nested(
        &mut self,
        section: &SectionRun<'_>,
        on_statement: &mut dyn FnMut(usize) -> Result<(), DbError>,
    ) -> Result<(), SectionError> {
        self.execute("SAVEPOINT pygrate_section").map_err(SectionError::recording)?;
        let ran = self.run_section(section, on_statement);
        if ran.is_err() {
            let _ = self.execute("ROLLBACK TO SAVEPOINT pygrate_section");
        }
        let released = self.execute("RELEASE SAVEPOINT pygrate_section").map_err(SectionError::recording);
        ran.and(released)
    }

    /// The bookkeeping of a tracked section: writes `row` (and `log`), then
    /// commits the open transaction when `commit`, then opens the next one
    /// when `begin`. A row and its log row are written together or not at
    /// all: with no transaction open, in one of their own. On error a
    /// transaction may be left open for the caller to roll back. Adapters
    /// may send it all as one message.
    fn record(&mut self, row: &PhaseState, log: Option<&LogEntry>, commit: bool, begin: bool) -> Result<(), DbError> {
        let own = log.is_some() && !self.in_transaction()?;
        if own {
            self.begin()?;
        }
        self.save_phase(row)?;
        if let Some(log) = log {
            self.append_log(log)?;
        }
        if commit || own {
            self.commit()?;
        }
        if begin {
            self.begin()?;
        }
        Ok(())
    }

    fn save_phase(&mut self, row: &PhaseState) -> Result<(), DbError>;
    fn delete_phase(&mut self, id: &VersionId, phase: Phase) -> Result<(), DbError>;
    fn append_log(&mut self, entry: &LogEntry) -> Result<(), DbError>;
}

/// Where a connection URL points.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    SqliteFile(PathBuf),
    SqliteMemory,
    Postgres(String),
    Mysql(String),
}

/// Never shows a password, even in debug output.
impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::SqliteFile(path) => f.debug_tuple("SqliteFile").field(path).finish(),
            Location::SqliteMemory => f.write_str("SqliteMemory"),
            Location::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
            Location::Mysql(url) => f.debug_tuple("Mysql").field(&redact(url)).finish(),
        }
    }
}

impl Location {
    /// `sqlite:///rel` (relative to the project root), `sqlite:////abs`,
    /// `sqlite::memory:`, `postgres(ql)://…`, `mysql://…`, `mariadb://…`.
    pub fn parse(url: &str, root: &Path) -> Result<Location, Error> {
        let bad = |why: &str| Error::Usage(format!("connection `{}`: {why}", redact(url)));
        // Schemes are case-insensitive (RFC 3986); the drivers want them lower case.
        let scheme_end = url.find(':').unwrap_or(0);
        let url = &format!("{}{}", url[..scheme_end].to_ascii_lowercase(), &url[scheme_end..]);
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(Location::SqliteMemory);
        }
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let Some(path) = rest.strip_prefix('/') else {
                return Err(bad("write sqlite:///relative/path.db (three slashes) or sqlite:////absolute/path.db"));
            };
            if path.is_empty() {
                return Err(bad("no database file after sqlite:///"));
            }
            // Taken as part of the file name, `?mode=ro` would create and
            // migrate a new database beside the one meant.
            if path.contains(['?', '#']) {
                return Err(bad("SQLite URLs take no parameters (`?…`, `#…`); name the database file only"));
            }
            let path = Path::new(path);
            return Ok(Location::SqliteFile(if path.is_absolute() { path.to_path_buf() } else { root.join(path) }));
        }
        if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
            check_credentials(rest).map_err(|why| bad(&why))?;
            return Ok(Location::Postgres(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("mysql://").or_else(|| url.strip_prefix("mariadb://")) {
            check_credentials(rest).map_err(|why| bad(&why))?;
            return Ok(Location::Mysql(format!("mysql://{rest}")));
        }
        const SCHEMES: &str = "sqlite://, postgres://, postgresql://, mysql:// or mariadb://";
        if !url.contains("://") {
            // Not shown: a value with no scheme at all may be a password
            // put where the URL belongs.
            return Err(Error::Usage(format!("connection: not a URL (no `scheme://`); use {SCHEMES}")));
        }
        Err(bad(&format!("unsupported scheme; use {SCHEMES}")))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Location::SqliteFile(_) | Location::SqliteMemory => Dialect::Sqlite,
            Location::Postgres(_) => Dialect::Postgres,
            Location::Mysql(_) => Dialect::Mysql,
        }
    }
}

/// Whether `sql` may change the session for what follows: `SET` (not `SET
/// LOCAL` or `SET TRANSACTION`, which end with the transaction), `RESET`,
/// `USE`, or PostgreSQL's `set_config` (as pg_dump output calls it). Only
/// that last case reads past the first words, and only on PostgreSQL: this
/// runs for every statement of a MySQL section.
pub fn changes_session(sql: &str, dialect: Dialect) -> bool {
    // `/*!40000 USE db */` is a USE to the server.
    if let Some(code) = crate::splitter::executable_comments_as_code(sql, dialect) {
        return changes_session_as_written(&code, dialect);
    }
    changes_session_as_written(sql, dialect)
}

fn changes_session_as_written(sql: &str, dialect: Dialect) -> bool {
    let mut words = crate::lexer::Lexer::new(sql, 1, dialect).map_while(Result::ok).filter(|t| t.is_code());
    let Some(first) = words.next() else { return false };
    if first.is_any_word(&["RESET", "USE"]) {
        return true;
    }
    if first.is_word("SET") {
        return !words.next().is_some_and(|second| second.is_any_word(&["LOCAL", "TRANSACTION"]));
    }
    dialect == Dialect::Postgres && words.any(|t| t.is_word("set_config"))
}

/// The user name and password (`rest` is the URL after `scheme://`) run to the
/// URL's last `@`. An `@`, `/`, `?` or `#` before it makes the drivers split
/// the URL elsewhere (PostgreSQL at the first `@`, MySQL at the first `/`),
/// and then show part of the password as the host or the database.
fn check_credentials(rest: &str) -> Result<(), String> {
    let Some(at) = rest.rfind('@') else {
        return Ok(());
    };
    let found: Vec<String> =
        ['@', '/', '?', '#'].into_iter().filter(|&c| rest[..at].contains(c)).map(|c| format!("`{c}`")).collect();
    if found.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the user name or password (everything before the last `@`) holds {}, which must be percent-encoded: \
         `@` as %40, `/` as %2F, `?` as %3F, `#` as %23",
        found.join(", ")
    ))
}

/// `error` with the connection's password masked in its texts. The drivers'
/// messages should never hold the password; this makes sure.
pub(crate) fn scrub_password(mut error: DbError, password: Option<&str>) -> DbError {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return error;
    };
    error.message = mask_word(&error.message, password);
    error.detail = error.detail.map(|text| mask_word(&text, password));
    error.hint = error.hint.map(|text| mask_word(&text, password));
    error
}

/// `text` as it may be shown: the connection's password masked (SPEC 7: it
/// never appears in any output), as a statement may quote it
/// (`CREATE USER … PASSWORD`). Borrowed when there is nothing to mask.
pub(crate) fn mask_password<'t>(text: &'t str, password: Option<&str>) -> Cow<'t, str> {
    match password {
        Some(password) if !password.is_empty() && text.contains(password) => Cow::Owned(mask_word(text, password)),
        _ => Cow::Borrowed(text),
    }
}

/// `text` with `secret` replaced by `***` where it stands on its own, not
/// where it is part of a longer word: a one-letter password must not turn
/// `database` into `databas***`, mangling the message and giving itself away.
pub(crate) fn mask_word(text: &str, secret: &str) -> String {
    let joined =
        |a: Option<char>, b: Option<char>| a.zip(b).is_some_and(|(a, b)| a.is_alphanumeric() && b.is_alphanumeric());
    let (first, last) = (secret.chars().next(), secret.chars().last());
    let mut out = String::with_capacity(text.len());
    let mut before = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let after = rest.strip_prefix(secret).map(|tail| tail.chars().next());
        match after {
            Some(after) if !secret.is_empty() && !joined(before, first) && !joined(last, after) => {
                out.push_str("***");
                before = last;
                rest = &rest[secret.len()..];
            }
            _ => {
                out.push(c);
                before = Some(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Linux's limits for TCP_KEEPIDLE and TCP_KEEPINTVL (seconds) and for
/// TCP_KEEPCNT. The drivers hand the URL's values to the kernel as they are,
/// and one it refuses fails the connect with a bare "Invalid argument".
const KEEPALIVE_SECS: RangeInclusive<u64> = 1..=32_767;
const KEEPALIVE_PROBES: RangeInclusive<u64> = 1..=127;

/// A keepalive setting of the URL that the kernel would refuse, as a usage
/// error naming the parameter.
fn check_keepalive(url: &str, parameter: &str, value: u64, range: &RangeInclusive<u64>) -> Result<(), Error> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "connection `{}`: {parameter}={value} is out of range; the kernel accepts {} to {}",
        redact(url),
        range.start(),
        range.end()
    )))
}

/// Runs a driver's connect with a deadline on the whole of it. The drivers
/// bound only the TCP connect, so a server that accepts a connection and then
/// never answers (an overloaded host, a proxy with nothing behind it) would
/// hang the handshake, and the deployment, forever. Past `limit` the attempt
/// is left to end on its own thread, which drops its connection if one ever
/// comes, and the error names `option`, the URL parameter that sets the
/// limit. No limit (the user's `0`): wait for the attempt to end.
fn within<T: Send + 'static>(
    limit: Option<Duration>,
    option: &str,
    connect: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DbError> {
    let Some(limit) = limit else {
        return Ok(connect());
    };
    let (done, result) = std::sync::mpsc::channel();
    let attempt = std::thread::spawn(move || {
        let _ = done.send(connect());
    });
    let no_answer = || {
        DbError::new(format!(
            "no answer within {}: the server accepted the connection but did not complete the handshake \
             (if it is only slow, raise `{option}` in the URL)",
            crate::text::duration(limit)
        ))
    };
    match result.recv_timeout(limit) {
        Ok(connected) => Ok(connected),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(no_answer()),
        // The attempt ended without a result: it panicked; pass that on.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match attempt.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => Err(no_answer()),
        },
    }
}

/// `host:port` for messages, an IPv6 address in brackets as URLs write it.
fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Opens a connection. `create` false: a missing SQLite file is not created
/// (read-only commands must not leave files behind).
pub fn connect(location: &Location, settings: &Settings, create: bool) -> Result<Box<dyn Backend + Send>, Error> {
    Ok(match location {
        Location::SqliteFile(path) => Box::new(sqlite::Sqlite::open(Some(path), settings, create)?),
        Location::SqliteMemory => Box::new(sqlite::Sqlite::open(None, settings, create)?),
        Location::Postgres(url) => Box::new(postgres::Postgres::connect(url, settings)?),
        Location::Mysql(url) => Box::new(mysql::Mysql::connect(url, settings)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let root = Path::new("/proj");
        assert_eq!(Location::parse("sqlite:///hellodb", root).ok(), Some(Location::SqliteFile("/proj/hellodb".into())));
        assert_eq!(Location::parse("sqlite:////var/x.db", root).ok(), Some(Location::SqliteFile("/var/x.db".into())));
        assert_eq!(Location::parse("sqlite::memory:", root).ok(), Some(Location::SqliteMemory));
        assert!(matches!(Location::parse("mariadb://u@h/db", root), Ok(Location::Mysql(u)) if u == "mysql://u@h/db"));
        let e = Location::parse("oracle://u:pw@h/db", root).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unsupported") && !e.contains("pw"), "{e}");
        assert!(Location::parse("sqlite://x.db", root).is_err());
        let e = Location::parse("sqlite:///q.db?mode=ro", root).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("SQLite URLs take no parameters"), "{e}");
        assert_eq!(Location::parse("SQLite:///x.db", root).ok(), Some(Location::SqliteFile("/proj/x.db".into())));
        assert!(
            matches!(Location::parse("PostgreSQL://h/db", root), Ok(Location::Postgres(u)) if u == "postgresql://h/db")
        );
        assert!(matches!(Location::parse("MariaDB://u@h/db", root), Ok(Location::Mysql(u)) if u == "mysql://u@h/db"));
        let shown = format!("{:?}", Location::parse("postgres://u:s3cret@h/db", root));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    /// A password holding `@ / ? #` unencoded is refused before any driver
    /// splits the URL in the wrong place; encoded, it is fine.
    #[test]
    fn unencoded_credentials_are_refused() {
        let root = Path::new("/proj");
        for (url, found) in [
            ("postgres://u:S3cr@t@127.0.0.1:1/db", "`@`"),
            ("postgresql://u:ab/cd@127.0.0.1:1/db?foo=1", "`/`"),
            ("mysql://app:Xy/9k+Q=@127.0.0.1:3306/app", "`/`"),
            ("mariadb://app:a?b#c@h/db", "`?`, `#`"),
            ("postgres://u:p@h/db?application_name=a@b", "`@`, `/`, `?`"),
        ] {
            let e = Location::parse(url, root).err().map(|e| (e.exit_code(), e.to_string())).unwrap_or_default();
            assert_eq!(e.0, 2, "{url}");
            assert!(e.1.contains(&format!("holds {found}, which must be percent-encoded: `@` as %40")), "{}", e.1);
            for secret in ["S3cr", "ab/cd", "Xy/9k", "a?b", "p@h"] {
                assert!(!e.1.contains(secret), "{}", e.1);
            }
        }
        for url in [
            "postgres://u:S3cr%40t%2F%3F%23@127.0.0.1:1/db?application_name=a%40b",
            "mysql://app:Xy%2F9k+Q=@127.0.0.1:3306/app",
            "postgres://u:p:x@h:5432/db",
            "postgres://h/db?sslmode=disable",
        ] {
            assert!(Location::parse(url, root).is_ok(), "{url}");
        }
    }

    #[test]
    fn statements_that_change_the_session() {
        for sql in [
            "SET search_path TO other",
            "set role app",
            "SET SESSION AUTHORIZATION app",
            "RESET ALL",
            "USE other_db",
            "SELECT pg_catalog.set_config('search_path', '', false)",
        ] {
            assert!(changes_session(sql, Dialect::Postgres), "{sql}");
        }
        for sql in [
            "SET LOCAL lock_timeout = '1s'",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SELECT 'set_config'",
            "UPDATE t SET a = 1",
        ] {
            assert!(!changes_session(sql, Dialect::Postgres), "{sql}");
        }
        assert!(changes_session("/*!40000 USE other_db */", Dialect::Mysql));
        assert!(!changes_session("/*!40000 ALTER TABLE t DISABLE KEYS */", Dialect::Mysql));
    }

    #[test]
    fn endpoints_bracket_ipv6_addresses() {
        assert_eq!(super::endpoint("::1", 5432), "[::1]:5432");
        assert_eq!(super::endpoint("db.internal", 3306), "db.internal:3306");
    }

    #[test]
    fn passwords_are_masked_only_where_they_stand_alone() {
        assert_eq!(
            mask_word("database \"audit_nosuch\" does not exist", "e"),
            "database \"audit_nosuch\" does not exist"
        );
        assert_eq!(mask_word("user u:e@h, password e", "e"), "user u:***@h, password ***");
        assert_eq!(mask_word("e", "e"), "***");
        assert_eq!(mask_word("hunter2 hunter2x xhunter2 (hunter2)", "hunter2"), "*** hunter2x xhunter2 (***)");
        // Edges that are not letters or digits join no word.
        assert_eq!(mask_word("a/b/c", "/b/"), "a***c");
        assert_eq!(mask_word("pässe:päss", "päss"), "pässe:***");
        let error =
            DbError { message: "e".into(), detail: Some("x e".into()), hint: Some("e.".into()), ..DbError::default() };
        let scrubbed = scrub_password(error.clone(), Some("e"));
        assert_eq!(
            (scrubbed.message, scrubbed.detail, scrubbed.hint),
            ("***".into(), Some("x ***".into()), Some("***.".into()))
        );
        assert_eq!(scrub_password(error.clone(), Some("")), error);
        assert_eq!(scrub_password(error.clone(), None), error);
    }
}
