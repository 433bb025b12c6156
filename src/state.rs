//! What the database remembers (SPEC 4), as plain values: the planner reads
//! it, the executor writes it, the adapters store it.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::phase::Phase;
use crate::project::VersionId;

/// Version of the state tables' own layout, stored with them.
pub const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Applied,
    RolledBack,
    /// Started and not finished: a crash, or a kill, or still running elsewhere.
    Running,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::RolledBack => "rolled_back",
            Status::Running => "running",
            Status::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [Status::Applied, Status::RolledBack, Status::Running, Status::Failed].into_iter().find(|s| s.as_str() == text)
    }

    /// Running and failed phases block their version until resolved.
    pub fn is_unsettled(self) -> bool {
        matches!(self, Status::Running | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `pygrate_state`: a (release, version, phase) that was touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseState {
    pub id: VersionId,
    pub phase: Phase,
    pub status: Status,
    /// Checksum of the phase's section when it was applied.
    pub checksum: Option<String>,
    /// Checksum of its rollback section at that time.
    pub rollback_checksum: Option<String>,
    /// For running/failed: whether the unfinished operation was a rollback.
    pub rolling_back: bool,
    /// Statements of the running/failed section that completed…
    pub statements_done: i64,
    /// …and the checksum of their text, so a resume can trust them.
    pub done_checksum: Option<String>,
    pub at: String,
    pub by: String,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// One row of the append-only `pygrate_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: String,
    pub by: String,
    /// apply, rollback, resolve, rehash, baseline
    pub operation: String,
    pub release: String,
    pub version: String,
    pub phase: String,
    /// ok, failed, …
    pub outcome: String,
    pub checksum: Option<String>,
    pub old_checksum: Option<String>,
    pub duration_ms: i64,
    pub detail: Option<String>,
}

/// All state rows, read once per command.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// One per (release, version, phase): the table's primary key.
    rows: Vec<PhaseState>,
}

impl State {
    pub fn from_rows(rows: impl IntoIterator<Item = PhaseState>) -> State {
        State { rows: rows.into_iter().collect() }
    }

    pub fn into_rows(self) -> impl Iterator<Item = PhaseState> {
        self.rows.into_iter()
    }

    pub fn rows(&self) -> impl Iterator<Item = &PhaseState> {
        self.rows.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Who runs this pygrate: `user@host`, recorded in state, log and lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Actor {
    pub fn current() -> Actor {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(account_name);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        Actor { user, host, pid: std::process::id() }
    }

    /// `user@host`
    pub fn by(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// What a waiting pygrate is told about the lock holder.
    pub fn holder(&self) -> String {
        format!("{}@{} pid {} since {}", self.user, self.host, self.pid, now_utc())
    }
}

/// The account of the real user id, for when the environment names none
/// (cron, containers, `env -i`): its name from the user database, else
/// `uid N`.
#[cfg(unix)]
fn account_name() -> String {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::getuid() };
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: every pointer is to a live local of the right type, and
        // `buffer.len()` is the size of the buffer given.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let status = unsafe { libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
        if status == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        let name = (status == 0 && !found.is_null() && !entry.pw_name.is_null())
            // SAFETY: on success pw_name points to a NUL-terminated string
            // inside `buffer`, which outlives this use.
            .then(|| unsafe { std::ffi::CStr::from_ptr(entry.pw_name) }.to_string_lossy().into_owned())
            .filter(|name| !name.is_empty());
        return name.unwrap_or_else(|| format!("uid {uid}"));
    }
}

/// Windows names its user in `%USERNAME%`.
#[cfg(not(unix))]
fn account_name() -> String {
    std::env::var("USERNAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "unknown".to_string())
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (sorts as text, same on every database).
pub fn now_utc() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_utc(since.as_secs() as i64, since.subsec_millis())
}

fn format_utc(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Whole milliseconds since `started`, for the duration columns.
pub fn elapsed_ms(started: std::time::Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(1_795_478_400, 5), "2026-11-24T00:00:00.005Z");
        assert_eq!(format_utc(951_782_400 + 3661, 0), "2000-02-29T01:01:01.000Z");
    }

    #[test]
    fn status_names_round_trip() {
        for s in [Status::Applied, Status::RolledBack, Status::Running, Status::Failed] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
