//! MySQL/MariaDB adapter. DDL commits implicitly, so the executor records
//! progress statement by statement instead of relying on transactions. The
//! migration lock is `GET_LOCK` on the migration connection: the server drops
//! it when the connection goes.

use std::collections::HashMap;
use std::sync::Arc;

use mysql::prelude::{FromValue, Queryable};
use mysql::{Conn, Opts, OptsBuilder, Params, Row, SslOpts, UrlError};
use sha2::{Digest, Sha256};

use super::state_sql::{self, StateSql, Value};
use super::{scrub_password, Backend, Capabilities, Settings, Timeouts, KEEPALIVE_PROBES, KEEPALIVE_SECS};
use crate::config::redact;
use crate::dialect::Dialect;
use crate::error::{Conflict, DbError, Error};
use crate::interrupt::Canceller;
use crate::phase::Phase;
use crate::project::VersionId;
use crate::state::{Actor, LogEntry, PhaseState};

/// Error numbers this adapter acts on.
const NO_SUCH_TABLE: u16 = 1146;
const LOCK_WAIT_TIMEOUT: u16 = 1205;
const LOCK_NOWAIT: u16 = 3572;
const LOCK_DEADLOCK: u16 = 1213;

/// The meta row naming the migration lock's holder.
const HOLDER_KEY: &str = "lock_holder";

/// GET_LOCK names are server-wide and at most 64 characters.
const MAX_LOCK_NAME: usize = 64;

pub struct Mysql {
    conn: Conn,
    /// How `conn` was made: a canceller connects the same way.
    opts: OptsBuilder,
    sql: StateSql,
    lock_name: String,
    locked: bool,
    in_transaction: bool,
    mariadb: bool,
    timeouts: Timeouts,
    /// What the session's timeout variables were last set to.
    applied: Option<Timeouts>,
    /// The URL's database, where the session starts.
    database: Option<String>,
    /// A statement since the last `reset_session` may have changed the session.
    session_changed: bool,
    actor: Actor,
    password: Option<String>,
}

/// `ssl-mode`, as the MySQL client spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value.to_ascii_uppercase().as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }

    /// Like the MySQL client: PREFERRED and REQUIRED encrypt without checking
    /// the certificate, VERIFY_CA checks the chain, VERIFY_IDENTITY the host too.
    fn opts(self) -> Option<SslOpts> {
        let lax = SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true);
        match self {
            SslMode::Disabled => None,
            SslMode::Preferred | SslMode::Required => Some(lax),
            SslMode::VerifyCa => Some(SslOpts::default().with_danger_skip_domain_validation(true)),
            SslMode::VerifyIdentity => Some(SslOpts::default()),
        }
    }
}

/// The URL without the parameters the driver does not know, the `ssl-mode`
/// asked for (PREFERRED by default, as in the MySQL client), and whether the
/// URL chose `prefer_socket` itself.
fn split_url(url: &str) -> Result<(String, SslMode, bool), Error> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = SslMode::Preferred;
    let mut prefer_socket = false;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "ssl-mode" => {
                mode = SslMode::parse(value).ok_or_else(|| {
                    Error::Usage(format!(
                        "connection `{}`: unknown ssl-mode `{value}`; use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY",
                        redact(url)
                    ))
                })?;
            }
            _ => {
                prefer_socket |= key == "prefer_socket";
                kept.push(pair);
            }
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, mode, prefer_socket))
}

/// What is wrong with a URL the driver refused, in words: its own messages
/// show its internals (`URL ParseError { invalid port number }`).
fn url_problem(e: &UrlError) -> String {
    match e {
        UrlError::ParseError(e) => format!("not a valid URL: {e}"),
        UrlError::UnsupportedScheme(scheme) => format!("unsupported scheme `{scheme}`"),
        UrlError::FeatureRequired(feature, parameter) => {
            format!("parameter `{parameter}` needs the driver feature `{feature}`, which pygrate is built without")
        }
        UrlError::InvalidValue(parameter, value) => format!("invalid value `{value}` for parameter `{parameter}`"),
        UrlError::UnknownParameter(parameter) => format!("unknown parameter `{parameter}`"),
        UrlError::InvalidPoolConstraints { .. } | UrlError::BadUrl => "not a valid MySQL URL".to_string(),
    }
}

