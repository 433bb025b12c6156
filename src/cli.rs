//! Command-line arguments (SPEC 6). Parsing only; `app` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::phase::Phase;

#[derive(Debug, Parser)]
#[command(name = "pygrate", version, about = "Zero-downtime SQL migrations in phases: add, simdrop, drop.")]
pub struct Cli {
    /// Project root (holds releases/ and conf.d/).
    #[arg(short = 'p', long = "path", default_value = ".", global = true)]
    pub path: PathBuf,
    /// Environment: uses conf.d/NAME.yaml.
    #[arg(short = 'e', long = "env", global = true)]
    pub env: Option<String>,
    /// Connection URL; overrides the config's `connection` (else DATABASE_URL).
    #[arg(long, global = true)]
    pub conn: Option<String>,
    /// Show what would run; change nothing.
    #[arg(short = 'n', long = "dry-run", global = true)]
    pub dry_run: bool,
    /// Print only errors and warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print each statement as it runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    Add,
    Simdrop,
    Drop,
}

impl From<PhaseArg> for Phase {
    fn from(p: PhaseArg) -> Phase {
        match p {
            PhaseArg::Add => Phase::Add,
            PhaseArg::Simdrop => Phase::Simdrop,
            PhaseArg::Drop => Phase::Drop,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Resolution {
    Applied,
    Pending,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ForwardArgs {
    /// Run a version that sorts before one already applied in the same lane.
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Run even when lint finds error-level problems.
    #[arg(long)]
    pub allow_unsafe: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FfArgs {
    /// Stop after this phase of each version.
    #[arg(long, value_enum)]
    pub through: Option<PhaseArg>,
    /// Stop at this version or release (inclusive).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub forward: ForwardArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fast-forward: run every pending add, simdrop and drop, version by version.
    Ff(FfArgs),
    /// Run `add` for TARGET, or wherever it is pending and allowed.
    Add {
        target: Option<String>,
        #[command(flatten)]
        forward: ForwardArgs,
    },
    /// Run `simdrop` for TARGET, or wherever it is pending and allowed.
    Simdrop {
        target: Option<String>,
        #[command(flatten)]
        forward: ForwardArgs,
    },
    /// Run `drop` for TARGET, or wherever it is pending and allowed.
    Drop {
        target: Option<String>,
        #[command(flatten)]
        forward: ForwardArgs,
    },
    /// Undo `add` of TARGET (a version, or a whole release, newest first).
    #[command(name = "rollback_add")]
    RollbackAdd { target: String },
    /// Undo `simdrop` of TARGET (a version, or a whole release, newest first).
    #[command(name = "rollback_simdrop")]
    RollbackSimdrop { target: String },
    /// Versions × phases, with drift, missing files and out-of-order versions.
    Status { target: Option<String> },
    /// Exit 1 on drift, missing files, out-of-order, unsettled phases or a stale pygrate.sum.
    Check {
        /// Check only the files against releases/pygrate.sum; no database.
        #[arg(long)]
        offline: bool,
    },
    /// What `ff` would run, with the SQL; changes nothing.
    Plan(FfArgs),
    /// Write releases/pygrate.sum.
    Sum,
    /// Create releases/RELEASE/vNNN-NAME.sql with every marker.
    New { release: String, name: String },
    /// Safety findings in the SQL, phase by phase.
    Lint {
        target: Option<String>,
        /// sqlite, postgres or mysql; default: from the connection, else postgres.
        #[arg(long)]
        dialect: Option<String>,
    },
    /// Settle a running/failed phase after looking at the database.
    Resolve {
        target: String,
        #[arg(value_enum)]
        phase: PhaseArg,
        #[arg(long = "as", value_enum)]
        resolution: Resolution,
    },
    /// Accept the current text of drifted applied sections (after review).
    Rehash { target: String },
    /// Mark every phase of every version up to TARGET applied, running nothing.
    Baseline {
        target: String,
        /// Also mark phases that are out of order (pending before a version
        /// that has them applied): their SQL is in the database already.
        #[arg(long)]
        allow_out_of_order: bool,
    },
}
