//! Runs planned steps through a backend. Owns the migration lock and the
//! protocols that keep the state tables truthful: one transaction for a
//! section and its state row where the database allows it, else the
//! running → applied/failed protocol with per-statement progress.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::backend::mask_password;
use crate::backend::{Backend, FailedAt, SectionError, SectionRun, Unlocated};
use crate::checksum::statements_checksum;
use crate::error::{DbError, Error, FileError, StatementFailure};
use crate::interrupt::Interrupt;
use crate::parser::Migration;
use crate::phase::{Action, Phase};
use crate::planner::{current_checksums, Step};
use crate::splitter::Statement;
use crate::state::{elapsed_ms, now_utc, Actor, LogEntry, PhaseState, State, Status};
use crate::text::shorten;

/// Holds the migration lock; releases it when dropped, on every path.
pub struct LockGuard<'b> {
    backend: &'b mut dyn Backend,
    interrupt: Interrupt,
}

impl<'b> Deref for LockGuard<'b> {
    type Target = dyn Backend + 'b;
    fn deref(&self) -> &Self::Target {
        self.backend
    }
}

impl DerefMut for LockGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.backend
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Best effort: a lost connection releases the lock on its own
        // (session advisory lock, GET_LOCK, closed lock file).
        let _ = self.backend.rollback();
        let _ = self.backend.unlock();
        self.interrupt.release();
    }
}

/// Takes the migration lock, waiting up to `wait`; then names the holder.
/// While it is held, `interrupt` can cancel the migration's statements.
pub fn lock<'b>(backend: &'b mut dyn Backend, wait: Duration, interrupt: &Interrupt) -> Result<LockGuard<'b>, Error> {
    lock_since(backend, wait, Instant::now(), interrupt)
}

/// `lock`, for a wait that began at `started` (with a read the lock's
/// holder kept waiting).
pub fn lock_since<'b>(
    backend: &'b mut dyn Backend,
    wait: Duration,
    started: Instant,
    interrupt: &Interrupt,
) -> Result<LockGuard<'b>, Error> {
    let mut pause = Duration::from_millis(10);
    let stopped =
        |why| Error::Interrupted { why, what: "stopped before taking the migration lock: nothing ran".into() };
    loop {
        if let Some(why) = interrupt.reason() {
            return Err(stopped(why));
        }
        if backend.try_lock().map_err(|e| Error::db("taking the migration lock", e))? {
            interrupt.hold(backend.canceller());
            return Ok(LockGuard { backend, interrupt: interrupt.clone() });
        }
        let waited = started.elapsed();
        if waited >= wait {
            let holder = backend.lock_holder().unwrap_or_else(|e| format!("another pygrate (holder unknown: {e})"));
            return Err(Error::LockTimeout { lock_wait: wait, holder });
        }
        interrupt.pause(pause.min(wait.saturating_sub(waited)));
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

impl LockGuard<'_> {
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }
}

/// Every state row. State tables of a newer schema than this pygrate knows
/// are refused: their rows could mean something else now.
pub fn read_checked_state(backend: &mut dyn Backend) -> Result<State, DbError> {
    let version = backend.schema_version()?;
    crate::backend::state_sql::check_schema_version(version.as_deref())?;
    Ok(State::from_rows(backend.read_state()?.unwrap_or_default()))
}

/// The error for a session that could not be set up for `step`: reset after
/// the section before, or brought to where a resumed section left it.
fn restoring(step: &Step<'_>, error: DbError) -> Error {
    Error::db(format!("{} {}: setting up the session", step.action, step.id()), error)
}

/// What a lock timeout interrupted and is retried.
#[derive(Debug, Clone, Copy)]
pub enum Retried<'e> {
    Step(&'e Step<'e>),
    /// pygrate's own work on the state tables, e.g. "reading the state table".
    StateTables(&'static str),
}

impl std::fmt::Display for Retried<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retried::Step(step) => write!(f, "{} {}", step.action, step.id()),
            Retried::StateTables(doing) => f.write_str(doing),
        }
    }
}

/// What happened, for whoever prints progress. `Replayed`: the step failed
/// and ran again, rolled back, to find the failing statement: `statement`, or
/// None when the second run did not tell.
#[derive(Debug)]
pub enum Event<'e> {
    Started {
        step: &'e Step<'e>,
    },
    Statement {
        step: &'e Step<'e>,
        statement: &'e Statement<'e>,
        /// The statement's text as it may be shown: the connection's
        /// password masked.
        text: &'e str,
    },
    Retry {
        of: Retried<'e>,
        attempt: u32,
        pause: Duration,
        error: &'e DbError,
    },
    Replayed {
        step: &'e Step<'e>,
        statement: Option<&'e Statement<'e>>,
    },
    /// An INVALID index that a failed `CREATE INDEX CONCURRENTLY` had left
    /// was dropped, to build it again.
    DroppedInvalidIndex {
        step: &'e Step<'e>,
        index: &'e str,
    },
    /// `statements` in the section; the first `resumed_after` of them had
    /// run before (a resumed `running`/`failed` phase) and did not run now.
    Done {
        step: &'e Step<'e>,
        statements: usize,
        resumed_after: usize,
        elapsed: Duration,
    },
}