/// A name for GET_LOCK, distinct per database and set of state tables.
fn lock_name(database: &str, state_table: &str) -> String {
    let name = format!("pygrate:{database}.{state_table}");
    if name.chars().count() <= MAX_LOCK_NAME {
        return name;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("pygrate:{}", &hex[..MAX_LOCK_NAME - "pygrate:".len()])
}

impl Mysql {
    pub fn connect(url: &str, settings: &Settings) -> Result<Mysql, Error> {
        let (driver_url, ssl_mode, prefer_socket_given) = split_url(url)?;
        let opts = Opts::from_url(&driver_url)
            .map_err(|e| Error::Usage(format!("connection `{}`: {}", redact(url), url_problem(&e))))?;
        let context = format!("cannot connect to MySQL at {}:{}", opts.get_ip_or_hostname(), opts.get_tcp_port());
        let password = opts.get_pass().map(str::to_string);
        let fail = |e: mysql::Error| Error::db(context.clone(), scrub_password(db_error(e), password.as_deref()));
        let actor = &settings.actor;
        let mut builder = OptsBuilder::from_opts(opts.clone()).connect_attrs(Some(HashMap::from([(
            "program_name",
            format!("pygrate {}@{} pid {}", actor.user, actor.host, actor.pid),
        )])));
        // 0 means wait indefinitely, as the MySQL client's --connect-timeout=0.
        let limit = match opts.get_tcp_connect_timeout() {
            Some(limit) if limit.is_zero() => None,
            Some(limit) => Some(limit),
            None => settings.connect_timeout,
        };
        builder = builder.tcp_connect_timeout(limit);
        if opts.get_db_name().is_none_or(str::is_empty) {
            return Err(Error::Usage(format!(
                "connection `{}` names no database; add it as the URL's path: mysql://user@host:3306/DATABASE",
                redact(url)
            )));
        }
        let keepalive = settings.keepalive;
        let idle_ms = opts.get_tcp_keepalive_time_ms();
        if let Some(ms) = idle_ms.filter(|ms| *ms != 0) {
            // The driver hands the kernel whole seconds.
            let range = KEEPALIVE_SECS.start() * 1000..=KEEPALIVE_SECS.end() * 1000 + 999;
            super::check_keepalive(url, "tcp_keepalive_time_ms", u64::from(ms), &range)?;
        }
        if let Some(secs) = opts.get_tcp_keepalive_probe_interval_secs() {
            super::check_keepalive(url, "tcp_keepalive_probe_interval_secs", u64::from(secs), &KEEPALIVE_SECS)?;
        }
        if let Some(count) = opts.get_tcp_keepalive_probe_count() {
            super::check_keepalive(url, "tcp_keepalive_probe_count", u64::from(count), &KEEPALIVE_PROBES)?;
        }
        match idle_ms {
            // 0 turns keepalive off (the driver would hand the kernel an idle
            // time of 0, which it refuses).
            Some(0) => {
                builder = builder
                    .tcp_keepalive_time_ms(None)
                    .tcp_keepalive_probe_interval_secs(None)
                    .tcp_keepalive_probe_count(None)
            }
            idle => {
                if idle.is_none() {
                    builder = builder
                        .tcp_keepalive_time_ms(Some(u32::try_from(keepalive.idle.as_millis()).unwrap_or(u32::MAX)));
                }
                if opts.get_tcp_keepalive_probe_interval_secs().is_none() {
                    builder = builder.tcp_keepalive_probe_interval_secs(Some(
                        u32::try_from(keepalive.interval.as_secs()).unwrap_or(u32::MAX),
                    ));
                }
                if opts.get_tcp_keepalive_probe_count().is_none() {
                    builder = builder.tcp_keepalive_probe_count(Some(keepalive.retries));
                }
            }
        }
        // The driver would otherwise switch from the host and port the user
        // named to the server's local socket, where other accounts apply.
        if !prefer_socket_given {
            builder = builder.prefer_socket(false);
        }
        let attempt = |opts: OptsBuilder| {
            super::within(limit, "tcp_connect_timeout_ms", move || Conn::new(opts))
                .map_err(|e| Error::db(context.clone(), e))
        };
        let tls = builder.clone().ssl_opts(ssl_mode.opts());
        let (mut conn, opts) = match attempt(tls.clone())? {
            Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported)) if ssl_mode == SslMode::Preferred => {
                let plain = builder.ssl_opts(None);
                (attempt(plain.clone())?.map_err(fail)?, plain)
            }
            connected => (connected.map_err(fail)?, tls),
        };
        let mut probe = |sql: &str| {
            first_cell::<Option<String>>(&mut conn, sql, Vec::new())
                .map(|v| v.flatten().unwrap_or_default())
                .map_err(|e| Error::db(context.clone(), e))
        };
        let version = probe("SELECT VERSION()")?;
        let database = probe("SELECT DATABASE()")?;
        Ok(Mysql {
            password,
            conn,
            opts,
            // Named with its database: a section's `USE other` must not send
            // pygrate's own writes there.
            sql: StateSql::new(
                Dialect::Mysql,
                &settings.state_table,
                Some(&database).filter(|d| !d.is_empty()).map(String::as_str),
                false,
            ),
            lock_name: lock_name(&database, &settings.state_table),
            locked: false,
            in_transaction: false,
            mariadb: version.contains("MariaDB"),
            timeouts: settings.timeouts,
            applied: None,
            database: Some(database).filter(|d| !d.is_empty()),
            session_changed: false,
            actor: settings.actor.clone(),
        })
    }

    fn simple(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.query_drop(sql).map_err(db_error)
    }

    /// Best effort: the program name the holder sent as a connect attribute
    /// (needs performance_schema, which is often off).
    /// Records who holds the lock (user, host, process id, since when) for
    /// waiters to name, keyed by this connection's id: MySQL shows a lock's
    /// holder only as a connection, and MariaDB keeps connection attributes
    /// off by default. Before the state tables exist there is nowhere to
    /// write it; creating them writes it then.
    fn record_holder(&mut self) -> Result<(), DbError> {
        let sql = format!(
            "REPLACE INTO {} (meta_key, meta_value) VALUES ('{HOLDER_KEY}', LEFT(CONCAT(CONNECTION_ID(), ' ', ?), 255))",
            self.sql.meta_table
        );
        match run(&mut self.conn, &sql, &[Value::Text(Some(&self.actor.holder()))]) {
            Err(e) if names_no_such_table(&e) => Ok(()),
            done => done,
        }
    }

    fn program_name(&mut self, id: i64) -> Option<String> {
        let sql = "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs \
                   WHERE PROCESSLIST_ID = ? AND ATTR_NAME = 'program_name'";
        first_cell::<Option<String>>(&mut self.conn, sql, vec![mysql::Value::Int(id)]).ok().flatten().flatten()
    }
}

