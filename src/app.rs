//! The commands, as a library: what `main` calls, and what a Rust service
//! embedding pygrate calls. Each command reads the state once, plans, and
//! only then (under the migration lock) changes anything.

use std::cell::RefCell;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::{connect, Backend, Location, Settings};
use crate::cli::{Cli, Command, FfArgs, Format, ForwardArgs, Resolution};
use crate::config::Config;
use crate::dialect::Dialect;
use crate::error::{Conflict, Error, FileError};
use crate::executor::{lock, lock_since, prepare, read_checked_state, settled_state, Event, Executor, Prepared};
use crate::integrity;
use crate::interrupt::Interrupt;
use crate::lint;
use crate::parser::{parse, Migration};
use crate::phase::{Action, Phase, SectionKind};
use crate::planner::{current_checksums, Cell, Forward, Lanes, Problem, Scope};
use crate::project::{Project, Target, VersionId};
use crate::report;
use crate::state::{now_utc, Actor, LogEntry, PhaseState, State, Status};

/// How much to print, in which form, and where.
#[derive(Debug, Default)]
pub struct Output {
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
    /// Embedding: nothing is printed; what would have been and the phases
    /// that ran are kept here for the caller (the warnings, in `warned`).
    pub captured: Option<RefCell<Captured>>,
    /// Every warning given so far: a JSON answer repeats them.
    pub warned: RefCell<Vec<String>>,
}

/// What a command would have printed, for a caller that embeds pygrate.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Captured {
    /// Its standard output.
    pub text: String,
    pub warnings: Vec<String>,
    /// The phases that ran (applied or rolled back), in order.
    pub ran: Vec<Ran>,
}

/// A phase that ran to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub id: VersionId,
    pub action: Action,
    pub statements: usize,
    /// Statements an earlier, interrupted run had completed.
    pub resumed_after: usize,
    pub elapsed: Duration,
}

impl Output {
    /// Writes `text` to stdout as it is. Write errors are ignored: a closed
    /// pipe (`pygrate ff | head -1`) must not stop a migration halfway, and
    /// the state tables and the exit code tell the truth anyway.
    fn write(&self, text: &str) {
        match &self.captured {
            Some(captured) => captured.borrow_mut().text.push_str(text),
            None => {
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
            }
        }
    }

    /// A line that `-q` keeps quiet.
    fn line(&self, text: &str) {
        if !self.quiet {
            self.show(text);
        }
    }

    /// A line that is the command's result, printed even with `-q`.
    fn show(&self, text: &str) {
        self.write(&format!("{text}\n"));
    }

    fn json(&self, value: &serde_json::Value) {
        self.show(&serde_json::to_string_pretty(value).unwrap_or_default());
    }

    /// To stderr; as `write`, a closed stream is not an error.
    /// Embedding: kept in `warned` only, which becomes `Captured::warnings`.
    fn warn(&self, text: &str) {
        self.warned.borrow_mut().push(text.to_string());
        if self.captured.is_none() {
            let _ = writeln!(std::io::stderr().lock(), "warning: {text}");
        }
    }

    fn ran(&self, ran: Ran) {
        if let Some(captured) = &self.captured {
            captured.borrow_mut().ran.push(ran);
        }
    }
}

/// Runs the command line; returns the exit code for success paths that are
/// not errors (`check` failing is an error, exit 1).
pub fn run(cli: &Cli, interrupt: &Interrupt) -> Result<u8, Error> {
    let out = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
        json: cli.format == Format::Json,
        captured: None,
        warned: RefCell::default(),
    };
    if out.json && !prints_json(&cli.command, cli.dry_run) {
        return Err(Error::Usage(
            "--format json: this command prints text only; JSON is printed by status, check, plan and lint, and by \
             ff, add, simdrop, drop, rollback_add and rollback_simdrop with -n/--dry-run (their plan)"
                .to_string(),
        ));
    }
    let root = cli.path.as_path();
    let open = || {
        let ws = Workspace::open(root, cli.env.as_deref(), cli.conn.as_deref(), &out)?;
        Ok::<_, Error>(Workspace { interrupt: interrupt.clone(), ..ws })
    };
    match &cli.command {
        Command::New { release, name } => new_version(root, release, name, cli.dry_run, &out),
        Command::Ff(args) => {
            let ws = open()?;
            let phases = through(args);
            ws.forward(&phases, args.to.as_deref(), true, &args.forward, cli.dry_run, &out)
        }
        Command::Add { target, forward } | Command::Simdrop { target, forward } | Command::Drop { target, forward } => {
            let phase = match &cli.command {
                Command::Add { .. } => Phase::Add,
                Command::Simdrop { .. } => Phase::Simdrop,
                _ => Phase::Drop,
            };
            let ws = open()?;
            ws.forward(&[phase], target.as_deref(), false, forward, cli.dry_run, &out)
        }
        Command::RollbackAdd { target } | Command::RollbackSimdrop { target } => {
            let phase = if matches!(cli.command, Command::RollbackAdd { .. }) { Phase::Add } else { Phase::Simdrop };
            let ws = open()?;
            ws.rollback(phase, target, cli.dry_run, &out)
        }
        Command::Plan(args) => {
            let ws = open()?;
            ws.forward(&through(args), args.to.as_deref(), true, &args.forward, true, &out)
        }
        Command::Status { target } => {
            let ws = open()?;
            ws.status(target.as_deref(), &out)
        }
        Command::Resolve { target, phase, resolution } => {
            let ws = open()?;
            ws.resolve(target, (*phase).into(), *resolution, cli.dry_run, &out)
        }
        Command::Baseline { target, allow_out_of_order } => {
            let ws = open()?;
            ws.baseline(target, *allow_out_of_order, cli.dry_run, &out)
        }
        Command::Sum => {
            let (project, migrations) = load(root, Statements::Unchecked, &out)?;
            if cli.dry_run {
                return preview_sum(&project, &migrations, &out);
            }
            let path = integrity::write_sum(&project, &migrations)?;
            out.line(&format!("wrote {}", project.display(&path).display()));
            Ok(0)
        }
        Command::Check { offline: true } => {
            // Files only: no database is needed, and the config is read only
            // for the connection's dialect, which decides how SQL splits.
            let statements = known_dialect(cli).map_or(Statements::InEveryDialect, Statements::In);
            let (project, migrations) = load(root, statements, &out)?;
            let sum = integrity::check_sum(&project, &migrations)?;
            report_check(&[], &sum, migrations.len(), &out)
        }
        Command::Check { offline: false } => {
            let ws = open()?;
            ws.check(&out)
        }
        Command::Rehash { target } => {
            let ws = open()?;
            ws.rehash(target, cli.dry_run, &out)
        }
        Command::Lint { target, dialect } => run_lint(cli, target.as_deref(), dialect.as_deref(), &out),
    }
}

