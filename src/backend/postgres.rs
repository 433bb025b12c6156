//! PostgreSQL adapter. DDL is transactional, so sections commit with their
//! state row. The migration lock is a session-level advisory lock taken on the
//! very connection that runs the migrations: a second connection, or a
//! transaction-level lock, would make `CREATE INDEX CONCURRENTLY` wait for it
//! forever.

use std::str::FromStr;
use std::sync::Arc;

use postgres::config::{Host, SslMode};
use postgres::types::ToSql;

use postgres::error::ErrorPosition;
use postgres::{Client, Config, NoTls};
use sha2::{Digest, Sha256};

use super::state_sql::{self, StateSql, Value};
use super::{scrub_password, Backend, Capabilities, FailedAt, SectionError, SectionRun, Settings, Timeouts, Unlocated};
use crate::config::redact;
use crate::dialect::Dialect;
use crate::error::{Conflict, DbError, Error};
use crate::interrupt::Canceller;
use crate::phase::Phase;
use crate::project::VersionId;
use crate::state::{LogEntry, PhaseState};

mod tls;

/// SQLSTATEs this adapter acts on.
const UNDEFINED_TABLE: &str = "42P01";
const INVALID_SCHEMA_NAME: &str = "3F000";
const LOCK_NOT_AVAILABLE: &str = "55P03";
const ACTIVE_SQL_TRANSACTION: &str = "25001";
const DEADLOCK_DETECTED: &str = "40P01";
const SERIALIZATION_FAILURE: &str = "40001";
/// Errors that a second run of the section would not meet the same way:
/// lock_timeout, statement_timeout (or a cancel) and a deadlock end a wait
/// it would wait again, in front of the application's traffic; a
/// serialization failure needs the concurrent transaction it met.
const NOT_REPLAYED: [&str; 4] = [LOCK_NOT_AVAILABLE, "57014", DEADLOCK_DETECTED, SERIALIZATION_FAILURE];

pub struct Postgres {
    client: Client,
    sql: StateSql,
    /// The schema that holds the state tables: the configured one, else the
    /// current one at connect (None if there is none).
    schema: Option<String>,
    state_table: String,
    locked: bool,
    in_transaction: bool,
    timeouts: Timeouts,
    /// `reset_session` was asked for and not yet sent: it travels with the
    /// next message, ahead of its transaction.
    reset_pending: bool,
    /// Set `client_connection_check_interval` with every session reset.
    check_client: bool,
    password: Option<String>,
}

/// The advisory lock's key, and the halves pg_locks shows it as.
#[derive(Debug, Clone, Copy)]
struct AdvisoryKey {
    key: i64,
    classid: u32,
    objid: u32,
}