fn names_no_such_table(e: &DbError) -> bool {
    e.code.as_deref() == Some(NO_SUCH_TABLE.to_string().as_str())
}

/// Runs a state-table statement with its parameters.
fn run(conn: &mut Conn, sql: &str, params: &[Value<'_>]) -> Result<(), DbError> {
    let params: Vec<mysql::Value> = params
        .iter()
        .map(|v| match *v {
            Value::Text(Some(s)) => mysql::Value::from(s),
            Value::Text(None) => mysql::Value::NULL,
            Value::Int(i) => mysql::Value::Int(i),
        })
        .collect();
    conn.exec_drop(sql, Params::Positional(params)).map_err(db_error)
}

/// Every row of the first result set: the text protocol without parameters,
/// a prepared statement with them.
fn select(conn: &mut Conn, sql: &str, params: Vec<mysql::Value>) -> Result<Vec<Row>, mysql::Error> {
    if params.is_empty() {
        conn.query_iter(sql)?.collect()
    } else {
        conn.exec_iter(sql, Params::Positional(params))?.collect()
    }
}

/// The first column of the first row, if there is a row.
fn first_cell<T: FromValue>(conn: &mut Conn, sql: &str, params: Vec<mysql::Value>) -> Result<Option<T>, DbError> {
    let mut rows = select(conn, sql, params).map_err(db_error)?;
    rows.first_mut().map(|row| cell(row, 0)).transpose()
}

/// One column of a row, converted without the driver's panicking helpers.
fn cell<T: FromValue>(row: &mut Row, index: usize) -> Result<T, DbError> {
    match row.take_opt::<T, _>(index) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(DbError::new(format!("column {index}: unexpected value {:?}", e.0))),
        None => Err(DbError::new(format!("column {index} is missing from the result"))),
    }
}