/// `Event::Statement` for statement `i` of `p`, as the backend is about to
/// send it; once a stop is asked for, it is not sent. (A cancel reaches only
/// a statement the server is running: one asked for between statements
/// would be lost.)
fn statement_events<'p>(
    p: &'p Prepared<'_>,
    interrupt: &'p Interrupt,
    password: Option<&'p str>,
    on_event: &'p mut dyn FnMut(Event<'_>),
) -> impl FnMut(usize) -> Result<(), DbError> + 'p {
    move |i| {
        if let Some(why) = interrupt.reason() {
            return Err(not_run(&why));
        }
        if let Some(statement) = p.statements.get(i) {
            on_event(Event::Statement { step: &p.step, statement, text: &mask_password(statement.sql, password) });
        }
        Ok(())
    }
}

/// The error of a statement not sent because a stop was asked for.
fn not_run(why: &str) -> DbError {
    DbError::new(format!("not run: pygrate was stopped ({why})"))
}

/// A step with its statements split, checked before anything runs.
#[derive(Debug)]
pub struct Prepared<'a> {
    pub step: Step<'a>,
    pub statements: Vec<Statement<'a>>,
    pub no_transaction: bool,
}

/// Splits every step's section and checks resumes, so that a format error or
/// an edited half-run section stops the command before it touches anything.
pub fn prepare<'a>(steps: Vec<Step<'a>>, dialect: crate::dialect::Dialect) -> Result<Vec<Prepared<'a>>, Error> {
    let mut prepared = Vec::with_capacity(steps.len());
    let mut errors: Vec<FileError> = Vec::new();
    for step in steps {
        let migration = step.migration;
        let section = step.action.section().and_then(|k| migration.section(k));
        let statements = match section.map(|s| s.statements(&migration.path, dialect)) {
            None => Vec::new(),
            Some(Ok(statements)) => statements,
            Some(Err(e)) => {
                errors.extend(e);
                continue;
            }
        };
        let no_transaction = section.is_some_and(|s| s.no_transaction);
        if let Some(resume) = &step.resume {
            let done = resume.statements_done.min(statements.len());
            let now = statements_checksum(statements[..done].iter().map(|s| s.sql));
            if resume.done_checksum.as_deref().is_some_and(|c| c != now) || resume.statements_done > statements.len() {
                // Where those statements are now, so the edit can be found.
                let place = match (statements.first(), done.checked_sub(1).and_then(|last| statements.get(last))) {
                    (Some(first), Some(last)) => format!("{}:{}-{}", migration.path.display(), first.line, last.line),
                    _ => migration.path.display().to_string(),
                };
                return Err(Error::Refused(format!(
                    "{} {}: {} statement(s) of it ran before it stopped, and they were edited since ({place} now), so it \
                     cannot resume; put them back as they ran to resume, or look at the database, then: pygrate \
                     resolve {} {} --as applied|pending",
                    step.action,
                    migration.id,
                    resume.statements_done,
                    migration.id,
                    step.action.phase()
                )));
            }
        }
        prepared.push(Prepared { step, statements, no_transaction });
    }
    if errors.is_empty() {
        Ok(prepared)
    } else {
        Err(Error::Format(errors))
    }
}

/// Why a counted statement did not complete.
enum Counted {
    /// The transaction for the statement could not be opened: nothing ran.
    Opening(DbError),
    /// The statement failed: the database's word on it.
    Statement(DbError),
    /// The statement ran but its progress could not be recorded.
    Recording(DbError),
}

/// The row recording `phase` of `migration` as `status` now, with the file's
/// current checksums and no progress or error (also what `baseline` writes).
pub fn settled_state(migration: &Migration, phase: Phase, status: Status, by: String, duration_ms: i64) -> PhaseState {
    let (checksum, rollback_checksum) = current_checksums(migration, phase);
    PhaseState {
        id: migration.id.clone(),
        phase,
        status,
        checksum: Some(checksum),
        rollback_checksum,
        rolling_back: false,
        statements_done: 0,
        done_checksum: None,
        at: now_utc(),
        by,
        duration_ms,
        error: None,
    }
}

/// How long consecutive sections may share one transaction where that locks
/// nothing more (see `Capabilities::database_wide_writes`), or commit without
/// waiting for the disk where a later commit's wait covers them (see
/// `Capabilities::deferred_durability`). A commit costs SQLite four syncs,
/// more than most sections' own work; 20 ms keeps the application's writers
/// waiting no longer than one modest section would, and bounds what a crash
/// can undo and how late a progress line comes.
pub const COMMIT_WINDOW: Duration = Duration::from_millis(20);