/// Does `command` print JSON with `--format json`? The reports do, and so
/// does a dry run of a command that runs phases (it prints its plan); what
/// the others print is text, so a script must not be handed it as JSON.
fn prints_json(command: &Command, dry_run: bool) -> bool {
    match command {
        Command::Status { .. } | Command::Check { .. } | Command::Plan(_) | Command::Lint { .. } => true,
        Command::Ff(_)
        | Command::Add { .. }
        | Command::Simdrop { .. }
        | Command::Drop { .. }
        | Command::RollbackAdd { .. }
        | Command::RollbackSimdrop { .. } => dry_run,
        Command::Sum
        | Command::New { .. }
        | Command::Resolve { .. }
        | Command::Rehash { .. }
        | Command::Baseline { .. } => false,
    }
}

fn through(args: &FfArgs) -> Vec<Phase> {
    let last = args.through.map_or(Phase::Drop, Phase::from);
    Phase::ALL.into_iter().filter(|p| *p <= last).collect()
}

/// A project with its files parsed and its database chosen.
pub struct Workspace {
    pub project: Project,
    pub migrations: Vec<Migration>,
    pub config: Config,
    pub location: Location,
    /// The config file the connection URL came from (None: `--conn`,
    /// `DATABASE_URL` or an embedding service).
    pub connection_from: Option<PathBuf>,
    pub actor: Actor,
    /// Stops a run part-way when asked (see `crate::interrupt`).
    pub interrupt: Interrupt,
    /// The first connection, opened while `open` read the files.
    pub(crate) connecting: Connecting,
}

/// A connection being opened on a thread of its own: a TCP (and TLS)
/// handshake and a server process starting take about as long as reading
/// a thousand version files, and neither needs the other.
#[derive(Debug)]
pub(crate) struct Connecting(std::sync::Mutex<Option<Opening>>);

type Opening = std::thread::JoinHandle<Result<Planning, Error>>;

/// A connection to plan on: see `Workspace::connect_to_plan`.
type Planning = (Box<dyn Backend + Send>, bool);

impl Connecting {
    fn start(location: &Location, settings: Settings, config_file: Option<&Path>) -> Connecting {
        let (location, config_file) = (location.clone(), config_file.map(Path::to_path_buf));
        let thread = std::thread::Builder::new()
            .name("connect".to_string())
            .spawn(move || connect_to_plan(&location, &settings, config_file.as_deref()));
        // Without a thread the command connects when it needs to.
        Connecting(std::sync::Mutex::new(thread.ok()))
    }

    fn take(&self) -> Option<Opening> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// When the files fail to load: a connection already open is closed
    /// the polite way (a MySQL server counts a dropped socket as an aborted
    /// connection); one still on its way is left to end with the process.
    fn abandon(self) {
        if let Some(thread) = self.take().filter(|thread| thread.is_finished()) {
            drop(thread.join());
        }
    }
}

/// Connects to plan, never creating a database file. True with it: the
/// connection may be an empty in-memory stand-in for a SQLite file that
/// did not exist, to be replaced before anything is written. Checked
/// before connecting: another pygrate may create the file meanwhile,
/// and then only a new connection reaches it.
fn connect_to_plan(location: &Location, settings: &Settings, config_file: Option<&Path>) -> Result<Planning, Error> {
    let file_missing = matches!(location, Location::SqliteFile(path) if !path.exists());
    let backend = connect(location, settings, false).map_err(|e| in_config(e, config_file))?;
    Ok((backend, file_missing))
}