struct MysqlRow(Row);

impl state_sql::Cells for MysqlRow {
    fn text(&mut self, index: usize) -> Result<Option<String>, DbError> {
        cell(&mut self.0, index)
    }
    fn int(&mut self, index: usize) -> Result<i64, DbError> {
        cell(&mut self.0, index)
    }
}

impl Backend for Mysql {
    fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { transactional_ddl: false, database_wide_writes: false, deferred_durability: false }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    fn try_lock(&mut self) -> Result<bool, DbError> {
        // GET_LOCK nests within a session: taking it twice would need two releases.
        if self.locked {
            return Ok(true);
        }
        let got =
            first_cell::<Option<i64>>(&mut self.conn, "SELECT GET_LOCK(?, 0)", vec![self.lock_name.as_str().into()])?;
        self.locked = got.flatten() == Some(1);
        if self.locked {
            self.record_holder()?;
        }
        Ok(self.locked)
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        if !self.locked {
            return Ok(());
        }
        select(&mut self.conn, "SELECT RELEASE_LOCK(?)", vec![self.lock_name.as_str().into()]).map_err(db_error)?;
        self.locked = false;
        Ok(())
    }

    fn lock_holder_now(&mut self) -> Result<Option<String>, DbError> {
        let id =
            first_cell::<Option<i64>>(&mut self.conn, "SELECT IS_USED_LOCK(?)", vec![self.lock_name.as_str().into()])?;
        let Some(id) = id.flatten() else { return Ok(None) };
        let sql = format!("SELECT meta_value FROM {} WHERE meta_key = '{HOLDER_KEY}'", self.sql.meta_table);
        let recorded = match first_cell::<Option<String>>(&mut self.conn, &sql, Vec::new()) {
            Ok(value) => value.flatten().unwrap_or_default(),
            Err(e) if names_no_such_table(&e) => String::new(),
            Err(e) => return Err(e),
        };
        // A row left by an earlier holder names another connection.
        if let Some(holder) = recorded.strip_prefix(&format!("{id} ")) {
            return Ok(Some(format!("{holder} (connection {id})")));
        }
        let mut who: Vec<String> = self.program_name(id).into_iter().collect();
        let mut state = String::new();
        // Without the PROCESS privilege only one's own connections show.
        let sql = "SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = ?";
        let mut rows = select(&mut self.conn, sql, vec![mysql::Value::Int(id)]).map_err(db_error)?;
        if let Some(row) = rows.first_mut() {
            let user = cell::<Option<String>>(row, 0)?.unwrap_or_default();
            let host = cell::<Option<String>>(row, 1)?.unwrap_or_default();
            who.push(format!("{user}@{host}"));
            state = format!(", in its current state for {} s", cell::<Option<i64>>(row, 2)?.unwrap_or_default());
        }
        let who = if who.is_empty() { String::new() } else { format!(" ({})", who.join(", ")) };
        Ok(Some(format!("connection {id}{who}{state}")))
    }