impl AdvisoryKey {
    /// Stable across runs and machines, and distinct per set of state tables,
    /// so two projects sharing a database do not block each other.
    fn new(schema: &str, state_table: &str) -> AdvisoryKey {
        let digest = Sha256::digest(format!("{schema}.{state_table}").as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        let [a, b, c, d, e, f, g, h] = bytes;
        AdvisoryKey {
            key: i64::from_be_bytes(bytes),
            classid: u32::from_be_bytes([a, b, c, d]),
            objid: u32::from_be_bytes([e, f, g, h]),
        }
    }
}

impl Postgres {
    /// `SET LOCAL`/`SET` statements for the configured timeouts.
    fn timeout_statements(&self, scope: &str) -> String {
        let Timeouts { lock_timeout, statement_timeout } = self.timeouts;
        let mut out = String::new();
        for (name, value) in [("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)] {
            if let Some(value) = value {
                out.push_str(&format!("{scope} {name} = '{}ms';\n", value.as_millis()));
            }
        }
        out
    }

    /// Where a section sent as one message failed, when the error carries no
    /// position. Replays the section statement by statement in a transaction
    /// that is always rolled back (DDL is transactional here, so the replay
    /// leaves nothing behind), except after waiting: a lock timeout or a
    /// statement timeout would be waited out a second time, in front of the
    /// application's traffic, and a lock timeout is retried by the executor
    /// anyway, which then runs the section statement by statement.
    fn locate_failure(&mut self, statements: &[&str], recording: &str, error: DbError) -> SectionError {
        let code = match error.code.as_deref() {
            None => return SectionError::new(FailedAt::Unlocated(Unlocated::ConnectionLost), error),
            Some(code) if NOT_REPLAYED.contains(&code) => {
                return SectionError::new(FailedAt::Unlocated(Unlocated::Waited), error)
            }
            Some(code) => code.to_string(),
        };
        let _ = self.client.batch_execute("ROLLBACK");
        let mut at = FailedAt::Unlocated(Unlocated::DidNotRecur);
        let began = self.client.batch_execute(&format!("{BEGIN};\n{}", self.timeout_statements("SET LOCAL")));
        // The error ended the session (57P01, a terminated backend): nothing
        // can be run again.
        if began.is_err() && self.client.is_closed() {
            self.in_transaction = false;
            return SectionError::new(FailedAt::Unlocated(Unlocated::ConnectionLost), error);
        }
        if began.is_ok() {
            let parts = statements
                .iter()
                .enumerate()
                .map(|(i, sql)| (FailedAt::Statement(i), *sql))
                .chain([(FailedAt::Recording, recording)]);
            // Last, what COMMIT checks: deferred constraints and triggers.
            let at_commit = (FailedAt::Unlocated(Unlocated::AtCommit), "SET CONSTRAINTS ALL IMMEDIATE");
            for (part, sql) in parts.chain([at_commit]) {
                if let Err(e) = self.client.batch_execute(sql) {
                    // Failing otherwise (a lock the first run did not wait
                    // for, say) says nothing about where the first run failed.
                    if e.code().is_some_and(|c| c.code() == code) {
                        at = part;
                    }
                    break;
                }
            }
        }
        let _ = self.client.batch_execute("ROLLBACK");
        self.in_transaction = false;
        SectionError { replayed: true, ..SectionError::new(at, error) }
    }

    /// A section's rows, the last writes of its transaction, written as the
    /// session's own user.
    fn section_rows_sql(&self, row: &PhaseState, log: &LogEntry, timed_by_server: bool) -> String {
        format!("{AS_OWN_USER}{}", self.rows_sql(row, Some(log), timed_by_server))
    }

    /// pygrate's state row (and log row) as SQL with their values inlined,
    /// to travel in one message. `timed`: the duration is the time the
    /// message has run so far, as the section's statements run in it too.
    /// Run them as the session's own user (`SET LOCAL ROLE NONE`): a section
    /// may have `SET ROLE` to one that cannot write pygrate's tables.
    fn rows_sql(&self, row: &PhaseState, log: Option<&LogEntry>, timed_by_server: bool) -> String {
        let statement = |template: &str, params: &[Value<'_>]| {
            let template = if timed_by_server { timed(template, params.len()) } else { template.to_string() };
            format!("{};\n", state_sql::inline(Dialect::Postgres, &template, params))
        };
        let mut sql = statement(&self.sql.upsert_state, &state_sql::state_params(row));
        if let Some(log) = log {
            sql.push_str(&statement(&self.sql.insert_log, &state_sql::log_params(log)));
        }
        sql
    }

    /// The session reset `reset_session` asked for, to put at the head of
    /// the next message (before its BEGIN, so that a rollback keeps it).
    fn take_reset(&mut self) -> &'static str {
        // RESET ALL leaves the role alone; the connection's own settings
        // (application_name) are what RESET goes back to.
        // A client killed during a statement leaves the server running it
        // to the end, and a no-transaction statement commits on its own: the
        // resume would run it a second time. Checking every second whether
        // the client is still there cancels it instead.
        match (std::mem::take(&mut self.reset_pending), self.check_client) {
            (false, _) => "",
            (true, false) => "RESET SESSION AUTHORIZATION;\nRESET ROLE;\nRESET ALL;\n",
            (true, true) => {
                "RESET SESSION AUTHORIZATION;\nRESET ROLE;\nRESET ALL;\nSET client_connection_check_interval = 1000;\n"
            }
        }
    }