impl Workspace {
    /// Reads the config and every version file; any format error stops here.
    pub fn open(root: &Path, env: Option<&str>, conn: Option<&str>, out: &Output) -> Result<Workspace, Error> {
        let config = Config::load(root, env)?;
        config.warnings.iter().for_each(|warning| out.warn(warning));
        if let (None, Some(error), Some(source)) = (conn, &config.connection_error, &config.source) {
            return Err(Error::Config {
                path: source.display().to_string(),
                message: format!("`connection`: {error}"),
            });
        }
        // Errors in a URL from the config name the file, as other config errors do.
        let connection_from = config.source.clone().filter(|_| conn.is_none() && config.connection.is_some());
        let url = conn
            .map(str::to_string)
            .or_else(|| config.connection.clone())
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()));
        let Some(url) = url else {
            // Without a project either, the root is most likely a mistyped `-p`.
            crate::project::check_root(root)?;
            return Err(Error::Usage(format!(
                "no database: set `connection` in {}/NAME.yaml, pass --conn URL, or set DATABASE_URL",
                root.join(crate::config::CONF_DIR).display()
            )));
        };
        let location = Location::parse(&url, root).map_err(|e| in_config(e, connection_from.as_deref()))?;
        if let (Some(schema), Some(source)) = (&config.schema, &config.source) {
            if location.dialect() != Dialect::Postgres {
                out.warn(&format!(
                    "{}: `schema: {schema}` is ignored: `schema` applies only to PostgreSQL, and this connection is {}",
                    source.display(),
                    location.dialect()
                ));
            }
        }
        let actor = Actor::current();
        let connecting =
            Connecting::start(&location, Settings::from_config(&config, actor.clone()), connection_from.as_deref());
        let (project, migrations) = match load(root, Statements::In(location.dialect()), out) {
            Ok(loaded) => loaded,
            Err(e) => {
                connecting.abandon();
                return Err(e);
            }
        };
        Ok(Workspace {
            project,
            migrations,
            config,
            location,
            connection_from,
            actor,
            interrupt: Interrupt::default(),
            connecting,
        })
    }

    fn settings(&self) -> Settings {
        Settings::from_config(&self.config, self.actor.clone())
    }

    /// Connects; `write` false never creates a database file.
    pub fn connect(&self, write: bool) -> Result<Box<dyn Backend>, Error> {
        Ok(connect(&self.location, &self.settings(), write)
            .map_err(|e| in_config(e, self.connection_from.as_deref()))?)
    }

    /// The first connection of a command (see `connect_to_plan`): the one
    /// `open` started, or a new one.
    fn connect_to_plan(&self) -> Result<(Box<dyn Backend>, bool), Error> {
        let (backend, file_missing) = match self.connecting.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::Usage("internal error: connecting panicked".to_string())))?,
            None => connect_to_plan(&self.location, &self.settings(), self.connection_from.as_deref())?,
        };
        Ok((backend, file_missing))
    }

    /// `ff` (`whole` true) or a phase command.
    pub fn forward<'a>(
        &'a self,
        phases: &[Phase],
        target: Option<&str>,
        whole: bool,
        args: &ForwardArgs,
        dry_run: bool,
        out: &Output,
    ) -> Result<u8, Error> {
        // Planning never creates a database: a refused or empty run leaves no file.
        let (mut backend, stand_in) = self.connect_to_plan()?;
        let dialect = backend.dialect();
        let state = self.read_state_to_plan(backend.as_mut(), dry_run, out)?;
        let lanes = Lanes::from_state(&self.migrations, state);
        let target = target.map(|t| Target::resolve(t, lanes.ids())).transpose()?;
        warn_drift(&lanes, out);
        let scope = match (&target, whole) {
            (t, true) => Scope::Through(t.as_ref()),
            (Some(t), false) => Scope::Only(t),
            (None, false) => Scope::Allowed,
        };
        let request = Forward { phases, scope, allow_out_of_order: args.allow_out_of_order };
        let plan_of = |lanes: &Lanes<'a>| -> Result<(Vec<Prepared<'a>>, Vec<String>), Error> {
            let plan = lanes.plan_forward(&request).map_err(Error::Refused)?;
            let prepared = prepare(plan.steps, dialect)?;
            if !args.allow_unsafe {
                lint_gate(&prepared, lanes, dialect)?;
            }
            Ok((prepared, plan.notes))
        };
        self.run_planned(backend, stand_in, &lanes, plan_of, dry_run, out)
    }

    /// `rollback_add` / `rollback_simdrop`.
    pub fn rollback<'a>(&'a self, phase: Phase, target: &str, dry_run: bool, out: &Output) -> Result<u8, Error> {
        // Planning never creates a database: a refused or empty run leaves no file.
        let (mut backend, stand_in) = self.connect_to_plan()?;
        let dialect = backend.dialect();
        let state = self.read_state_to_plan(backend.as_mut(), dry_run, out)?;
        let lanes = Lanes::from_state(&self.migrations, state);
        let target = Target::resolve(target, lanes.ids())?;
        warn_drift(&lanes, out);
        let plan_of = |lanes: &Lanes<'a>| -> Result<(Vec<Prepared<'a>>, Vec<String>), Error> {
            let plan = lanes.plan_rollback(phase, &target, dialect).map_err(Error::Refused)?;
            Ok((prepare(plan.steps, dialect)?, plan.notes))
        };
        self.run_planned(backend, stand_in, &lanes, plan_of, dry_run, out)
    }

    /// Reads the state to plan from, without the lock ("nothing to do" needs
    /// none). On SQLite a write in progress, another pygrate's or the
    /// application's, makes that read fail after `lock_timeout`; a command
    /// that is about to write then waits for the migration lock as SPEC 9
    /// says (up to `lock_wait`, naming the holder) and reads under it,
    /// retried like a section; the lock is taken again to run.
    fn read_state_to_plan(&self, backend: &mut dyn Backend, dry_run: bool, out: &Output) -> Result<State, Error> {
        let started = std::time::Instant::now();
        // That wait is a wait for the lock's holder, so it counts against
        // `lock_wait` (with `lock_timeout: 0` it had no limit at all).
        let bound = |backend: &mut dyn Backend, limit| {
            backend.bound_lock_waits(limit).map_err(|e| Error::db("setting the timeouts", e))
        };
        if !dry_run {
            bound(backend, Some(self.config.lock_wait))?;
        }
        let read = read_checked_state(backend);
        if !dry_run {
            bound(backend, None)?;
        }
        match read {
            Ok(state) => Ok(state),
            Err(error) if error.conflict == Some(Conflict::LockTimeout) && !dry_run => {
                let mut guard = lock_since(backend, self.config.lock_wait, started, &self.interrupt)?;
                self.executor(&mut guard).read_state(&mut |event| print_event(out, &event))
            }
            Err(error) => Err(Error::db("reading the state table", error)),
        }
    }

    /// Plans without the lock first ("nothing to do" needs no lock, and a
    /// refusal or a format error is reported before waiting for one, unless
    /// a phase is `running`, maybe by the pygrate holding the lock), then
    /// takes the lock, plans again on fresh state (another pygrate may have run
    /// while this one waited) and executes. `stand_in`: `backend` may be
    /// the in-memory stand-in of `connect_to_plan`, replaced before locking.
    fn run_planned<'a>(
        &'a self,
        mut backend: Box<dyn Backend>,
        stand_in: bool,
        lanes: &Lanes<'a>,
        plan_of: impl Fn(&Lanes<'a>) -> Result<(Vec<Prepared<'a>>, Vec<String>), Error>,
        dry_run: bool,
        out: &Output,
    ) -> Result<u8, Error> {
        let unlocked = plan_of(lanes);
        // A phase `running` may be another pygrate's, running it right now:
        // a refusal it causes is decided under the lock, once that one is done.
        let wait = !dry_run && matches!(unlocked, Err(Error::Refused(_))) && lanes.any_running();
        if !wait {
            let (prepared, notes) = unlocked?;
            if dry_run {
                print_plan(&prepared, &notes, backend.password(), out);
                return Ok(0);
            }
            if prepared.is_empty() {
                nothing_to_do(&notes, out);
                return Ok(0);
            }
        }
        if stand_in {
            backend = self.connect(true)?;
        }
        let mut guard = lock(backend.as_mut(), self.config.lock_wait, &self.interrupt)?;
        let mut executor = self.executor(&mut guard);
        // Reading (and creating) the state writes no progress: a stop may
        // cancel it.
        let in_flight = self.interrupt.in_statement();
        executor.ensure_state_tables(&mut |event| print_event(out, &event))?;
        let state = executor.read_state(&mut |event| print_event(out, &event))?;
        drop(in_flight);
        let (prepared, notes) = plan_of(&Lanes::from_state(&self.migrations, state))?;
        if prepared.is_empty() {
            nothing_to_do(&notes, out);
            return Ok(0);
        }
        self.executor(&mut guard).run(&prepared, &mut |event| print_event(out, &event))?;
        for note in &notes {
            out.line(&format!("note: {note}"));
        }
        Ok(0)
    }

    fn executor<'g, 'b>(&'g self, guard: &'g mut crate::executor::LockGuard<'b>) -> Executor<'g, 'b> {
        Executor {
            backend: guard,
            actor: &self.actor,
            lock_retries: self.config.lock_retries,
            retry_pause: std::time::Duration::from_millis(250),
            commit_window: crate::executor::COMMIT_WINDOW,
        }
    }

    /// `status [TARGET]`.
    pub fn status(&self, target: Option<&str>, out: &Output) -> Result<u8, Error> {
        let (mut backend, _) = self.connect_to_plan()?;
        let state = read_state(backend.as_mut())?;
        let lanes = Lanes::from_state(&self.migrations, state);
        let target = target.map(|t| Target::resolve(t, lanes.ids())).transpose()?;
        let problems = problems_now(&lanes, backend.as_mut());
        if out.json {
            out.json(&report::status_json(&lanes, &problems, target.as_ref()));
        } else {
            out.write(&report::status_text(&lanes, &problems, target.as_ref()));
        }
        Ok(0)
    }

    /// `check`: the database's state against the files, and the files
    /// against `pygrate.sum` when there is one.
    pub fn check(&self, out: &Output) -> Result<u8, Error> {
        let (mut backend, _) = self.connect_to_plan()?;
        let state = read_state(backend.as_mut())?;
        let lanes = Lanes::from_state(&self.migrations, state);
        let problems = problems_now(&lanes, backend.as_mut());
        let sum = if integrity::sum_path(&self.project).exists() {
            integrity::check_sum(&self.project, &self.migrations)?
        } else {
            Vec::new()
        };
        report_check(&problems, &sum, self.migrations.len(), out)
    }

    /// `rehash TARGET`: accept the current text of drifted applied sections.
    pub fn rehash(&self, target: &str, dry_run: bool, out: &Output) -> Result<u8, Error> {
        let plan = |lanes: &Lanes<'_>| -> Result<Option<Rehashed>, Error> {
            let target = Target::resolve(target, lanes.ids())?;
            let mut rows = Vec::new();
            let mut log = Vec::new();
            let mut lines = Vec::new();
            for entry in lanes.entries.iter().filter(|e| target.contains(&e.id)) {
                // SPEC 5: a running or failed phase blocks every operation on
                // its version until it is settled.
                refuse_unsettled(entry)?;
                let Some(m) = entry.migration else {
                    if entry.is_missing_file() {
                        return Err(Error::Refused(format!(
                            "{} has state but its file is gone, so there is no text to rehash; restore the file",
                            entry.id
                        )));
                    }
                    continue;
                };
                for phase in Phase::ALL {
                    let Some(row) = entry.state(phase).filter(|r| r.status == Status::Applied) else { continue };
                    let (checksum, rollback_checksum) = current_checksums(m, phase);
                    let changes = [
                        (phase.name().to_string(), row.checksum.clone(), Some(checksum.clone())),
                        (format!("rollback_{phase}"), row.rollback_checksum.clone(), rollback_checksum.clone()),
                    ];
                    let changed: Vec<_> = changes.into_iter().filter(|(_, old, new)| old != new).collect();
                    if changed.is_empty() {
                        continue;
                    }
                    for (section, old, new) in changed {
                        lines.push(format!(
                            "rehash {} {section}: {} → {}",
                            entry.id,
                            old.as_deref().unwrap_or("none"),
                            new.as_deref().unwrap_or("none")
                        ));
                        log.push(LogEntry {
                            at: now_utc(),
                            by: self.actor.by(),
                            operation: "rehash".to_string(),
                            release: entry.id.release.clone(),
                            version: entry.id.version.clone(),
                            phase: phase.name().to_string(),
                            outcome: "ok".to_string(),
                            checksum: new,
                            old_checksum: old,
                            duration_ms: 0,
                            detail: Some(format!("accepted the current text of section `{section}`")),
                        });
                    }
                    rows.push(PhaseState { checksum: Some(checksum), rollback_checksum, ..row.clone() });
                }
            }
            if rows.is_empty() {
                out.line(&format!("nothing to rehash: no applied section of {target} has drifted"));
                return Ok(None);
            }
            if dry_run {
                lines.iter().for_each(|line| out.line(&format!("would {line}")));
            }
            Ok(Some((rows, log, lines)))
        };
        let write = |b: &mut dyn Backend, (rows, log, lines): Rehashed| {
            let written = b.begin().and_then(|()| {
                for row in &rows {
                    b.save_phase(row)?;
                }
                for entry in &log {
                    b.append_log(entry)?;
                }
                b.commit()
            });
            written.map_err(|e| Error::db("writing the new checksums", e))?;
            // Said once it is so: a write that fails changed nothing.
            lines.iter().for_each(|line| out.line(line));
            Ok(())
        };
        self.change(dry_run, false, out, plan, write)
    }

    /// `resolve TARGET PHASE --as applied|pending`.
    pub fn resolve(
        &self,
        target: &str,
        phase: Phase,
        resolution: Resolution,
        dry_run: bool,
        out: &Output,
    ) -> Result<u8, Error> {
        let plan = |lanes: &Lanes<'_>| -> Result<Option<Resolved>, Error> {
            let id = version_target(target, lanes)?;
            let current = lanes.entry(&id).and_then(|e| e.state(phase));
            let Some(row) = current.filter(|r| r.status.is_unsettled()) else {
                let now = current.map_or("pending", |r| r.status.as_str());
                return Err(Error::Refused(format!(
                    "{phase} of {id} is {now}, not running or failed: there is nothing to resolve"
                )));
            };
            let settled = match (resolution, row.rolling_back) {
                (Resolution::Applied, _) => Some(Status::Applied),
                (Resolution::Pending, true) => Some(Status::RolledBack),
                (Resolution::Pending, false) => None,
            };
            let what = format!("{phase} of {id}: {} → {}", row.status, settled.map_or("pending", Status::as_str));
            if dry_run {
                out.line(&format!("would resolve {what}"));
            }
            // With the file: its current text, as after a run. Without: the
            // checksums the phase ran with.
            let settled_row = settled.map(|status| match lanes.entry(&id).and_then(|e| e.migration) {
                Some(m) => settled_state(m, phase, status, self.actor.by(), row.duration_ms),
                None => PhaseState {
                    status,
                    rolling_back: false,
                    statements_done: 0,
                    done_checksum: None,
                    at: now_utc(),
                    by: self.actor.by(),
                    error: None,
                    ..row.clone()
                },
            });
            let log = LogEntry {
                at: now_utc(),
                by: self.actor.by(),
                operation: "resolve".to_string(),
                release: id.release.clone(),
                version: id.version.clone(),
                phase: phase.name().to_string(),
                outcome: settled.map_or("pending", Status::as_str).to_string(),
                // The text the phase now stands for; the one it ran with before.
                checksum: settled_row.as_ref().map_or_else(|| row.checksum.clone(), |r| r.checksum.clone()),
                old_checksum: settled_row
                    .as_ref()
                    .and_then(|r| (r.checksum != row.checksum).then(|| row.checksum.clone()).flatten()),
                duration_ms: 0,
                detail: Some(format!(
                    "was {} after {} statement(s){}",
                    row.status,
                    row.statements_done,
                    row.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )),
            };
            Ok(Some(Resolved { id, settled_row, log, what }))
        };
        let write = |b: &mut dyn Backend, resolved: Resolved| {
            let written = b.begin().and_then(|()| {
                match &resolved.settled_row {
                    Some(row) => b.save_phase(row)?,
                    None => b.delete_phase(&resolved.id, phase)?,
                }
                b.append_log(&resolved.log)?;
                b.commit()
            });
            written.map_err(|e| Error::db(format!("resolving {phase} of {}", resolved.id), e))?;
            out.line(&format!("resolved {}", resolved.what));
            Ok(())
        };
        self.change(dry_run, false, out, plan, write)
    }

    /// `baseline TARGET`: every phase of every version up to TARGET is marked
    /// applied, in one transaction, running no SQL.
    pub fn baseline(&self, target: &str, allow_out_of_order: bool, dry_run: bool, out: &Output) -> Result<u8, Error> {
        let plan = |lanes: &Lanes<'_>| -> Result<Option<Vec<PhaseState>>, Error> {
            let target = Target::resolve(target, lanes.ids())?;
            let Some(end) = lanes.entries.iter().rposition(|e| target.contains(&e.id)) else {
                return Err(Error::Usage(format!("no version matches `{target}`")));
            };
            let problems = lanes.problems();
            let mut rows = Vec::new();
            for (i, entry) in lanes.entries[..=end].iter().enumerate() {
                refuse_unsettled(entry)?;
                for phase in Phase::ALL {
                    let state = entry.state(phase);
                    // A file removed after its rollback is as if it never
                    // existed; one removed with a phase applied is below.
                    let Some(m) = entry.migration else { continue };
                    match state.map(|s| s.status) {
                        Some(Status::Applied) => continue,
                        // The state says its SQL was undone; recording it
                        // applied would make the state lie.
                        Some(Status::RolledBack) => {
                            return Err(Error::Refused(format!(
                                "{phase} of {} was rolled back, so baseline cannot mark it applied; \
                                 run it again instead: pygrate {phase} {}",
                                entry.id, entry.id
                            )))
                        }
                        _ => {}
                    }
                    // As for every forward operation (SPEC 5): state whose
                    // file is gone blocks what comes after it.
                    if let Some(gone) = lanes.entries[..i].iter().find(|e| e.is_missing_file()) {
                        return Err(Error::Refused(format!(
                            "{} has state but its file is gone, which blocks every forward operation after it, \
                             baseline of {} included; restore the file (status and check list it)",
                            gone.id, entry.id
                        )));
                    }
                    let out_of_order = problems.iter().find_map(|p| match p {
                        Problem::OutOfOrder { id, phase: p, later } if *id == entry.id && *p == phase => Some(later),
                        _ => None,
                    });
                    if let (Some(later), false) = (out_of_order, allow_out_of_order) {
                        return Err(Error::Refused(format!(
                            "{phase} of {} is out of order ({later}, after it, has {phase} applied): baseline would \
                             record it applied without running it. If its SQL is in the database, pass \
                             --allow-out-of-order; if not, run it: pygrate {phase} {} --allow-out-of-order",
                            entry.id, entry.id
                        )));
                    }
                    rows.push(settled_state(m, phase, Status::Applied, self.actor.by(), 0));
                }
            }
            if rows.is_empty() {
                out.line("nothing to do: every phase up to there is applied");
                return Ok(None);
            }
            if dry_run {
                rows.iter().for_each(|row| out.line(&format!("would baseline {} {}", row.phase, row.id)));
            }
            Ok(Some(rows))
        };
        let write = |b: &mut dyn Backend, rows: Vec<PhaseState>| {
            let written = b.begin().and_then(|()| {
                for row in &rows {
                    b.save_phase(row)?;
                    b.append_log(&LogEntry {
                        at: row.at.clone(),
                        by: row.by.clone(),
                        operation: "baseline".to_string(),
                        release: row.id.release.clone(),
                        version: row.id.version.clone(),
                        phase: row.phase.name().to_string(),
                        outcome: "ok".to_string(),
                        checksum: row.checksum.clone(),
                        old_checksum: None,
                        duration_ms: 0,
                        detail: None,
                    })?;
                }
                b.commit()
            });
            written.map_err(|e| Error::db("writing the baseline", e))?;
            // Said once it is so: a write that fails changed nothing.
            rows.iter().for_each(|row| out.line(&format!("baseline {} {}", row.phase, row.id)));
            Ok(())
        };
        self.change(dry_run, true, out, plan, write)
    }

    /// Runs a command that changes state directly (no SQL of the project's):
    /// `plan` reads the state, prints what will change (or, on a dry run,
    /// what would) and returns the change, None when there is none; `write`
    /// makes it. A dry run stops after planning and takes no lock: `-n`
    /// changes nothing, and leaves no lock file behind. Otherwise the lock
    /// is taken before reading, so the plan is made on the state it changes.
    fn change<'s, T>(
        &'s self,
        dry_run: bool,
        create_state_tables: bool,
        out: &Output,
        plan: impl Fn(&Lanes<'s>) -> Result<Option<T>, Error>,
        write: impl FnOnce(&mut dyn Backend, T) -> Result<(), Error>,
    ) -> Result<u8, Error> {
        // A dry run, or a SQLite file that does not exist yet, is planned
        // first on what is there: a refused or empty change leaves no file.
        let (mut backend, stand_in) = self.connect_to_plan()?;
        if dry_run || stand_in {
            let state = read_state(backend.as_mut())?;
            let change = plan(&Lanes::from_state(&self.migrations, state))?;
            if dry_run || change.is_none() {
                return Ok(0);
            }
            backend = self.connect(true)?;
        }
        let mut guard = lock(backend.as_mut(), self.config.lock_wait, &self.interrupt)?;
        // Reading the state and writing the change (one transaction) record
        // no progress: a stop asked for before the commit cancels them, and
        // nothing is written.
        let stopped = |why| Error::Interrupted { why, what: "nothing was written".to_string() };
        let interrupt = self.interrupt.clone();
        let in_flight = interrupt.in_statement();
        let changed = (|| {
            if create_state_tables {
                self.executor(&mut guard).ensure_state_tables(&mut |event| print_event(out, &event))?;
            }
            let state = self.executor(&mut guard).read_state(&mut |event| print_event(out, &event))?;
            let Some(change) = plan(&Lanes::from_state(&self.migrations, state))? else {
                return Ok(0);
            };
            // Bounded like a section's statements: an application holding
            // the state tables must not keep the write waiting for ever.
            guard.apply_timeouts(false).map_err(|e| Error::db("setting the timeouts", e))?;
            match interrupt.reason() {
                Some(why) => Err(stopped(why)),
                None => write(&mut *guard, change).map(|()| 0),
            }
        })();
        drop(in_flight);
        match (changed, self.interrupt.reason()) {
            (Err(_), Some(why)) => Err(stopped(why)),
            (changed, _) => changed,
        }
    }
}