/// Runs steps under a held lock.
pub struct Executor<'g, 'b> {
    pub backend: &'g mut LockGuard<'b>,
    pub actor: &'g Actor,
    pub lock_retries: u32,
    /// First pause after a lock timeout; doubled for each retry.
    pub retry_pause: Duration,
    /// See `COMMIT_WINDOW`; zero commits every section on its own.
    pub commit_window: Duration,
}

/// A step whose commit has returned; reported (`Event::Done`) once it is
/// confirmed durable (see `Capabilities::deferred_durability`).
struct Finished {
    index: usize,
    resumed_after: usize,
    elapsed: Duration,
}

/// Reports `finished`, now durable, and empties it.
fn confirmed(steps: &[Prepared<'_>], finished: &mut Vec<Finished>, on_event: &mut dyn FnMut(Event<'_>)) {
    for Finished { index, resumed_after, elapsed } in finished.drain(..) {
        if let Some(p) = steps.get(index) {
            let statements = p.statements.len();
            on_event(Event::Done { step: &p.step, statements, resumed_after, elapsed });
        }
    }
}

/// How to run one attempt of an atomic section.
#[derive(Clone, Copy)]
struct Attempt {
    /// Statement by statement, so that a failure names its statement.
    stepwise: bool,
    /// See `SectionRun::durable`.
    durable: bool,
}

/// How a shared transaction ended.
struct Group {
    /// Steps committed, from the first one given.
    committed: usize,
    /// The step after them failed (and was undone): it must run on its own,
    /// which retries it or reports it exactly as if it had never been grouped.
    stopped_by_error: bool,
    /// `Started` was already reported for that step.
    announced: bool,
    /// How that step failed, and when it started: a stop asked for
    /// meanwhile means it will not run again, so this is its report.
    failed: Option<(SectionError, Instant)>,
    /// Steps that had finished before it and were rolled back with it, as
    /// SQLite rolls back the whole transaction of some interrupted
    /// statements: the failed step is the one after them.
    undone: usize,
}

/// The longest pause between two tries: doubling from 250 ms, the 20th
/// retry would otherwise wait a day and a half.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// The pause before retry `attempt` (from 1): `first`, doubled each time,
/// at most `MAX_RETRY_PAUSE`.
fn retry_pause(first: Duration, attempt: u32) -> Duration {
    first.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1))).min(MAX_RETRY_PAUSE)
}

impl Executor<'_, '_> {
    /// Whether to retry after `error`: it is a lock timeout and retries are
    /// left. Counts the retry, reports it with `on_retry(attempt, pause)`
    /// and pauses; false also when a stop is asked for meanwhile.
    fn retry_after(&self, attempt: &mut u32, error: &DbError, on_retry: impl FnOnce(u32, Duration)) -> bool {
        if error.conflict.is_none() || *attempt >= self.lock_retries || self.interrupted().is_some() {
            return false;
        }
        *attempt += 1;
        let pause = retry_pause(self.retry_pause, *attempt);
        on_retry(*attempt, pause);
        !self.backend.interrupt().pause(pause)
    }

    fn interrupted(&self) -> Option<String> {
        self.backend.interrupt().reason()
    }

    /// Runs `work`, which sends the migration's own statements: a stop
    /// asked for meanwhile cancels them on the server. `work` gets the
    /// interrupt to check between statements.
    /// `error` with the connection's password masked (SPEC 7: it never
    /// appears in any output), before it is shown, logged or recorded.
    fn scrubbed(&self, error: SectionError) -> SectionError {
        let scrubbed = crate::backend::scrub_password(*error.error, self.backend.password());
        SectionError { error: Box::new(scrubbed), ..error }
    }

    fn cancellable<T>(&mut self, work: impl FnOnce(&mut Self, &Interrupt) -> T) -> T {
        let interrupt = self.backend.interrupt().clone();
        let _in_flight = interrupt.in_statement();
        work(self, &interrupt)
    }

    /// Creates or upgrades the state tables, retried like a section when the
    /// application holds a lock they need.
    pub fn ensure_state_tables(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), Error> {
        self.retried("creating the state tables", |backend| backend.ensure_state_tables(), on_event)
    }