    /// Sends a pending session reset on its own, before a message that
    /// cannot carry it.
    fn send_reset(&mut self) -> Result<(), DbError> {
        match self.take_reset() {
            "" => Ok(()),
            reset => self.client.batch_execute(reset).map_err(db_error),
        }
    }

    /// The advisory lock key, from the schema that holds the state tables:
    /// `schema: public` and no schema (current_schema() is public) are the
    /// same lock.
    fn lock_key(&self) -> AdvisoryKey {
        AdvisoryKey::new(self.schema.as_deref().unwrap_or_default(), &self.state_table)
    }
    /// The driver's config for `url`, with pygrate's defaults where the URL
    /// sets nothing.
    fn config(url: &str, settings: &Settings) -> Result<Config, Error> {
        // The driver only says a value is invalid; say what it takes. It
        // cannot verify certificates, so libpq's verify-ca/verify-full are
        // out of reach.
        for (option, values) in [
            ("sslmode", &["disable", "prefer", "require"]),
            ("target_session_attrs", &["any", "read-write", "read-only"]),
        ] {
            if let Some(value) = option_value(url, option).filter(|v| !values.contains(v)) {
                return Err(Error::Usage(format!(
                    "connection `{}`: {option}={value} is not supported; use {}",
                    redact(url),
                    values.join(", ")
                )));
            }
        }
        let mut config = Config::from_str(url)
            .map_err(|e| Error::Usage(format!("connection `{}`: {}", redact(url), error_chain(&e))))?;
        // `connect_timeout=0` means wait indefinitely, as in libpq; the driver
        // keeps it as unset, so look at what the URL says.
        if config.get_connect_timeout().is_none() && option_value(url, "connect_timeout").is_none() {
            if let Some(limit) = settings.connect_timeout {
                config.connect_timeout(limit);
            }
        }
        if config.get_keepalives() {
            // As in libpq, a 0 means the default (here pygrate's); the driver
            // ignores a 0 idle time or interval, and hands a 0 count to the
            // kernel, which refuses it.
            let keepalive = settings.keepalive;
            let idle_given =
                option_value(url, "keepalives_idle").and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > 0);
            if !idle_given {
                config.keepalives_idle(keepalive.idle);
            }
            if config.get_keepalives_interval().is_none() {
                config.keepalives_interval(keepalive.interval);
            }
            if config.get_keepalives_retries().unwrap_or(0) == 0 {
                config.keepalives_retries(keepalive.retries);
            }
            super::check_keepalive(
                url,
                "keepalives_idle",
                config.get_keepalives_idle().as_secs(),
                &super::KEEPALIVE_SECS,
            )?;
            let interval = config.get_keepalives_interval().unwrap_or(keepalive.interval);
            super::check_keepalive(url, "keepalives_interval", interval.as_secs(), &super::KEEPALIVE_SECS)?;
            let retries = config.get_keepalives_retries().unwrap_or(keepalive.retries);
            super::check_keepalive(url, "keepalives_retries", u64::from(retries), &super::KEEPALIVE_PROBES)?;
        }
        // Shown in pg_stat_activity, so that whoever waits for the lock learns
        // who holds it. An application_name in the URL is the user's choice.
        if config.get_application_name().is_none() {
            let actor = &settings.actor;
            config.application_name(&format!("pygrate {}@{} pid {}", actor.user, actor.host, actor.pid));
        }
        Ok(config)
    }