/// What `rehash` writes: the rows with their new checksums, and a log entry
/// and a line to print per accepted section.
type Rehashed = (Vec<PhaseState>, Vec<LogEntry>, Vec<String>);

/// What `resolve` writes: the settled row (None: the row goes, the phase is
/// pending again), its log entry, and how to say it.
struct Resolved {
    id: VersionId,
    settled_row: Option<PhaseState>,
    log: LogEntry,
    what: String,
}

/// A usage error about the connection URL, said of the config file it
/// came from when it came from one.
fn in_config(error: Error, config_file: Option<&Path>) -> Error {
    match (error, config_file) {
        (Error::Usage(message), Some(path)) => Error::Config { path: path.display().to_string(), message },
        (error, _) => error,
    }
}

/// Refuses when a phase of `entry` is running or failed: nothing may touch
/// its version until `resolve` settles it.
fn refuse_unsettled(entry: &crate::planner::Entry<'_>) -> Result<(), Error> {
    match Phase::ALL
        .into_iter()
        .find_map(|phase| Some((phase, entry.state(phase).filter(|s| s.status.is_unsettled())?)))
    {
        Some((phase, s)) => Err(Error::Refused(format!(
            "{phase} of {} is {}; settle it first: pygrate resolve {} {phase} --as applied|pending",
            entry.id, s.status, entry.id
        ))),
        None => Ok(()),
    }
}