    /// Reads every state row, retried like a section when a write in progress
    /// (SQLite: the application's) keeps the table locked.
    pub fn read_state(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<State, Error> {
        self.retried("reading the state table", read_checked_state, on_event)
    }

    fn retried<T>(
        &mut self,
        doing: &'static str,
        mut work: impl FnMut(&mut dyn Backend) -> Result<T, DbError>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<T, Error> {
        let mut attempt = 0;
        loop {
            let error = match work(&mut **self.backend) {
                Ok(done) => return Ok(done),
                Err(error) => error,
            };
            let _ = self.backend.rollback();
            let on_retry = |attempt, pause| {
                on_event(Event::Retry { of: Retried::StateTables(doing), attempt, pause, error: &error });
            };
            if !self.retry_after(&mut attempt, &error, on_retry) {
                return Err(Error::db(doing, error));
            }
        }
    }

    /// Runs every step in order; the first failure stops the run, leaving
    /// everything before it applied.
    pub fn run(&mut self, steps: &[Prepared<'_>], on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), Error> {
        let mut unconfirmed = Vec::new();
        let ran = self.run_steps(steps, &mut unconfirmed, on_event);
        // Only a failure or a stop leaves any. Unconfirmed, they go
        // unreported: the server may have lost them in a crash, and the
        // state says which it kept.
        if !unconfirmed.is_empty() && self.backend.flush_commits().is_ok() {
            confirmed(steps, &mut unconfirmed, on_event);
        }
        ran
    }

    fn run_steps(
        &mut self,
        steps: &[Prepared<'_>],
        unconfirmed: &mut Vec<Finished>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        let capabilities = self.backend.capabilities();
        // A phase resumed after some of its statements ran (a `no-transaction`
        // section) goes on from there, even if its marker has since lost
        // `no-transaction`: run atomically, it would run them all again.
        let atomic = |p: &Prepared<'_>| {
            capabilities.transactional_ddl
                && !p.no_transaction
                && p.step.resume.as_ref().is_none_or(|r| r.statements_done == 0)
        };
        let shared_commits = capabilities.database_wide_writes && !self.commit_window.is_zero();
        let grouped = |p: &Prepared<'_>| shared_commits && atomic(p);
        let deferred = capabilities.deferred_durability && !self.commit_window.is_zero();
        // Since when the oldest of `unconfirmed` has waited.
        let mut window: Option<Instant> = None;
        let mut next = 0;
        while let Some(first) = steps.get(next) {
            self.stop_if_asked(first, false)?;
            let mut announced = false;
            if grouped(first) {
                let group = self.run_group(&steps[next..], &grouped, on_event);
                next += group.committed;
                if !group.stopped_by_error {
                    continue;
                }
                if let (Some(_), Some((failed, started)), Some(stopped)) =
                    (self.interrupted(), group.failed, steps.get(next + group.undone))
                {
                    let with_it: Vec<String> = steps[next..next + group.undone]
                        .iter()
                        .map(|p| format!("{} {}", p.step.action, p.step.id()))
                        .collect();
                    let aftermath = if with_it.is_empty() {
                        ROLLED_BACK.to_string()
                    } else {
                        format!(
                            "{ROLLED_BACK}, nor of {} that had finished before it in the same transaction (SQLite \
                             rolls all of it back when a statement is interrupted); they are pending again: run the \
                             command again to go on",
                            with_it.join(", ")
                        )
                    };
                    return Err(self.failure(stopped, failed.at, *failed.error, started, aftermath));
                }
                announced = group.announced;
            }
            let Some(prepared) = steps.get(next) else { break };
            self.stop_if_asked(prepared, announced)?;
            if !announced {
                on_event(Event::Started { step: &prepared.step });
            }
            let started = Instant::now();
            // A commit that does not wait for the disk is confirmed by the
            // next one that does: the last before a step that cannot defer,
            // the last of all, the first after `commit_window`.
            let durable = !deferred
                || !atomic(prepared)
                || !steps.get(next + 1).is_some_and(&atomic)
                || window.is_some_and(|w| w.elapsed() >= self.commit_window)
                || self.interrupted().is_some();
            let resumed_after = if atomic(prepared) {
                self.run_atomic(prepared, started, durable, on_event)?;
                0
            } else {
                self.run_tracked(prepared, started, on_event)?
            };
            unconfirmed.push(Finished { index: next, resumed_after, elapsed: started.elapsed() });
            if durable {
                confirmed(steps, unconfirmed, on_event);
                window = None;
            } else {
                window.get_or_insert(started);
            }
            next += 1;
        }
        Ok(())
    }

    /// Refuses to start `next` once a stop has been asked for. `undone`:
    /// it had started in a shared transaction, and was rolled back.
    fn stop_if_asked(&mut self, next: &Prepared<'_>, undone: bool) -> Result<(), Error> {
        let Some(why) = self.interrupted() else { return Ok(()) };
        let (action, id) = (next.step.action, next.step.id());
        let what = if undone {
            let log = self.log_entry(&next.step, "failed", Instant::now(), Some(format!("stopped ({why})")));
            let _ = self.backend.append_log(&log);
            format!("{action} {id} was cancelled and rolled back: nothing of it ran, nor anything after it")
        } else {
            format!("stopped before {action} {id}, which did not run, nor anything after it")
        };
        Err(Error::Interrupted { why, what: format!("{what}; run the command again to go on") })
    }

    /// Runs the leading `grouped` steps in one transaction, each under its own
    /// savepoint with its state and log rows, until `commit_window` has
    /// passed; then commits. Each step stays its own unit: a failing one is
    /// undone alone and what ran before it is committed. `Done` is reported
    /// only once the commit has happened.
    fn run_group(
        &mut self,
        steps: &[Prepared<'_>],
        grouped: &dyn Fn(&Prepared<'_>) -> bool,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Group {
        let opened = Instant::now();
        // Cancellable: SQLite's BEGIN IMMEDIATE waits for the application's
        // write lock, and a stop asked for meanwhile ends that wait.
        let opening = self.backend.reset_session().and_then(|()| self.cancellable(|e, _| e.backend.begin()));
        if opening.and_then(|()| self.backend.apply_timeouts(true)).is_err() {
            let _ = self.backend.rollback();
            return Group { committed: 0, stopped_by_error: true, announced: false, failed: None, undone: 0 };
        }
        let password = self.backend.password().map(str::to_owned);
        let mut elapsed = Vec::new();
        let mut failed = None;
        for p in steps.iter().take_while(|p| grouped(p)) {
            if (opened.elapsed() >= self.commit_window && !elapsed.is_empty()) || self.interrupted().is_some() {
                break;
            }
            on_event(Event::Started { step: &p.step });
            let started = Instant::now();
            let sqls: Vec<&str> = p.statements.iter().map(|s| s.sql).collect();
            let row = self.settled_row(&p.step, started);
            let log = self.log_entry(&p.step, "ok", started, None);
            let section = SectionRun { statements: &sqls, row: &row, log: &log, started, durable: true };
            let ran = self.cancellable(|e, interrupt| {
                e.backend.run_nested(&section, &mut statement_events(p, interrupt, password.as_deref(), on_event))
            });
            if let Err(error) = ran {
                failed = Some((self.scrubbed(error), started));
                break;
            }
            elapsed.push(started.elapsed());
        }
        if self.backend.commit().is_err() {
            // Nothing of the group is applied. Its first step runs on its own,
            // unless a stop cancelled the step that failed: then that is the
            // one to report.
            let _ = self.backend.rollback();
            let (failed, undone) = match failed {
                Some(failed) if self.interrupted().is_some() => (Some(failed), elapsed.len()),
                _ => (None, 0),
            };
            return Group { committed: 0, stopped_by_error: true, announced: true, failed, undone };
        }
        for (p, elapsed) in steps.iter().zip(&elapsed) {
            let statements = p.statements.len();
            on_event(Event::Done { step: &p.step, statements, resumed_after: 0, elapsed: *elapsed });
        }
        let stopped_by_error = failed.is_some();
        Group { committed: elapsed.len(), stopped_by_error, announced: stopped_by_error, failed, undone: 0 }
    }

    /// The section, its state row and its log row in one transaction. A
    /// retry runs statement by statement: the first attempt's failure did not
    /// necessarily say where it happened, and the retry's will. So does a
    /// first attempt that no retry can follow (`lock_retries: 0`): a lock
    /// timeout then still names its statement, which finding afterwards
    /// would mean waiting for the lock a second time.
    fn run_atomic(
        &mut self,
        p: &Prepared<'_>,
        started: Instant,
        durable: bool,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        self.backend.reset_session().map_err(|e| restoring(&p.step, e))?;
        let mut attempt = 0;
        loop {
            let how = Attempt { stepwise: attempt > 0 || self.lock_retries == 0, durable };
            let Err(failed) = self.cancellable(|e, interrupt| e.try_atomic(p, how, started, interrupt, on_event))
            else {
                return Ok(());
            };
            let failed = self.scrubbed(failed);
            let _ = self.backend.rollback();
            // A stop cancels the search too: it found nothing, and why is
            // the stop, which the failure names.
            if failed.replayed && self.interrupted().is_none() {
                let statement = match failed.at {
                    FailedAt::Statement(i) => p.statements.get(i),
                    _ => None,
                };
                on_event(Event::Replayed { step: &p.step, statement });
            }
            let on_retry = |attempt, pause| {
                on_event(Event::Retry { of: Retried::Step(&p.step), attempt, pause, error: &failed.error });
            };
            if self.retry_after(&mut attempt, &failed.error, on_retry) {
                continue;
            }
            return Err(self.failure(p, failed.at, *failed.error, started, ROLLED_BACK.to_string()));
        }
    }

    /// One attempt, `stepwise` or as the backend likes best.
    fn try_atomic(
        &mut self,
        p: &Prepared<'_>,
        Attempt { stepwise, durable }: Attempt,
        started: Instant,
        interrupt: &Interrupt,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), SectionError> {
        let sqls: Vec<&str> = p.statements.iter().map(|s| s.sql).collect();
        let row = self.settled_row(&p.step, started);
        let log = self.log_entry(&p.step, "ok", started, None);
        let section = SectionRun { statements: &sqls, row: &row, log: &log, started: Instant::now(), durable };
        let password = self.backend.password().map(str::to_owned);
        let on_statement = &mut statement_events(p, interrupt, password.as_deref(), on_event);
        if stepwise {
            self.backend.run_stepwise(&section, on_statement)
        } else {
            self.backend.run_atomic(&section, on_statement)
        }
    }

    /// For DDL that commits on its own, and `no-transaction` sections: the
    /// state says `running` before the first statement, counts completed
    /// statements, and says `applied` (or `failed`) after the last. Returns
    /// how many statements a resume skipped (they had run before).
    fn run_tracked(
        &mut self,
        p: &Prepared<'_>,
        started: Instant,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<usize, Error> {
        let step = &p.step;
        let total = p.statements.len();
        let first = step.resume.as_ref().map_or(0, |r| r.statements_done).min(total);
        let context = |e| Error::db(format!("{} {}: writing the state", step.action, step.id()), e);
        // Tracked only because DDL commits on its own (not `no-transaction`):
        // each statement then runs in a transaction with its progress, so a
        // DML statement and its count are atomic, and the last one commits
        // with the final row.
        let wrap = !p.no_transaction;
        self.backend.reset_session().map_err(|e| restoring(step, e))?;
        self.backend.apply_timeouts(false).map_err(context)?;
        // A resume starts on a fresh session: what the completed statements
        // did to it (`SET search_path`, `SET ROLE`, `USE`) is done again, so
        // that the rest runs where it would have.
        let dialect = self.backend.dialect();
        let password = self.backend.password().map(str::to_owned);
        let password = password.as_deref();
        for statement in p.statements[..first].iter().filter(|s| crate::backend::changes_session(s.sql, dialect)) {
            on_event(Event::Statement { step, statement, text: &mask_password(statement.sql, password) });
            self.backend.execute(statement.sql).map_err(|e| restoring(step, e))?;
        }
        if first == total {
            let (settled, log) = self.settled(step, started);
            return self.backend.record(&settled, Some(&log), false, false).map_err(context).map(|()| first);
        }
        // Committed before the first statement, so a crash during it leaves
        // `running` behind.
        let running = self.progress_row(step, p, first, Status::Running, None);
        self.backend.record(&running, None, false, wrap).map_err(context)?;
        let mut open = wrap;
        // Inside a transaction the section began itself, progress is not
        // recorded: that transaction's rollback would take the record with
        // it. `done` counts what is recorded, and so will stay.
        let own = if p.no_transaction {
            crate::splitter::open_transactions(&p.statements, dialect)
        } else {
            vec![None; total]
        };
        let mut done = first;
        for (i, statement) in p.statements.iter().enumerate().skip(first) {
            on_event(Event::Statement { step, statement, text: &mask_password(statement.sql, password) });
            let mut attempt = 0;
            loop {
                let ran = match self.interrupted() {
                    Some(why) => {
                        if open {
                            let _ = self.backend.rollback();
                            open = false;
                        }
                        Err(Counted::Statement(not_run(&why)))
                    }
                    None => self
                        .drop_invalid_index(p, i, on_event)
                        .and_then(|()| self.run_counted(p, i, wrap, &mut open, own[i].is_some(), started)),
                };
                match ran {
                    Ok(()) => {
                        if own[i].is_none() {
                            done = i + 1;
                        }
                        break;
                    }
                    Err(Counted::Opening(e)) => return Err(context(e)),
                    Err(Counted::Recording(e)) => {
                        let _ = self.backend.rollback();
                        let rest = if i + 1 < total { ", run the statements after it by hand" } else { "" };
                        let aftermath = format!(
                            "statement {} of {total} ran, but recording it failed, so the phase stays marked running \
                             with {done} done. Once the cause is fixed: if the statement's work is in the database (DDL \
                             and no-transaction statements commit on their own){rest}, settle it: pygrate resolve {} {} \
                             --as applied; else run `pygrate {} {}` again to resume at it",
                            i + 1,
                            step.id(),
                            step.action.phase(),
                            step.action,
                            step.id()
                        );
                        return Err(self.failure(p, FailedAt::Recording, e, started, aftermath));
                    }
                    Err(Counted::Statement(error)) => {
                        let on_retry = |attempt, pause| {
                            on_event(Event::Retry { of: Retried::Step(step), attempt, pause, error: &error });
                        };
                        // The section's own transaction, open when the
                        // statement failed, is rolled back: the failed row
                        // is written outside it, and what it did is undone.
                        // Nor is the statement retried alone inside it.
                        let began = i.checked_sub(1).and_then(|before| own[before]);
                        if began.is_none() && self.retry_after(&mut attempt, &error, on_retry) {
                            continue;
                        }
                        if began.is_some() {
                            let _ = self.backend.execute("ROLLBACK");
                        }
                        let row = self.progress_row(step, p, done, Status::Failed, Some(error.to_string()));
                        // A DDL statement of a killed run may have completed
                        // without being counted: running it again fails.
                        // Not when this run's stop cancelled it: then it did not complete.
                        let stopped = self.interrupted().is_some();
                        let interrupted =
                            if i == first && !stopped && step.resume.as_ref().is_some_and(|r| r.interrupted) {
                                format!(
                                "this statement was running when an earlier run of this phase stopped, and may have \
                                 completed then (a server may finish a statement whose client is gone) or left part \
                                 of its work behind (PostgreSQL's CREATE INDEX CONCURRENTLY, cancelled, leaves an \
                                 INVALID index, which running the phase again drops first). If it completed, run the \
                                 section's remaining statements by hand and settle it: pygrate resolve {} {} --as \
                                 applied. ",
                                step.id(),
                                step.action.phase()
                            )
                            } else {
                                String::new()
                            };
                        // A stopped run's statement needs no fixing, nor
                        // one that lost to another session.
                        let go_on =
                            if stopped || error.conflict.is_some() { "Run" } else { "Fix the statement, then run" };
                        let undone = match began.and_then(|b| p.statements.get(b)) {
                            Some(begin) => format!(
                                "The transaction the section began at line {} was rolled back, with statements {} to \
                                 {i}. ",
                                begin.line,
                                done + 1
                            ),
                            None => String::new(),
                        };
                        let aftermath = match self.backend.save_phase(&row) {
                            Ok(()) => format!(
                                "{undone}{done} of {total} statement(s) completed and stay applied; the phase is marked \
                                 failed. {go_on} `pygrate {} {}` again to resume there, or settle it: pygrate resolve \
                                 {} {} --as applied|pending",
                                step.action,
                                step.id(),
                                step.id(),
                                step.action.phase()
                            ),
                            Err(e) => format!("the phase stays marked running (recording the failure failed too: {e})"),
                        };
                        let aftermath = format!("{interrupted}{aftermath}");
                        return Err(self.failure(p, FailedAt::Statement(i), error, started, aftermath));
                    }
                }
            }
        }
        Ok(first)
    }

    /// Runs statement `i` and records it as done (the last one: the phase as
    /// settled). When `wrap`, both happen in the transaction `open` says is
    /// open (else one is begun), and the next one is opened after the commit.
    fn run_counted(
        &mut self,
        p: &Prepared<'_>,
        i: usize,
        wrap: bool,
        open: &mut bool,
        in_own_transaction: bool,
        started: Instant,
    ) -> Result<(), Counted> {
        let last = i + 1 == p.statements.len();
        if wrap && !*open {
            self.backend.begin().map_err(Counted::Opening)?;
            *open = true;
        }
        let sql = p.statements.get(i).map_or("", |s| s.sql);
        if let Err(e) = self.cancellable(|e, _| e.backend.execute(sql)) {
            if wrap {
                let _ = self.backend.rollback();
                *open = false;
            }
            return Err(Counted::Statement(crate::backend::scrub_password(e, self.backend.password())));
        }
        *open = wrap && !last;
        let recorded = if last {
            let (settled, log) = self.settled(&p.step, started);
            self.backend.record(&settled, Some(&log), wrap, false)
        } else if in_own_transaction {
            Ok(())
        } else {
            let row = self.progress_row(&p.step, p, i + 1, Status::Running, None);
            self.backend.record(&row, None, wrap, wrap)
        };
        recorded.map_err(Counted::Recording)
    }

    /// Before `CREATE INDEX CONCURRENTLY name` in a `no-transaction`
    /// section: an INVALID index of that name, left by a build that failed
    /// (this run's, before a retry, or an earlier run's, before a resume),
    /// is dropped. Else building it again fails, or with `IF NOT EXISTS`
    /// does nothing, and the phase is recorded applied on an index that
    /// PostgreSQL never uses and yet keeps up to date.
    fn drop_invalid_index(
        &mut self,
        p: &Prepared<'_>,
        i: usize,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Counted> {
        if !p.no_transaction {
            return Ok(());
        }
        let dialect = self.backend.dialect();
        let Some(index) = p.statements.get(i).and_then(|s| s.index_built_concurrently(dialect)) else {
            return Ok(());
        };
        let dropped = self.cancellable(|e, _| e.backend.drop_invalid_index(&index));
        match dropped {
            Ok(true) => on_event(Event::DroppedInvalidIndex { step: &p.step, index: &index }),
            Ok(false) => {}
            Err(e) => return Err(Counted::Statement(crate::backend::scrub_password(e, self.backend.password()))),
        }
        Ok(())
    }

    /// The settled state row and its log row.
    fn settled(&self, step: &Step<'_>, started: Instant) -> (PhaseState, LogEntry) {
        (self.settled_row(step, started), self.log_entry(step, "ok", started, None))
    }

    /// The state row once the step is complete.
    fn settled_row(&self, step: &Step<'_>, started: Instant) -> PhaseState {
        let status = if step.action.is_rollback() { Status::RolledBack } else { Status::Applied };
        settled_state(step.migration, step.action.phase(), status, self.actor.by(), elapsed_ms(started))
    }

    fn progress_row(
        &self,
        step: &Step<'_>,
        p: &Prepared<'_>,
        done: usize,
        status: Status,
        error: Option<String>,
    ) -> PhaseState {
        PhaseState {
            rolling_back: step.action.is_rollback(),
            statements_done: i64::try_from(done).unwrap_or(i64::MAX),
            done_checksum: Some(statements_checksum(
                p.statements[..done.min(p.statements.len())].iter().map(|s| s.sql),
            )),
            error,
            ..settled_state(step.migration, step.action.phase(), status, self.actor.by(), 0)
        }
    }

    fn log_entry(&self, step: &Step<'_>, outcome: &str, started: Instant, detail: Option<String>) -> LogEntry {
        let phase = step.action.phase();
        // The text that runs: a rollback runs the rollback section.
        let checksum = match (step.action, current_checksums(step.migration, phase)) {
            (Action::Apply(_), (forward, _)) => Some(forward),
            (Action::Rollback(_), (_, rollback)) => rollback,
        };
        LogEntry {
            at: now_utc(),
            by: self.actor.by(),
            operation: match step.action {
                Action::Apply(_) => "apply".to_string(),
                Action::Rollback(_) => "rollback".to_string(),
            },
            release: step.id().release.clone(),
            version: step.id().version.clone(),
            phase: phase.name().to_string(),
            outcome: outcome.to_string(),
            checksum,
            old_checksum: None,
            duration_ms: elapsed_ms(started),
            detail,
        }
    }

    /// Logs the failure (best effort, outside any transaction) and builds the
    /// error the user sees.
    fn failure(
        &mut self,
        p: &Prepared<'_>,
        at: FailedAt,
        error: DbError,
        started: Instant,
        aftermath: String,
    ) -> Error {
        let stopped = self.interrupted();
        let aftermath = match &stopped {
            Some(why) => format!("pygrate was stopped ({why}); {aftermath}"),
            None => aftermath,
        };
        let step = &p.step;
        let statement = match at {
            FailedAt::Statement(i) => p.statements.get(i),
            _ => None,
        };
        let detail = match statement {
            Some(s) => format!("line {}: {error}", s.line),
            None => error.to_string(),
        };
        let log = self.log_entry(step, "failed", started, Some(detail));
        let _ = self.backend.append_log(&log);
        let section_line = step.action.section().and_then(|k| step.migration.section(k)).map_or(1, |s| s.marker_line);
        let shown = match (statement, at) {
            (Some(s), _) => shorten(&mask_password(s.sql, self.backend.password()), 160),
            // A cancel, not the failure the replay would look for.
            (None, FailedAt::Unlocated(_)) if stopped.is_some() => "(not determined: pygrate was stopped)".to_string(),
            (None, FailedAt::Unlocated(why)) => format!("(not determined: {})", unlocated_reason(why)),
            (None, _) => "(recording the state)".to_string(),
        };
        Error::Statement(Box::new(StatementFailure {
            path: step.migration.path.clone(),
            line: statement.map_or(section_line, |s| s.line),
            operation: format!("{} {}", step.action, step.id()),
            statement: shown,
            error,
            aftermath,
        }))
    }
}

/// What became of an atomic section that failed.
const ROLLED_BACK: &str = "the transaction was rolled back: nothing of this section was applied";

/// Why the failing statement of a section is not named, for the user.
fn unlocated_reason(why: Unlocated) -> &'static str {
    match why {
        Unlocated::Waited => {
            "the database gave no position for this error, and running the section again to find the statement \
             would wait for the same lock or timeout a second time (or not meet the same concurrent transaction)"
        }
        Unlocated::ConnectionLost => "the database gave no position, and the connection failed",
        Unlocated::AtCommit => {
            "the error came at COMMIT, once every statement had run (deferred constraints and triggers, and \
             SERIALIZABLE's conflicts, are checked there): no one statement is to blame"
        }
        Unlocated::DidNotRecur => {
            "the database gave no position, and the failure did not recur when the section was run again, \
             statement by statement, in a transaction that was rolled back"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_double_up_to_a_limit() {
        let first = Duration::from_millis(250);
        let pauses: Vec<u128> = [1, 2, 3, 4, 8, 9, 20, 1000].map(|a| retry_pause(first, a).as_millis()).to_vec();
        assert_eq!(pauses, [250, 500, 1000, 2000, 30_000, 30_000, 30_000, 30_000]);
    }
}