    pub fn connect(url: &str, settings: &Settings) -> Result<Postgres, Error> {
        let config = Postgres::config(url, settings)?;
        let hosts = endpoints(&config);
        if hosts.is_empty() {
            // Known before any connection is tried: the URL is incomplete.
            return Err(Error::Usage(format!(
                "connection `{}`: names no host; write postgres://USER@HOST[:PORT]/DATABASE (or ?host=/run/postgresql for a socket)",
                redact(url)
            )));
        }
        let context = format!("cannot connect to PostgreSQL at {hosts}");
        let password = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        let fail = |e: postgres::Error| Error::db(context.clone(), scrub_password(db_error(e), password.as_deref()));
        // As libpq: connect_timeout bounds each host's whole connection
        // attempt, so a host that accepts and never answers does not keep
        // the next one from being tried. Hosts named as query parameters
        // (`?host=a,b`) share one deadline.
        let (attempts, limit) = match single_host_urls(url) {
            Some(urls) => {
                let configs = urls.iter().map(|url| Postgres::config(url, settings)).collect::<Result<Vec<_>, _>>()?;
                (configs, config.get_connect_timeout().copied())
            }
            None => {
                let hosts = u32::try_from(config.get_hosts().len().max(1)).unwrap_or(u32::MAX);
                let limit = config.get_connect_timeout().map(|per_host| *per_host * hosts);
                (vec![config], limit)
            }
        };
        let mut connected = Err(Error::db(context.clone(), DbError::new("no host to connect to")));
        for config in attempts {
            connected = super::within(limit, "connect_timeout", move || match config.get_ssl_mode() {
                SslMode::Disable => config.connect(NoTls),
                _ => config.connect(tls::UnverifiedTls),
            })
            .map_err(|e| Error::db(context.clone(), e))
            .and_then(|attempt| attempt.map_err(fail));
            if connected.is_ok() {
                break;
            }
        }
        let mut client = connected?;
        // Without a configured schema the state tables are where the
        // search_path finds them (for a first run: the current schema, where
        // they will be created). Naming that schema in every statement keeps
        // a section's `SET search_path` from sending pygrate's own writes
        // elsewhere; finding them, not assuming the current schema, keeps a
        // later `"$user"` schema from hiding them.
        // What the session looks like, in one round trip: where the search
        // path finds the state tables (for a first run: the current schema,
        // where they will be created), and whether the server can notice a
        // vanished client during a statement (PostgreSQL 14+; `0`: the
        // default, not set by the URL).
        let table = format!("\"{}_state\"", settings.state_table.replace('"', "\"\""));
        let (found_schema, check_interval) = client
            .query_one(
                "SELECT COALESCE((SELECT n.nspname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)), \
                 current_schema()::text), current_setting('client_connection_check_interval', true)",
                &[&table],
            )
            .and_then(|row| Ok((row.try_get::<_, Option<String>>(0)?, row.try_get::<_, Option<String>>(1)?)))
            .map_err(|e| Error::db(context.clone(), db_error(e)))?;
        let schema = match &settings.schema {
            Some(schema) => {
                let folded = folded_schema(&mut client, schema).map_err(|e| Error::db(context.clone(), e))?;
                if let Some(lower) = folded {
                    return Err(Error::Usage(format!(
                        "schema `{schema}` does not exist, but `{lower}` does: PostgreSQL folds unquoted names to \
                         lower case (CREATE SCHEMA {schema} makes `{lower}`), and pygrate uses the name as written; \
                         write `schema: {lower}` in the config"
                    )));
                }
                Some(schema.clone())
            }
            None => found_schema,
        };
        Ok(Postgres {
            password,
            client,
            sql: StateSql::new(Dialect::Postgres, &settings.state_table, schema.as_deref(), settings.schema.is_some()),
            schema,
            state_table: settings.state_table.clone(),
            locked: false,
            in_transaction: false,
            timeouts: settings.timeouts,
            reset_pending: false,
            check_client: check_interval.as_deref() == Some("0"),
        })
    }
}

/// A configured schema with capitals that does not exist while its lower
/// case form does is almost surely the one the user created unquoted:
/// creating the state tables in a new schema beside it would put them where
/// nobody looks. Returns that lower case schema.
fn folded_schema(client: &mut Client, schema: &str) -> Result<Option<String>, DbError> {
    let lower = schema.to_lowercase();
    if lower == schema {
        return Ok(None);
    }
    let folded = client
        .query_one(
            "SELECT to_regnamespace(quote_ident($1)) IS NULL AND to_regnamespace(quote_ident($2)) IS NOT NULL",
            &[&schema, &lower],
        )
        .and_then(|row| row.try_get::<_, bool>(0))
        .map_err(db_error)?;
    Ok(folded.then_some(lower))
}