/// The version a TARGET names; a release is not enough here.
fn version_target(target: &str, lanes: &Lanes<'_>) -> Result<VersionId, Error> {
    match Target::resolve(target, lanes.ids())? {
        Target::Version(id) => Ok(id),
        Target::Release(r) => Err(Error::Usage(format!("`{r}` is a release; name one version: RELEASE/VERSION"))),
    }
}

/// `lanes.problems()`, each `running` phase with who holds the migration
/// lock now, if anyone: a phase being run is not one to settle. Asked only
/// when a phase is running, and never by waiting for the lock; a holder
/// that cannot be looked up leaves the usual advice.
fn problems_now(lanes: &Lanes<'_>, backend: &mut dyn Backend) -> Vec<Problem> {
    let mut problems = lanes.problems();
    let running = |p: &Problem| matches!(p, Problem::Unsettled { status: Status::Running, .. });
    if problems.iter().any(running) {
        if let Ok(Some(holder)) = backend.lock_holder_now() {
            for problem in &mut problems {
                if let Problem::Unsettled { status: Status::Running, lock_holder, .. } = problem {
                    *lock_holder = Some(holder.clone());
                }
            }
        }
    }
    problems
}

/// Reads every state row once (see `read_checked_state`).
pub fn read_state(backend: &mut dyn Backend) -> Result<State, Error> {
    read_checked_state(backend).map_err(|e| Error::db("reading the state table", e))
}

