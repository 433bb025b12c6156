//! The embedding API: what a Rust service calls to migrate its database at
//! start-up, or an operator's tool to roll back and settle phases, with the
//! guarantees of the command line (lock, lane rules, lint gate,
//! running/failed protocol). Nothing is printed, `DATABASE_URL` is not
//! read, and the results are data.
//!
//! ```no_run
//! let migrator = pygrate::migrator::Migrator::new("deploy/db", "postgres://app@db/app");
//! match migrator.ff() {
//!     Ok(outcome) => outcome.ran.iter().for_each(|ran| println!("{} {}", ran.action, ran.id)),
//!     Err(failure) => {
//!         // What completed before the failure; the state tables agree.
//!         failure.before.ran.iter().for_each(|ran| println!("{} {}", ran.action, ran.id));
//!         return Err(failure.error);
//!     }
//! }
//! # Ok::<(), pygrate::error::Error>(())
//! ```

use std::path::PathBuf;

use crate::app::{Captured, Output, Workspace};
use crate::cli::{ForwardArgs, Resolution};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::phase::Phase;

/// A command that did not complete: why, and what it did and said before
/// (the phases that ran to completion, warnings, its output).
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    pub before: Box<Captured>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// What `plan` and `status` answer: their JSON, and the warnings the
/// command line prints beside it (drift, an ignored `schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub json: serde_json::Value,
    pub warnings: Vec<String>,
}

/// A project (`releases/`, and `conf.d/` for settings such as `lock_timeout`)
/// and the database it migrates.
#[derive(Clone)]
pub struct Migrator {
    root: PathBuf,
    url: String,
    env: Option<String>,
    interrupt: Interrupt,
}

/// The URL's password masked: services log their components with `{:?}`.
impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("root", &self.root)
            .field("url", &crate::config::redact(&self.url))
            .field("env", &self.env)
            .field("interrupt", &self.interrupt)
            .finish()
    }
}

impl Migrator {
    /// The project at `root`, against the database at `url` (the URL forms
    /// of the command line; `conf.d`'s `connection` is not used). Each call
    /// connects anew, so `sqlite::memory:` is a new, empty database every
    /// time: it can check the files, not keep what ran.
    pub fn new(root: impl Into<PathBuf>, url: impl Into<String>) -> Migrator {
        Migrator { root: root.into(), url: url.into(), env: None, interrupt: Interrupt::default() }
    }

    /// Settings from `conf.d/ENV.yaml`, when `conf.d` holds several files.
    pub fn env(self, env: impl Into<String>) -> Migrator {
        Migrator { env: Some(env.into()), ..self }
    }

    /// A handle to stop a run from another thread (a shutdown hook): the
    /// statement in flight is cancelled on the server, its phase recorded
    /// as failed there (or rolled back), and nothing else starts; the run
    /// fails with `Error::Interrupted` or the cancelled statement's failure.
    /// Once asked, a later `ff` of this `Migrator` stops before it takes the
    /// lock; `plan` and `status` still answer. Clones share it: one request
    /// stops every run of this `Migrator` and of its clones, each at its own
    /// statement (clones with other `env`s may run at once, under other
    /// state tables' locks).
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// `pygrate ff`: every pending phase, version by version. `Ok` holds the
    /// phases that ran (none: nothing was pending) and any warnings; a
    /// refusal, a lint error or a failing statement is an `Err`, holding
    /// the phases that completed before it, with the state tables saying
    /// what happened.
    pub fn ff(&self) -> Result<Captured, Failure> {
        self.run(false, |workspace, out| {
            workspace.forward(&Phase::ALL, None, true, &ForwardArgs::default(), false, out)
        })
    }

    /// `pygrate rollback_add TARGET` (`phase` Add) or `rollback_simdrop
    /// TARGET` (Simdrop): undoes that phase of TARGET (a version, or every
    /// version of a release), newest first, under the command line's rules;
    /// `drop` is final and refused.
    pub fn rollback(&self, phase: Phase, target: &str) -> Result<Captured, Failure> {
        self.run(false, |workspace, out| workspace.rollback(phase, target, false, out))
    }

    /// `pygrate resolve TARGET PHASE --as applied|pending`: settles a
    /// `running` or `failed` phase once its effect on the database is known.
    pub fn resolve(&self, target: &str, phase: Phase, resolution: Resolution) -> Result<Captured, Failure> {
        self.run(false, |workspace, out| workspace.resolve(target, phase, resolution, false, out))
    }

    /// `pygrate baseline TARGET`: records every phase up to TARGET as
    /// applied without running it, to adopt pygrate on an existing database.
    pub fn baseline(&self, target: &str) -> Result<Captured, Failure> {
        self.run(false, |workspace, out| workspace.baseline(target, false, false, out))
    }

    /// What `ff` would run, as `pygrate plan --format json` prints it.
    pub fn plan(&self) -> Result<Report, Failure> {
        self.json(|workspace, out| workspace.forward(&Phase::ALL, None, true, &ForwardArgs::default(), true, out))
    }

    /// Every version's phases and the problems found, as `pygrate status
    /// --format json` prints them.
    pub fn status(&self) -> Result<Report, Failure> {
        self.json(|workspace, out| workspace.status(None, out))
    }

    fn json(&self, command: impl FnOnce(&Workspace, &Output) -> Result<u8, Error>) -> Result<Report, Failure> {
        let captured = self.run(true, command)?;
        match serde_json::from_str(&captured.text) {
            Ok(json) => Ok(Report { json, warnings: captured.warnings }),
            Err(e) => Err(Failure {
                error: Error::Usage(format!("pygrate printed no JSON ({e}): {}", captured.text)),
                before: Box::new(captured),
            }),
        }
    }

    fn run(
        &self,
        json: bool,
        command: impl FnOnce(&Workspace, &Output) -> Result<u8, Error>,
    ) -> Result<Captured, Failure> {
        let out = Output { json, captured: Some(Default::default()), ..Output::default() };
        let ran = Workspace::open(&self.root, self.env.as_deref(), Some(&self.url), &out).and_then(|workspace| {
            let workspace = Workspace { interrupt: self.interrupt.for_run(), ..workspace };
            command(&workspace, &out)
        });
        let warnings = out.warned.into_inner();
        let captured = Captured { warnings, ..out.captured.map(|c| c.into_inner()).unwrap_or_default() };
        match ran {
            Ok(_) => Ok(captured),
            Err(error) => Err(Failure { error, before: Box::new(captured) }),
        }
    }
}