/// Runs a state-table statement with its parameters.
fn run(client: &mut Client, sql: &str, params: &[Value<'_>]) -> Result<(), DbError> {
    let owned: Vec<Box<dyn ToSql + Sync + '_>> = params
        .iter()
        .map(|v| match *v {
            Value::Text(t) => Box::new(t) as Box<dyn ToSql + Sync>,
            Value::Int(i) => Box::new(i),
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|p| p.as_ref()).collect();
    client.execute(sql, &refs).map(drop).map_err(db_error)
}

/// The value the URL gives `option` as a query parameter, if it names it:
/// the driver cannot tell an option left unset from one set to its default.
fn option_value<'u>(url: &'u str, option: &str) -> Option<&'u str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| match pair.split_once('=') {
        Some((key, value)) => (key == option).then_some(value),
        None => (pair == option).then_some(""),
    })
}

/// `postgres://u@h1:p1,h2:p2/db?…` as one URL per host. None for a single
/// host, or hosts named as query parameters.
fn single_host_urls(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (userinfo, hosts) = authority.split_at(authority.rfind('@').map_or(0, |at| at + 1));
    hosts.contains(',').then(|| hosts.split(',').map(|host| format!("{scheme}://{userinfo}{host}{tail}")).collect())
}

/// `host:port` of every host the URL names, for messages.
fn endpoints(config: &Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => super::endpoint(name, port),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Backend for Postgres {
    fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { transactional_ddl: true, database_wide_writes: false, deferred_durability: true }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn try_lock(&mut self) -> Result<bool, DbError> {
        // Advisory locks stack within a session: taking it twice would need
        // two unlocks.
        if self.locked {
            return Ok(true);
        }
        let key = self.lock_key().key;
        let row = self.client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).map_err(db_error)?;
        self.locked = row.try_get(0).map_err(db_error)?;
        Ok(self.locked)
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        if !self.locked {
            return Ok(());
        }
        let key = self.lock_key().key;
        self.client.query_one("SELECT pg_advisory_unlock($1)", &[&key]).map_err(db_error)?;
        self.locked = false;
        Ok(())
    }

    fn lock_holder_now(&mut self) -> Result<Option<String>, DbError> {
        // A one-bigint advisory lock shows in pg_locks as classid = high half,
        // objid = low half, objsubid = 1; advisory locks are per database.
        let lock = self.lock_key();
        let rows = self
            .client
            .query(
                "SELECT a.pid::bigint, COALESCE(a.application_name, ''), COALESCE(a.usename::text, '?'), \
                 COALESCE(host(a.client_addr), 'local'), COALESCE(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '?') \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND l.classid::bigint = $1 AND l.objid::bigint = $2",
                &[&i64::from(lock.classid), &i64::from(lock.objid)],
            )
            .map_err(db_error)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let pid: i64 = row.try_get(0).map_err(db_error)?;
        let application: String = row.try_get(1).map_err(db_error)?;
        let user: String = row.try_get(2).map_err(db_error)?;
        let client: String = row.try_get(3).map_err(db_error)?;
        let since: String = row.try_get(4).map_err(db_error)?;
        let application = if application.is_empty() { String::new() } else { format!("{application} ") };
        Ok(Some(format!("pid {pid}, {application}({user}@{client}), connected since {since}")))
    }

    fn schema_version(&mut self) -> Result<Option<String>, DbError> {
        let rows = match self.client.query(&self.sql.select_schema_version, &[]) {
            Ok(rows) => rows,
            Err(e) if is_missing_table(&e) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        match rows.first() {
            Some(row) => row.try_get(0).map_err(db_error),
            None => Ok(None),
        }
    }

    fn create_state_tables(&mut self) -> Result<(), DbError> {
        for statement in &self.sql.create {
            self.client.batch_execute(statement).map_err(db_error)?;
        }
        let version = crate::state::SCHEMA_VERSION.to_string();
        run(&mut self.client, &self.sql.insert_schema_version, &[Value::Text(Some(&version))])
    }

    fn read_state(&mut self) -> Result<Option<Vec<PhaseState>>, DbError> {
        let rows = match self.client.query(&self.sql.select_state, &[]) {
            Ok(rows) => rows,
            Err(e) if is_missing_table(&e) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(state_sql::decode_state(&mut PgRow(row))?);
        }
        Ok(Some(out))
    }

    fn read_log(&mut self) -> Result<Vec<LogEntry>, DbError> {
        let rows = match self.client.query(&self.sql.select_log, &[]) {
            Ok(rows) => rows,
            Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(db_error(e)),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(state_sql::decode_log(&mut PgRow(row))?);
        }
        Ok(out)
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.send_reset()?;
        self.client.batch_execute(BEGIN).map_err(db_error)?;
        self.in_transaction = true;
        Ok(())
    }

    fn canceller(&mut self) -> Option<Canceller> {
        // A cancel request is a new connection, encrypted as this one is.
        let token = self.client.cancel_token();
        Some(Arc::new(move || {
            let _ = token.cancel_query(tls::UnverifiedTls);
        }))
    }

    fn in_transaction(&mut self) -> Result<bool, DbError> {
        // Transactional DDL: only pygrate's own statements end a transaction.
        Ok(self.in_transaction)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        // Whatever COMMIT answers, the transaction is over (a failed one
        // rolls back).
        self.in_transaction = false;
        self.client.batch_execute("COMMIT").map_err(db_error)
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        self.client.batch_execute("ROLLBACK").map_err(db_error)
    }

    fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.send_reset()?;
        // The simple query protocol runs any statement: DDL, DO blocks,
        // statements that return rows.
        self.client.batch_execute(sql).map_err(db_error)
    }

    fn drop_invalid_index(&mut self, name: &str) -> Result<bool, DbError> {
        // Looked up as the statement will be: on the section's search path.
        self.send_reset()?;
        let invalid = "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid";
        if self.client.query(invalid, &[&name]).map_err(db_error)?.is_empty() {
            return Ok(false);
        }
        self.execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))?;
        Ok(true)
    }

    /// Always: a section can change the session in ways no look at its text
    /// finds (`set_config` in a DO block or a function). Costs no round trip:
    /// the reset goes with the next message.
    fn reset_session(&mut self) -> Result<(), DbError> {
        self.reset_pending = true;
        Ok(())
    }

    fn defer_flush(&mut self) -> Result<(), DbError> {
        self.client.batch_execute(DEFER_FLUSH).map_err(db_error)
    }

    /// Locking pygrate's own meta row writes to the log, so this
    /// transaction's commit has something to wait for, and the log is
    /// flushed in order: waiting for it waits for every earlier commit. The
    /// session's own `synchronous_commit` decides what waiting means (a
    /// synchronous standby included), a section's `SET`s undone first.
    fn flush_commits(&mut self) -> Result<(), DbError> {
        self.reset_pending = true;
        let batch = format!("{}{BEGIN};\n{} FOR KEY SHARE;\nCOMMIT", self.take_reset(), self.sql.select_schema_version);
        let sent = self.client.batch_execute(&batch).map_err(db_error);
        if sent.is_err() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        sent
    }

    fn apply_timeouts(&mut self, in_transaction: bool) -> Result<(), DbError> {
        // A pending reset first: it would otherwise undo session timeouts.
        let reset = self.take_reset();
        let statements = reset.to_string() + &self.timeout_statements(if in_transaction { "SET LOCAL" } else { "SET" });
        if statements.is_empty() {
            return Ok(());
        }
        self.client.batch_execute(&statements).map_err(db_error)
    }

    /// The whole section in one simple-query message: BEGIN, timeouts, the
    /// statements, the state and log rows, COMMIT — one round trip instead of
    /// one per statement and two per state write.
    fn run_atomic(
        &mut self,
        section: &SectionRun<'_>,
        on_statement: &mut dyn FnMut(usize) -> Result<(), DbError>,
    ) -> Result<(), SectionError> {
        let statements = section.statements;
        for i in 0..statements.len() {
            on_statement(i).map_err(|error| SectionError::new(FailedAt::Statement(i), error))?;
        }
        let mut batch = self.take_reset().to_string();
        batch.push_str(BEGIN);
        batch.push_str(";\n");
        batch.push_str(&self.timeout_statements("SET LOCAL"));
        if !section.durable {
            batch.push_str(DEFER_FLUSH);
        }
        // Character ranges of the statements: PostgreSQL reports an error's
        // position in characters of the whole message.
        let mut ranges = Vec::with_capacity(statements.len());
        let mut chars = batch.chars().count();
        for sql in statements {
            let len = sql.chars().count();
            ranges.push(chars..chars + len);
            batch.push_str(sql);
            // On its own line: the statement may end in a `--` comment.
            batch.push_str("\n;\n");
            chars += len + 3;
        }
        let recording = self.section_rows_sql(section.row, section.log, true);
        batch.push_str(&recording);
        batch.push_str("COMMIT");
        self.in_transaction = true;
        let Err(e) = self.client.batch_execute(&batch) else {
            self.in_transaction = false;
            return Ok(());
        };
        let position = e.as_db_error().and_then(|d| match d.position() {
            Some(ErrorPosition::Original(p)) => usize::try_from(*p).ok(),
            _ => None,
        });
        let error = db_error(e);
        let Some(position) = position else {
            return Err(self.locate_failure(statements, &recording, error));
        };
        // 1-based character position → the statement it falls in; outside
        // them it is in pygrate's own SQL.
        let at = ranges
            .iter()
            .position(|r| r.contains(&(position.saturating_sub(1))))
            .map_or(FailedAt::Recording, FailedAt::Statement);
        Err(SectionError::new(at, error))
    }

    fn record_section(&mut self, row: &PhaseState, log: &LogEntry) -> Result<(), DbError> {
        self.client.batch_execute(&self.section_rows_sql(row, log, false)).map_err(db_error)
    }

    /// One message, written as the session's own user (the section may
    /// have `SET ROLE` to one that cannot write pygrate's tables), in a
    /// transaction of its own unless it goes into the open one.
    fn record(&mut self, row: &PhaseState, log: Option<&LogEntry>, commit: bool, begin: bool) -> Result<(), DbError> {
        let own = !self.in_transaction;
        let mut batch = self.take_reset().to_string();
        if own {
            batch.push_str(BEGIN);
            batch.push_str(";\n");
        }
        // SET LOCAL ends with this transaction, so it cannot outlive the rows
        // into the section's next statement.
        if own || commit {
            batch.push_str(AS_OWN_USER);
        }
        batch.push_str(&self.rows_sql(row, log, false));
        if own || commit {
            batch.push_str("COMMIT;\n");
        }
        if begin {
            batch.push_str(BEGIN);
            batch.push_str(";\n");
        }
        let sent = self.client.batch_execute(&batch).map_err(db_error);
        // After an error a transaction this message opened may be left
        // aborted: the caller's rollback must then end it.
        self.in_transaction = sent.is_err() || begin || !(own || commit);
        sent
    }

    fn save_phase(&mut self, row: &PhaseState) -> Result<(), DbError> {
        // As every state write: the failing section may have changed the
        // session's user or made it read-only.
        self.record(row, None, false, false)
    }

    fn delete_phase(&mut self, id: &VersionId, phase: Phase) -> Result<(), DbError> {
        run(&mut self.client, &self.sql.delete_state, &state_sql::key_params(id, phase))
    }

    fn append_log(&mut self, entry: &LogEntry) -> Result<(), DbError> {
        let sql = state_sql::inline(Dialect::Postgres, &self.sql.insert_log, &state_sql::log_params(entry));
        let batch =
            if self.in_transaction { format!("{sql};\n") } else { format!("{BEGIN};\n{AS_OWN_USER}{sql};\nCOMMIT;\n") };
        self.client.batch_execute(&batch).map_err(db_error)
    }
}