/// Which format errors `load` looks for beyond the markers: what only
/// splitting a section into statements shows (an unterminated literal, a
/// COMMIT in a transactional section), in every section.
#[derive(Debug, Clone, Copy)]
pub enum Statements {
    /// Markers only (`sum`, which records checksums).
    Unchecked,
    /// Split in the connection's dialect.
    In(Dialect),
    /// The dialect is unknown: only what is an error in every dialect.
    InEveryDialect,
}

/// Discovers and parses every version file; all format errors at once,
/// before anything connects or runs.
pub fn load(root: &Path, statements: Statements, out: &Output) -> Result<(Project, Vec<Migration>), Error> {
    let project = Project::discover(root)?;
    for warning in &project.warnings {
        out.warn(warning);
    }
    // Reading and hashing thousands of files is I/O- and CPU-bound and each
    // file stands alone: one chunk per core, results kept in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = project.files.len().div_ceil(threads).max(256);
    let parsed: Vec<Result<Vec<Parsed>, Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> =
            project.files.chunks(chunk).map(|files| scope.spawn(move || parse_files(files, statements))).collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| Err(Error::Usage("internal error: a file reader panicked".to_string())))
            })
            .collect()
    });
    let mut migrations = Vec::with_capacity(project.files.len());
    let mut errors: Vec<FileError> = Vec::new();
    for result in parsed {
        for file in result? {
            match file {
                Ok(m) => migrations.push(m),
                Err(e) => errors.extend(e),
            }
        }
    }
    if errors.is_empty() {
        Ok((project, migrations))
    } else {
        Err(Error::Format(errors))
    }
}

/// One file's outcome: the migration, or its format errors.
type Parsed = Result<Migration, Vec<FileError>>;

fn parse_files(files: &[crate::project::VersionFile], statements: Statements) -> Result<Vec<Parsed>, Error> {
    files
        .iter()
        .map(|file| {
            let read = file.read().map_err(|source| Error::Io { path: file.path.clone(), source })?;
            let Some(bytes) = read else {
                let error = FileError::of_path(&file.path, "not a regular file; a version is a plain .sql file");
                return Ok(Err(vec![error]));
            };
            let migration = match parse(file.id.clone(), &file.path, &bytes) {
                Ok(migration) => migration,
                Err(errors) => return Ok(Err(errors)),
            };
            let errors = match statements {
                Statements::Unchecked => Vec::new(),
                Statements::In(dialect) => migration.statement_errors(dialect),
                Statements::InEveryDialect => migration.statement_errors_in_every_dialect(),
            };
            Ok(if errors.is_empty() { Ok(migration) } else { Err(errors) })
        })
        .collect()
}

