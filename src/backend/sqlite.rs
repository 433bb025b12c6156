//! SQLite adapter. DDL is transactional, so sections commit with their state
//! row. The migration lock is an advisory lock on a file beside the database:
//! it outlives transactions, and the kernel drops it if pygrate dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::raw::{c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{ffi, types::ToSqlOutput, Connection, OpenFlags, ToSql};

use super::state_sql::{self, StateSql, Value};
use super::{Backend, Capabilities, Settings};
use crate::dialect::Dialect;
use crate::error::{Conflict, DbError, Error};
use crate::interrupt::Canceller;
use crate::phase::Phase;
use crate::project::VersionId;
use crate::state::{LogEntry, PhaseState};

pub struct Sqlite {
    conn: Connection,
    sql: StateSql,
    lock_path: Option<PathBuf>,
    lock_file: Option<File>,
    holder: String,
    /// The busy timeout: `lock_timeout`.
    busy: Duration,
    /// SQLite's busy handler points at it: declared after `conn`, so that it
    /// is dropped after the connection is closed.
    busy_wait: Box<BusyWait>,
}

/// Waiting for another connection's lock, as `sqlite3_busy_timeout` does,
/// except that it ends at once when the connection is interrupted (a stop
/// asked for): SQLite's own wait ignores `sqlite3_interrupt`, so a stop while
/// the application held the write lock waited out `lock_timeout`, and with
/// `lock_timeout: 0` for ever.
struct BusyWait {
    db: AtomicPtr<ffi::sqlite3>,
    timeout_ms: AtomicU64,
    /// When the current wait began: SQLite counts the calls of each wait.
    began: Mutex<Option<Instant>>,
}

/// SQLite's own pauses between tries, in milliseconds; then 100 each.
const BUSY_PAUSES_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

impl BusyWait {
    fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Whether to try again, after a pause; `count` is how many times this
    /// wait has asked before.
    fn again(&self, count: c_int) -> bool {
        let now = Instant::now();
        let began = {
            let mut began = self.began.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if count == 0 {
                *began = Some(now);
            }
            *began.get_or_insert(now)
        };
        // SAFETY: the handle of the connection this handler is installed on,
        // which is open whenever SQLite calls it.
        let interrupted = unsafe { ffi::sqlite3_is_interrupted(self.db.load(Ordering::Relaxed)) } != 0;
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed));
        let left = timeout.saturating_sub(now.duration_since(began));
        if interrupted || left.is_zero() {
            return false;
        }
        let pause = usize::try_from(count).ok().and_then(|i| BUSY_PAUSES_MS.get(i)).copied().unwrap_or(100);
        std::thread::sleep(left.min(Duration::from_millis(pause)));
        true
    }
}

unsafe extern "C" fn busy_handler(wait: *mut c_void, count: c_int) -> c_int {
    // SAFETY: `wait` is the `BusyWait` that the `Sqlite` owning the
    // connection keeps boxed until the connection is closed.
    let wait = unsafe { &*wait.cast::<BusyWait>() };
    c_int::from(wait.again(count))
}