/// Every transaction pygrate begins: READ WRITE, as a section may have made
/// read-only the default (`default_transaction_read_only`), and a reset
/// sent in the same message comes too late for the transaction it opens.
const BEGIN: &str = "BEGIN READ WRITE";

/// See `Capabilities::deferred_durability`. Only for this transaction: a
/// section's own `SET LOCAL synchronous_commit` after it still decides.
const DEFER_FLUSH: &str = "SET LOCAL synchronous_commit = off;\n";

/// Makes pygrate's own writes the session's own user's for the rest of the
/// transaction, whatever a section did: `SET ROLE` to one that cannot
/// write pygrate's tables, or pg_dump's `SET SESSION AUTHORIZATION`.
const AS_OWN_USER: &str = "SET LOCAL SESSION AUTHORIZATION DEFAULT;\nSET LOCAL ROLE NONE;\n";

/// `template` with its duration placeholder (`$param`, the last one) turned
/// into how long the message has run so far: the section travels in the same
/// message, so its duration is only known to the server.
/// `statement_timestamp()` is when the message arrived.
fn timed(template: &str, param: usize) -> String {
    const ELAPSED_MS: &str = "(extract(epoch from clock_timestamp() - statement_timestamp()) * 1000)::bigint";
    let placeholder = format!("${param}");
    match template.find(&placeholder) {
        Some(at) if !template[at + placeholder.len()..].starts_with(|c: char| c.is_ascii_digit()) => {
            format!("{}{ELAPSED_MS}{}", &template[..at], &template[at + placeholder.len()..])
        }
        _ => template.to_string(),
    }
}