/// Refuses (exit 2) to run a file with error-level lint findings (SPEC 8),
/// in any of its sections but those that already ran: their findings were
/// accepted when they ran, and silencing them now would mean editing SQL
/// that ran.
fn lint_gate(prepared: &[Prepared<'_>], lanes: &Lanes<'_>, dialect: Dialect) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    let errors: Vec<String> = prepared
        .iter()
        .map(|p| p.step.migration)
        .filter(|m| seen.insert(&m.id))
        .flat_map(|m| {
            let ran: Vec<SectionKind> = Phase::ALL
                .into_iter()
                .filter(|phase| lanes.entry(&m.id).is_some_and(|e| e.cell(*phase) == Cell::Applied))
                .filter_map(|phase| Action::Apply(phase).section())
                .collect();
            let kinds: Vec<SectionKind> = SectionKind::ALL.into_iter().filter(|k| !ran.contains(k)).collect();
            lint::lint_sections(m, &kinds, dialect)
        })
        .filter(|f| f.level == lint::Level::Error)
        .map(|f| f.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Unsafe(format!(
            "{}\nrefused: lint found {} error(s) in the files that would run; fix them, silence a reviewed one with \
             `-- pygrate:allow RULE`, or pass --allow-unsafe",
            errors.join("\n"),
            errors.len()
        )))
    }
}

/// `-n sum`: what `pygrate sum` would change in `releases/pygrate.sum`;
/// writes nothing.
fn preview_sum(project: &Project, migrations: &[Migration], out: &Output) -> Result<u8, Error> {
    let shown = project.display(&integrity::sum_path(project));
    let current = fs::read(integrity::sum_path(project)).ok();
    if current.as_deref() == Some(integrity::sum_text(migrations).as_bytes()) {
        out.line(&format!("{} is up to date: nothing to write", shown.display()));
        return Ok(0);
    }
    out.line(&format!("would write {}", shown.display()));
    for problem in integrity::check_sum(project, migrations)? {
        out.line(&format!("  {}", problem.change()));
    }
    Ok(0)
}

/// `lint [TARGET] [--dialect D]`: exit 1 on error-level findings.
fn run_lint(cli: &Cli, target: Option<&str>, dialect: Option<&str>, out: &Output) -> Result<u8, Error> {
    let root = cli.path.as_path();
    let dialect = match dialect {
        Some(name) => Dialect::from_name(name)
            .ok_or_else(|| Error::Usage(format!("unknown dialect `{name}`; use sqlite, postgres or mysql")))?,
        None => known_dialect(cli).unwrap_or(Dialect::Postgres),
    };
    let (_, migrations) = load(root, Statements::In(dialect), out)?;
    let ids: Vec<VersionId> = migrations.iter().map(|m| m.id.clone()).collect();
    let target = target.map(|t| Target::resolve(t, ids.iter())).transpose()?;
    let findings: Vec<lint::Finding> = migrations
        .iter()
        .filter(|m| target.as_ref().is_none_or(|t| t.contains(&m.id)))
        .flat_map(|m| lint::lint_migration(m, dialect))
        .collect();
    let errors = findings.iter().filter(|f| f.level == lint::Level::Error).count();
    let warnings = findings.len() - errors;
    if out.json {
        let list: Vec<serde_json::Value> = findings.iter().map(lint::Finding::to_json).collect();
        out.json(
            &serde_json::json!({ "dialect": dialect.name(), "errors": errors, "warnings": warnings, "findings": list }),
        );
    } else {
        for finding in &findings {
            out.show(&finding.to_string());
        }
        out.line(&format!("lint ({dialect}): {errors} error(s), {warnings} warning(s)"));
    }
    Ok(u8::from(errors > 0))
}

/// The dialect of the connection the project would use (`--conn`, the
/// config, `DATABASE_URL`), read leniently: only the scheme matters, so an
/// unset password variable must not stop it. None when there is none (lint
/// then applies PostgreSQL's rules, the strictest).
fn known_dialect(cli: &Cli) -> Option<Dialect> {
    let lenient = |var: &str| Some(std::env::var(var).unwrap_or_default());
    let config = Config::load_with(&cli.path, cli.env.as_deref(), &lenient).ok();
    cli.conn
        .clone()
        .or_else(|| config.and_then(|c| c.connection))
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .and_then(|url| Location::parse(&url, &cli.path).ok())
        .map(|l| l.dialect())
}

/// Drift does not stop a run (SPEC 9), but it is never silent.
fn warn_drift(lanes: &Lanes<'_>, out: &Output) {
    drift_warnings(lanes).iter().for_each(|warning| out.warn(warning));
}

fn drift_warnings(lanes: &Lanes<'_>) -> Vec<String> {
    let problems = lanes.problems();
    problems.iter().filter(|p| matches!(p, crate::planner::Problem::Drift { .. })).map(|p| p.message()).collect()
}

/// Prints what `check` found; exit 1 (as an error) when anything did.
fn report_check(
    problems: &[crate::planner::Problem],
    sum: &[integrity::SumProblem],
    versions: usize,
    out: &Output,
) -> Result<u8, Error> {
    let count = problems.len() + sum.len();
    if out.json {
        let all: Vec<serde_json::Value> =
            problems.iter().map(|p| p.to_json()).chain(sum.iter().map(|p| p.to_json())).collect();
        out.json(&serde_json::json!({ "ok": count == 0, "versions": versions, "problems": all }));
    } else if count == 0 {
        out.line(&format!("check: ok ({versions} versions)"));
    } else {
        out.show(&format!("check: {count} problem(s)"));
        for p in problems {
            out.show(&format!("  {}: {}", p.code(), p.message()));
            if let crate::planner::Problem::Drift { stored, current, .. } = p {
                out.show(&format!("      stored  {}", stored.as_deref().unwrap_or("none")));
                out.show(&format!("      current {}", current.as_deref().unwrap_or("none")));
            }
        }
        for p in sum {
            out.show(&format!("  {}: {}", p.code(), p.message()));
        }
    }
    if count == 0 {
        Ok(0)
    } else {
        Err(Error::CheckFailed(count))
    }
}

