//! Every error pygrate reports, typed, with the exit code it maps to (SPEC 10).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A problem at a place in a file: shown as `FILE:LINE: message`, or as
/// `PATH: message` when it is about the name of a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    /// None: the problem is the path itself (a directory has no lines).
    pub line: Option<usize>,
    pub message: String,
}

impl FileError {
    pub fn new(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        FileError { path: path.into(), line: Some(line), message: message.into() }
    }

    /// A problem with the path itself, not with a line of what it holds.
    pub fn of_path(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        FileError { path: path.into(), line: None, message: message.into() }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// An error reported by a database, in the database's own terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbError {
    /// SQLSTATE (PostgreSQL), error number (MySQL), result code name (SQLite).
    pub code: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The statement lost to another session, and the section is worth
    /// retrying (SPEC 9's `lock_retries`).
    pub conflict: Option<Conflict>,
}

/// How a statement lost to another session. Each undoes only what a retry
/// redoes: the failed statement, or its whole transaction (PostgreSQL; a
/// MySQL deadlock), which a retry begins again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// It could not get a lock in time (55P03, 1205, SQLITE_BUSY).
    LockTimeout,
    /// The database ended a deadlock by failing it (40P01, 1213).
    Deadlock,
    /// PostgreSQL could not serialize it with a concurrent transaction
    /// (40001, under REPEATABLE READ or SERIALIZABLE).
    Serialization,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conflict::LockTimeout => "could not get a lock in time",
            Conflict::Deadlock => "was in a deadlock with another session, which the database ended by failing it",
            Conflict::Serialization => "could not be serialized with a concurrent transaction",
        })
    }
}

impl DbError {
    pub fn new(message: impl Into<String>) -> Self {
        DbError { message: message.into(), ..Default::default() }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "[{code}] {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if let Some(detail) = &self.detail {
            write!(f, "\n  detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A statement of a section failed while it ran.
#[derive(Debug, Clone)]
pub struct StatementFailure {
    pub path: PathBuf,
    pub line: usize,
    /// e.g. `add 2026.01/v002-split-name`
    pub operation: String,
    /// The statement, shortened to one line.
    pub statement: String,
    pub error: DbError,
    /// What the state now says and how to go on.
    pub aftermath: String,
}

impl fmt::Display for StatementFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} failed: {}\n  statement: {}\n  {}",
            self.path.display(),
            self.line,
            self.operation,
            self.error,
            self.statement,
            self.aftermath
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File-format errors, all of them at once.
    #[error("{}", join(.0))]
    Format(Vec<FileError>),
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The lane planner refused; nothing ran.
    #[error("refused: {0}")]
    Refused(String),
    /// Lint found error-level problems in files that would run; nothing ran.
    #[error("{0}")]
    Unsafe(String),
    /// `lock_wait` is the configured wait, which the message names so that
    /// it is clear what to raise.
    #[error("could not get the migration lock within {} (`lock_wait`): held by {holder}", crate::text::duration(*.lock_wait))]
    LockTimeout { lock_wait: Duration, holder: String },
    /// Connecting, or reading/writing the state tables.
    #[error("{context}: {error}")]
    Db { context: String, error: Box<DbError> },
    #[error("{0}")]
    Statement(Box<StatementFailure>),
    /// A stop was asked for (SIGINT, SIGTERM, a service's shutdown) and
    /// pygrate stopped where `what` says.
    #[error("interrupted by {why}: {what}")]
    Interrupted { why: String, what: String },
    /// `check` found problems (already printed).
    #[error("check found {0} problem(s)")]
    CheckFailed(usize),
}

impl Error {
    pub fn db(context: impl Into<String>, error: DbError) -> Self {
        Error::Db { context: context.into(), error: Box::new(error) }
    }

    /// SPEC 10: 1 when something ran and failed, a check failed or the lock was
    /// not had; 2 when pygrate was asked for something it will not do, and so
    /// executed nothing.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Format(_)
            | Error::Usage(_)
            | Error::Config { .. }
            | Error::Io { .. }
            | Error::Refused(_)
            | Error::Unsafe(_) => 2,
            Error::LockTimeout { .. }
            | Error::Db { .. }
            | Error::Statement(_)
            | Error::Interrupted { .. }
            | Error::CheckFailed(_) => 1,
        }
    }
}

fn join(errors: &[FileError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