struct PgRow<'a>(&'a postgres::Row);

impl state_sql::Cells for PgRow<'_> {
    fn text(&mut self, index: usize) -> Result<Option<String>, DbError> {
        self.0.try_get(index).map_err(db_error)
    }
    fn int(&mut self, index: usize) -> Result<i64, DbError> {
        self.0.try_get(index).map_err(db_error)
    }
}

fn is_missing_table(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code() == UNDEFINED_TABLE || c.code() == INVALID_SCHEMA_NAME)
}

/// An error and its causes on one line: the driver's own text is often just
/// "db error" or "error connecting to server", with the reason in a cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn db_error(e: postgres::Error) -> DbError {
    let Some(db) = e.as_db_error() else {
        return DbError::new(error_chain(&e));
    };
    let code = db.code().code();
    // PreventInTransactionBlock: CREATE INDEX CONCURRENTLY, VACUUM and the like.
    let outside_only = code == ACTIVE_SQL_TRANSACTION && db.message().contains("cannot run inside a transaction block");
    let hint = db.hint().map(str::to_string).or_else(|| {
        outside_only.then(|| {
            "this statement (e.g. CREATE INDEX CONCURRENTLY) cannot run inside a transaction: add `no-transaction` \
             to the section's marker line (`-- @add no-transaction`)"
                .to_string()
        })
    });
    DbError {
        code: Some(code.to_string()),
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        hint,
        conflict: match code {
            LOCK_NOT_AVAILABLE => Some(Conflict::LockTimeout),
            DEADLOCK_DETECTED => Some(Conflict::Deadlock),
            SERIALIZATION_FAILURE => Some(Conflict::Serialization),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{option_value, single_host_urls};

    #[test]
    fn one_url_per_host() {
        assert_eq!(
            single_host_urls("postgres://u:p@h1:5432,[::1]:5433/db?sslmode=disable"),
            Some(vec![
                "postgres://u:p@h1:5432/db?sslmode=disable".to_string(),
                "postgres://u:p@[::1]:5433/db?sslmode=disable".to_string()
            ])
        );
        assert_eq!(single_host_urls("postgresql://a,b"), Some(vec!["postgresql://a".into(), "postgresql://b".into()]));
        assert_eq!(single_host_urls("postgres://u@h/db"), None);
        assert_eq!(single_host_urls("postgres:///db?host=/run/a,/run/b"), None);
    }

    #[test]
    fn options_named_in_the_query() {
        let value = option_value;
        assert_eq!(value("postgres://u@h/db?sslmode=disable&connect_timeout=0", "connect_timeout"), Some("0"));
        assert_eq!(value("postgresql://h/db?keepalives_idle=5", "keepalives_idle"), Some("5"));
        assert_eq!(value("postgresql://h/db?keepalives_idle", "keepalives_idle"), Some(""));
        assert_eq!(value("postgres://u@h/connect_timeout", "connect_timeout"), None);
        assert_eq!(value("postgres://u@h/db?my_connect_timeout=1", "connect_timeout"), None);
        assert_eq!(value("postgres://u@h/db?application_name=connect_timeout", "connect_timeout"), None);
    }
}