fn print_plan(prepared: &[Prepared<'_>], notes: &[String], password: Option<&str>, out: &Output) {
    if out.json {
        out.json(&report::plan_json(prepared, notes, &out.warned.borrow(), password));
    } else {
        out.write(&report::plan_text(prepared, notes, password));
    }
}

fn nothing_to_do(notes: &[String], out: &Output) {
    out.line("nothing to do");
    for note in notes {
        out.line(&format!("note: {note}"));
    }
}

fn print_event(out: &Output, event: &Event<'_>) {
    match event {
        Event::Started { step } if out.verbose => out.show(&format!("{} {} …", step.action, step.id())),
        Event::Statement { statement, text, .. } if out.verbose => {
            out.show(&format!("  {:>5} | {}", statement.line, crate::text::shorten(text, 100)))
        }
        Event::Replayed { step, statement } if out.verbose => {
            let found = statement.map_or("it did not fail the same way".to_string(), |s| format!("line {}", s.line));
            out.show(&format!(
                "  {} {}: ran the section again (rolled back) to find the failing statement: {found}",
                step.action,
                step.id()
            ))
        }
        Event::DroppedInvalidIndex { step, index } => out.warn(&format!(
            "{} {}: dropped the INVALID index {index} that a CREATE INDEX CONCURRENTLY which failed had left, to \
             build it again",
            step.action,
            step.id()
        )),
        Event::Retry { of, attempt, pause, error } => out.warn(&format!(
            "{of}: {} ({error}); retry {attempt} in {}",
            error.conflict.unwrap_or(Conflict::LockTimeout),
            crate::text::duration(*pause)
        )),
        Event::Done { step, statements, resumed_after, elapsed } => {
            let plural = if *statements == 1 { "" } else { "s" };
            let ran = match resumed_after {
                0 => format!("{statements} statement{plural}"),
                done => format!(
                    "{} of {statements} statement{plural}, resumed after {done}",
                    statements.saturating_sub(*done)
                ),
            };
            out.line(&format!(
                "{:<16} {}  ok ({ran}, {})",
                step.action.command(),
                step.id(),
                crate::text::duration(*elapsed)
            ));
            out.ran(Ran {
                id: step.id().clone(),
                action: step.action,
                statements: *statements,
                resumed_after: *resumed_after,
                elapsed: *elapsed,
            });
        }
        _ => {}
    }
}

/// `new RELEASE NAME`: the next vNNN in the release, with every marker.
pub fn new_version(root: &Path, release: &str, name: &str, dry_run: bool, out: &Output) -> Result<u8, Error> {
    let plain =
        |s: &str| !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_alphanumeric() || "._-".contains(c));
    if !plain(release) {
        return Err(Error::Usage(format!("release `{release}`: use letters, digits, `.`, `_` and `-` (e.g. 2026.03)")));
    }
    let slug: String =
        name.trim().chars().map(|c| if c.is_whitespace() { '-' } else { c.to_ascii_lowercase() }).collect();
    // `add-orders.sql` names the version `add-orders`; the separator after
    // the number is the release's own.
    let slug = slug.strip_suffix(".sql").unwrap_or(&slug).trim_matches(|c| "-_.".contains(c));
    if !plain(slug) {
        return Err(Error::Usage(format!("name `{name}`: use letters, digits, `.`, `_` and `-` (e.g. add-orders)")));
    }
    let releases = root.join(crate::project::RELEASES_DIR);
    let twin = fs::read_dir(&releases).into_iter().flatten().flatten().find_map(|e| {
        let name = e.file_name().to_str()?.to_string();
        let same = name != release && crate::project::natural_cmp(&name, release) == std::cmp::Ordering::Equal;
        same.then_some(name)
    });
    if let Some(twin) = twin {
        return Err(Error::Usage(format!(
            "release `{release}` would sort the same as the existing `{twin}`, which no order can tell apart; use \
             `{twin}`"
        )));
    }
    let dir: PathBuf = releases.join(release);
    // The new version must sort after every version of the release, so it
    // continues the numbering of the one that sorts last, in its style
    // (`v001-…`, `001_…`, `V7-…`).
    let last = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        // Version files only: other entries are ignored by the project too.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".sql").map(str::to_string))
        .max_by(|a, b| crate::project::natural_cmp(a, b));
    let (prefix, number, width, separator) = match &last {
        Some(last) => {
            let prefix: String = last.chars().take_while(|c| !c.is_ascii_digit()).collect();
            let digits: String = last[prefix.len()..].chars().take_while(char::is_ascii_digit).collect();
            let separator: String =
                last[prefix.len() + digits.len()..].chars().take_while(|c| "-_.".contains(*c)).collect();
            let number = match digits.as_str() {
                "" => 0,
                _ => digits.parse::<u64>().ok().filter(|n| *n < u64::MAX).ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: its number is too large to count on; create the new version's file by hand, named to \
                         sort after it",
                        dir.join(format!("{last}.sql")).display()
                    ))
                })?,
            };
            match (digits.len(), separator.is_empty()) {
                (0, _) => ("v".to_string(), 0, 3, "-".to_string()),
                (width, true) => (prefix, number, width, "-".to_string()),
                (width, false) => (prefix, number, width, separator),
            }
        }
        None => ("v".to_string(), 0, 3, "-".to_string()),
    };
    let stem = format!("{prefix}{:0width$}{separator}{slug}", number + 1);
    if let Some(last) = last.filter(|last| crate::project::natural_cmp(&stem, last) != std::cmp::Ordering::Greater) {
        return Err(Error::Usage(format!(
            "{}: `{stem}.sql` would sort before `{last}.sql`; create the new version's file by hand, named to sort \
             after it",
            dir.display()
        )));
    }
    let path = dir.join(format!("{stem}.sql"));
    if dry_run {
        out.line(&format!("would create {}", path.display()));
        return Ok(0);
    }
    fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    // One comment line: a line break in NAME would put text before the first marker.
    let title = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let template = format!(
        "-- {release}/{}: {title}\n-- Each section runs at its own moment of the deployment; see `pygrate --help`.\n\n\
         -- @add\n\n-- @rollback_add\n\n-- @simdrop\n\n-- @rollback_simdrop\n\n-- @drop\n",
        path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
    );
    // create_new: never overwrite a version someone just wrote.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| Error::Io { path: path.clone(), source })?;
    std::io::Write::write_all(&mut file, template.as_bytes())
        .map_err(|source| Error::Io { path: path.clone(), source })?;
    out.line(&format!("created {}", path.display()));
    Ok(0)
}