/// Installs `wait` as `conn`'s busy handler, in place of the busy timeout.
fn install_busy_handler(conn: &Connection, wait: &BusyWait) -> Result<(), rusqlite::Error> {
    let arg = std::ptr::from_ref(wait).cast_mut().cast::<c_void>();
    // SAFETY: the handle is the open connection's; `wait` outlives it (see
    // `Sqlite::busy_wait`), and the handler only reads it.
    let rc = unsafe { ffi::sqlite3_busy_handler(conn.handle(), Some(busy_handler), arg) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

/// A database file with a second name (a hard link) has two lock files, and
/// two pygrates would each take "the" migration lock; SQLite's own journal
/// and locks go wrong the same way (sqlite.org/howtocorrupt.html, 2.5).
#[cfg(unix)]
fn refuse_hard_links(conn: &Connection) -> Result<(), DbError> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.nlink() > 1 => Err(DbError::new(format!(
            "{path} has {} names (hard links): neither SQLite nor pygrate can lock it safely under each of them, so \
             two pygrates could apply the same phase; remove the extra links (a symbolic link is fine)",
            meta.nlink()
        ))),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn refuse_hard_links(_conn: &Connection) -> Result<(), DbError> {
    Ok(())
}

impl Sqlite {
    pub fn open(path: Option<&Path>, settings: &Settings, create: bool) -> Result<Sqlite, Error> {
        let shown = path.map_or_else(|| ":memory:".to_string(), |p| p.display().to_string());
        let fail = |e: rusqlite::Error| Error::db(format!("cannot open SQLite database {shown}"), db_error(e));
        let conn = match path {
            // A read-only command on a database that does not exist yet sees
            // empty state, and leaves no file behind.
            Some(path) if !create && !path.exists() => Connection::open_in_memory().map_err(fail)?,
            Some(path) => {
                let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                if create {
                    flags |= OpenFlags::SQLITE_OPEN_CREATE;
                }
                Connection::open_with_flags(path, flags).map_err(fail)?
            }
            None => Connection::open_in_memory().map_err(fail)?,
        };
        // No `lock_timeout` is no limit: the longest busy timeout SQLite takes.
        let busy = settings.timeouts.lock_timeout.unwrap_or(crate::config::MAX_TIMEOUT);
        // SAFETY: the handle is only stored, for `sqlite3_is_interrupted`.
        let db = AtomicPtr::new(unsafe { conn.handle() });
        let busy_wait = Box::new(BusyWait { db, timeout_ms: AtomicU64::new(0), began: Mutex::new(None) });
        busy_wait.set_timeout(busy);
        install_busy_handler(&conn, &busy_wait).map_err(fail)?;
        // SQLite's own default, and the sqlite3 shell's; rusqlite's bundled
        // build turns foreign keys on. On, the documented table rebuild
        // (copy, DROP TABLE, rename) deletes the rows that reference the
        // table through ON DELETE CASCADE, and a section cannot turn them
        // off: the pragma does nothing inside a transaction.
        conn.execute_batch("PRAGMA foreign_keys = OFF").map_err(fail)?;
        // Beside the file SQLite opened, links resolved: every path that
        // reaches the database (a symbolic link, `..`) shares one lock.
        let lock_path = path.map(|p| {
            let mut name = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).into_os_string();
            name.push(format!(".{}.lock", settings.state_table));
            PathBuf::from(name)
        });
        Ok(Sqlite {
            conn,
            sql: StateSql::new(Dialect::Sqlite, &settings.state_table, None, false),
            lock_path,
            lock_file: None,
            holder: settings.actor.holder(),
            busy,
            busy_wait,
        })
    }

    fn run(&self, sql: &str, params: &[Value<'_>]) -> Result<(), DbError> {
        let params: Vec<Param<'_>> = params.iter().map(|v| Param(*v)).collect();
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        // Cached: the same few state statements run once or twice per section.
        let mut stmt = self.conn.prepare_cached(sql).map_err(db_error)?;
        stmt.execute(refs.as_slice()).map(drop).map_err(db_error)
    }
}

struct SqliteRow<'a, 'r>(&'a rusqlite::Row<'r>);

impl state_sql::Cells for SqliteRow<'_, '_> {
    fn text(&mut self, index: usize) -> Result<Option<String>, DbError> {
        self.0.get(index).map_err(db_error)
    }
    fn int(&mut self, index: usize) -> Result<i64, DbError> {
        self.0.get(index).map_err(db_error)
    }
}

struct Param<'a>(Value<'a>);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self.0 {
            Value::Text(Some(s)) => s.to_sql(),
            Value::Text(None) => Ok(ToSqlOutput::from(rusqlite::types::Null)),
            Value::Int(i) => Ok(ToSqlOutput::from(i)),
        }
    }
}