    fn schema_version(&mut self) -> Result<Option<String>, DbError> {
        match select(&mut self.conn, &self.sql.select_schema_version, Vec::new()) {
            Ok(mut rows) => Ok(rows.first_mut().map(|row| cell::<Option<String>>(row, 0)).transpose()?.flatten()),
            Err(e) if is_missing_table(&e) => Ok(None),
            Err(e) => Err(db_error(e)),
        }
    }

    fn create_state_tables(&mut self) -> Result<(), DbError> {
        for statement in &self.sql.create {
            self.conn.query_drop(statement).map_err(db_error)?;
        }
        let version = crate::state::SCHEMA_VERSION.to_string();
        run(&mut self.conn, &self.sql.insert_schema_version, &[Value::Text(Some(&version))])?;
        if self.locked {
            self.record_holder()?;
        }
        Ok(())
    }

    fn read_state(&mut self) -> Result<Option<Vec<PhaseState>>, DbError> {
        let rows = match select(&mut self.conn, &self.sql.select_state, Vec::new()) {
            Ok(rows) => rows,
            Err(e) if is_missing_table(&e) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(state_sql::decode_state(&mut MysqlRow(row))?);
        }
        Ok(Some(out))
    }

    fn read_log(&mut self) -> Result<Vec<LogEntry>, DbError> {
        let rows = match select(&mut self.conn, &self.sql.select_log, Vec::new()) {
            Ok(rows) => rows,
            Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(db_error(e)),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(state_sql::decode_log(&mut MysqlRow(row))?);
        }
        Ok(out)
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.simple("START TRANSACTION")?;
        self.in_transaction = true;
        Ok(())
    }

    fn canceller(&mut self) -> Option<Canceller> {
        // KILL QUERY from a second connection, made as this one was.
        let opts = self.opts.clone();
        let id = self.conn.connection_id();
        Some(Arc::new(move || {
            if let Ok(mut killer) = Conn::new(opts.clone()) {
                let _ = killer.query_drop(format!("KILL QUERY {id}"));
            }
        }))
    }

    fn in_transaction(&mut self) -> Result<bool, DbError> {
        if !self.in_transaction {
            return Ok(false);
        }
        // DDL commits the transaction it runs in, and the server alone knows
        // whether the last statement was DDL.
        let open: Option<i64> = self.conn.query_first("SELECT @@in_transaction").map_err(db_error)?;
        self.in_transaction = open == Some(1);
        Ok(self.in_transaction)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.in_transaction = false;
        self.simple("COMMIT")
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        self.simple("ROLLBACK")
    }

    fn reset_session(&mut self) -> Result<(), DbError> {
        if !std::mem::take(&mut self.session_changed) {
            return Ok(());
        }
        // MySQL cannot reset its session without releasing GET_LOCK's lock:
        // back to the URL's database, and the timeouts set again.
        self.applied = None;
        match self.database.clone() {
            Some(database) => self.simple(&format!("USE `{}`", database.replace('`', "``"))),
            None => Ok(()),
        }
    }

    fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.session_changed |= super::changes_session(sql, Dialect::Mysql);
        // The text protocol runs any statement (CREATE PROCEDURE bodies
        // included); every result set is read so that an error in a later
        // one (a CALL) is not lost.
        let mut result = self.conn.query_iter(sql).map_err(db_error)?;
        while let Some(set) = result.iter() {
            for row in set {
                row.map_err(db_error)?;
            }
        }
        Ok(())
    }

    fn apply_timeouts(&mut self, _in_transaction: bool) -> Result<(), DbError> {
        // Session variables: MySQL has no per-transaction form, and the
        // executor applies the same values each time.
        if self.applied == Some(self.timeouts) {
            return Ok(());
        }
        let Timeouts { lock_timeout, statement_timeout } = self.timeouts;
        if let Some(wait) = lock_timeout {
            // Whole seconds, at least one: the variables' own unit and minimum.
            let secs = wait.as_millis().div_ceil(1000).max(1);
            self.simple(&format!("SET SESSION lock_wait_timeout = {secs}"))?;
            self.simple(&format!("SET SESSION innodb_lock_wait_timeout = {secs}"))?;
        }
        if let Some(limit) = statement_timeout {
            if self.mariadb {
                self.simple(&format!("SET SESSION max_statement_time = {:.3}", limit.as_secs_f64()))?;
            } else {
                // MySQL only bounds SELECTs this way.
                self.simple(&format!("SET SESSION max_execution_time = {}", limit.as_millis()))?;
            }
        }
        self.applied = Some(self.timeouts);
        Ok(())
    }

    fn record(&mut self, row: &PhaseState, log: Option<&LogEntry>, commit: bool, begin: bool) -> Result<(), DbError> {
        // One message instead of up to five: this runs after every statement
        // of every section.
        let own = log.is_some() && !self.in_transaction()?;
        let mut batch = if own { "START TRANSACTION;\n".to_string() } else { String::new() };
        batch.push_str(&state_sql::inline(Dialect::Mysql, &self.sql.upsert_state, &state_sql::state_params(row)));
        if let Some(log) = log {
            batch.push_str(";\n");
            batch.push_str(&state_sql::inline(Dialect::Mysql, &self.sql.insert_log, &state_sql::log_params(log)));
        }
        if commit || own {
            batch.push_str(";\nCOMMIT");
        }
        if begin {
            batch.push_str(";\nSTART TRANSACTION");
        }
        let was_open = self.in_transaction;
        // A failure part-way may leave a transaction open, for the caller to
        // roll back.
        self.in_transaction = true;
        self.execute(&batch)?;
        self.in_transaction = begin || (was_open && !commit);
        Ok(())
    }

    fn save_phase(&mut self, row: &PhaseState) -> Result<(), DbError> {
        run(&mut self.conn, &self.sql.upsert_state, &state_sql::state_params(row))
    }

    fn delete_phase(&mut self, id: &VersionId, phase: Phase) -> Result<(), DbError> {
        run(&mut self.conn, &self.sql.delete_state, &state_sql::key_params(id, phase))
    }

    fn append_log(&mut self, entry: &LogEntry) -> Result<(), DbError> {
        run(&mut self.conn, &self.sql.insert_log, &state_sql::log_params(entry))
    }
}

fn is_missing_table(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(e) if e.code == NO_SUCH_TABLE)
}

fn db_error(e: mysql::Error) -> DbError {
    match e {
        mysql::Error::MySqlError(e) => DbError {
            code: Some(e.code.to_string()),
            message: e.message,
            conflict: match e.code {
                LOCK_WAIT_TIMEOUT | LOCK_NOWAIT => Some(Conflict::LockTimeout),
                LOCK_DEADLOCK => Some(Conflict::Deadlock),
                _ => None,
            },
            ..Default::default()
        },
        // The variants' own Display wraps them in `IoError { … }`.
        mysql::Error::IoError(e) => DbError::new(e.to_string()),
        mysql::Error::DriverError(e) => DbError::new(e.to_string()),
        mysql::Error::UrlError(e) => DbError::new(url_problem(&e)),
        mysql::Error::TlsError(e) => DbError::new(format!("TLS: {e}")),
        mysql::Error::CodecError(e) => DbError::new(e.to_string()),
        e => DbError::new(e.to_string()),
    }
}