impl Backend for Sqlite {
    fn capabilities(&self) -> Capabilities {
        Capabilities { transactional_ddl: true, database_wide_writes: true, deferred_durability: false }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn try_lock(&mut self) -> Result<bool, DbError> {
        let Some(path) = &self.lock_path else {
            return Ok(true);
        };
        if self.lock_file.is_some() {
            return Ok(true);
        }
        let io = |e: std::io::Error| DbError::new(format!("lock file {}: {e}", path.display()));
        refuse_hard_links(&self.conn)?;
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.write_all(self.holder.as_bytes()).map_err(io)?;
                self.lock_file = Some(file);
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        // Closing the file releases the lock; the file itself stays, so that a
        // waiter never locks an unlinked inode.
        if let Some(file) = self.lock_file.take() {
            file.unlock().map_err(|e| DbError::new(format!("releasing the lock file: {e}")))?;
        }
        Ok(())
    }

    fn lock_holder(&mut self) -> Result<String, DbError> {
        let mut holder = String::new();
        if let Some(path) = &self.lock_path {
            if let Ok(mut f) = File::open(path) {
                let _ = f.read_to_string(&mut holder);
            }
            if holder.trim().is_empty() {
                holder = format!("another process (lock file {})", path.display());
            } else {
                holder = format!("{} (lock file {})", holder.trim(), path.display());
            }
        }
        Ok(holder)
    }

    fn lock_holder_now(&mut self) -> Result<Option<String>, DbError> {
        let Some(path) = &self.lock_path else {
            return Ok(None); // in memory: no other process shares the database
        };
        if self.lock_file.is_some() {
            return Ok(Some(self.holder.clone()));
        }
        let io = |e: std::io::Error| DbError::new(format!("lock file {}: {e}", path.display()));
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        // A file lock cannot be asked about, only tried: a shared one, for
        // the instant until `file` is dropped. It never waits, and the
        // migration lock taken meanwhile is busy, as for any holder, and
        // retried within `lock_wait` (see `executor::lock`).
        match file.try_lock_shared() {
            Ok(()) => Ok(None),
            Err(TryLockError::WouldBlock) => self.lock_holder().map(Some),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    fn schema_version(&mut self) -> Result<Option<String>, DbError> {
        match self.conn.query_row(&self.sql.select_schema_version, [], |r| r.get(0)) {
            Ok(version) => Ok(version),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) if is_missing_table(&e) => Ok(None),
            Err(e) => Err(db_error(e)),
        }
    }

    fn create_state_tables(&mut self) -> Result<(), DbError> {
        for statement in &self.sql.create {
            self.conn.execute_batch(statement).map_err(db_error)?;
        }
        let version = crate::state::SCHEMA_VERSION.to_string();
        self.run(&self.sql.insert_schema_version, &[Value::Text(Some(&version))])
    }

    fn bound_lock_waits(&mut self, limit: Option<Duration>) -> Result<(), DbError> {
        self.busy_wait.set_timeout(limit.map_or(self.busy, |limit| limit.min(self.busy)));
        Ok(())
    }

    fn read_state(&mut self) -> Result<Option<Vec<PhaseState>>, DbError> {
        let mut stmt = match self.conn.prepare(&self.sql.select_state) {
            Ok(stmt) => stmt,
            Err(e) if is_missing_table(&e) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        let mut rows = stmt.query([]).map_err(db_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            out.push(state_sql::decode_state(&mut SqliteRow(row))?);
        }
        Ok(Some(out))
    }

    fn read_log(&mut self) -> Result<Vec<LogEntry>, DbError> {
        let mut stmt = match self.conn.prepare(&self.sql.select_log) {
            Ok(stmt) => stmt,
            Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(db_error(e)),
        };
        let mut rows = stmt.query([]).map_err(db_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            out.push(state_sql::decode_log(&mut SqliteRow(row))?);
        }
        Ok(out)
    }

    fn begin(&mut self) -> Result<(), DbError> {
        // IMMEDIATE takes the write lock now, so the section cannot fail half-way
        // on a lock upgrade that another writer holds.
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_error)
    }

    fn canceller(&mut self) -> Option<Canceller> {
        let handle = self.conn.get_interrupt_handle();
        Some(Arc::new(move || handle.interrupt()))
    }

    fn in_transaction(&mut self) -> Result<bool, DbError> {
        Ok(!self.conn.is_autocommit())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(db_error)
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK").map_err(db_error)
    }

    fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        // execute_batch steps through every result row, so SELECTs and PRAGMAs
        // that return rows are fine too.
        self.conn.execute_batch(sql).map_err(db_error)
    }

    fn apply_timeouts(&mut self, _in_transaction: bool) -> Result<(), DbError> {
        // lock_timeout is the busy timeout, set at open; SQLite has no statement timeout.
        Ok(())
    }

    /// SQLite has no session state a section would leave behind for the
    /// next in a way a fresh connection would not (no search path, no role).
    fn reset_session(&mut self) -> Result<(), DbError> {
        Ok(())
    }

    fn save_phase(&mut self, row: &PhaseState) -> Result<(), DbError> {
        self.run(&self.sql.upsert_state, &state_sql::state_params(row))
    }

    fn delete_phase(&mut self, id: &VersionId, phase: Phase) -> Result<(), DbError> {
        self.run(&self.sql.delete_state, &state_sql::key_params(id, phase))
    }

    fn append_log(&mut self, entry: &LogEntry) -> Result<(), DbError> {
        self.run(&self.sql.insert_log, &state_sql::log_params(entry))
    }
}

fn is_missing_table(e: &rusqlite::Error) -> bool {
    e.to_string().starts_with("no such table")
}

fn db_error(e: rusqlite::Error) -> DbError {
    match &e {
        rusqlite::Error::SqliteFailure(failure, message) => DbError {
            code: Some(result_code(failure.extended_code)),
            message: message.clone().unwrap_or_else(|| e.to_string()),
            conflict: matches!(failure.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                .then_some(Conflict::LockTimeout),
            ..Default::default()
        },
        // A syntax error: SQLite's message, without the statement it is in
        // (the report shows that) and the byte offset.
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            DbError { code: Some(result_code(error.extended_code)), message: msg.clone(), ..Default::default() }
        }
        _ => DbError::new(e.to_string()),
    }
}

/// SQLite's name for the result code of a failure (`SQLITE_ERROR`), with the
/// extended code's number when it says more (`SQLITE_CONSTRAINT (2067)`, a
/// UNIQUE violation): what SQLite's documentation and forums go by.
fn result_code(extended: std::os::raw::c_int) -> String {
    let primary = extended & 0xff;
    macro_rules! named {
        ($($name:ident),*) => {
            match primary {
                $(rusqlite::ffi::$name => Some(stringify!($name)),)*
                _ => None,
            }
        };
    }
    let name = named!(
        SQLITE_ERROR,
        SQLITE_INTERNAL,
        SQLITE_PERM,
        SQLITE_ABORT,
        SQLITE_BUSY,
        SQLITE_LOCKED,
        SQLITE_NOMEM,
        SQLITE_READONLY,
        SQLITE_INTERRUPT,
        SQLITE_IOERR,
        SQLITE_CORRUPT,
        SQLITE_NOTFOUND,
        SQLITE_FULL,
        SQLITE_CANTOPEN,
        SQLITE_PROTOCOL,
        SQLITE_EMPTY,
        SQLITE_SCHEMA,
        SQLITE_TOOBIG,
        SQLITE_CONSTRAINT,
        SQLITE_MISMATCH,
        SQLITE_MISUSE,
        SQLITE_NOLFS,
        SQLITE_AUTH,
        SQLITE_FORMAT,
        SQLITE_RANGE,
        SQLITE_NOTADB,
        SQLITE_NOTICE,
        SQLITE_WARNING
    );
    match name {
        Some(name) if extended == primary => name.to_string(),
        Some(name) => format!("{name} ({extended})"),
        None => extended.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(sql: &str) -> DbError {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER UNIQUE); INSERT INTO t VALUES (1);").unwrap();
        db_error(conn.execute_batch(sql).unwrap_err())
    }

    #[test]
    fn failures_show_sqlite_result_codes() {
        assert_eq!(failure("SELECT * FROM nope").to_string(), "[SQLITE_ERROR] no such table: nope");
        assert_eq!(
            failure("INSERT INTO t VALUES (1)").to_string(),
            "[SQLITE_CONSTRAINT (2067)] UNIQUE constraint failed: t.a"
        );
        assert_eq!(failure("SELEC 1").to_string(), "[SQLITE_ERROR] near \"SELEC\": syntax error");
        assert_eq!(result_code(5), "SQLITE_BUSY");
        assert_eq!(result_code(4242), "4242");
    }
}
