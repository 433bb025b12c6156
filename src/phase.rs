//! Phases (what the state tracks per version) and sections (what a file holds).

use std::fmt;

/// A forward phase: one lane through the global order, one state row per version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Add,
    Simdrop,
    Drop,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Add, Phase::Simdrop, Phase::Drop];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Add => "add",
            Phase::Simdrop => "simdrop",
            Phase::Drop => "drop",
        }
    }

    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The section that runs this phase.
    pub fn section(self) -> SectionKind {
        match self {
            Phase::Add => SectionKind::Add,
            Phase::Simdrop => SectionKind::Simdrop,
            Phase::Drop => SectionKind::Drop,
        }
    }

    /// The section that undoes it; `drop` is final.
    pub fn rollback_section(self) -> Option<SectionKind> {
        match self {
            Phase::Add => Some(SectionKind::RollbackAdd),
            Phase::Simdrop => Some(SectionKind::RollbackSimdrop),
            Phase::Drop => None,
        }
    }

    /// The phase that must be applied on the same version first.
    pub fn requires(self) -> Option<Phase> {
        match self {
            Phase::Add => None,
            Phase::Simdrop => Some(Phase::Add),
            Phase::Drop => Some(Phase::Simdrop),
        }
    }

    /// The phase whose application forbids rolling this one back.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Add => Some(Phase::Simdrop),
            Phase::Simdrop => Some(Phase::Drop),
            Phase::Drop => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A marker's section name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionKind {
    Add,
    Simdrop,
    Drop,
    RollbackAdd,
    RollbackSimdrop,
}

impl SectionKind {
    pub const ALL: [SectionKind; 5] = [
        SectionKind::Add,
        SectionKind::Simdrop,
        SectionKind::Drop,
        SectionKind::RollbackAdd,
        SectionKind::RollbackSimdrop,
    ];
    pub const NAMES: [&'static str; 5] = ["add", "simdrop", "drop", "rollback_add", "rollback_simdrop"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    pub fn from_name(name: &str) -> Option<SectionKind> {
        SectionKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// For a rollback section, the phase it undoes.
    pub fn undoes(self) -> Option<Phase> {
        match self {
            SectionKind::RollbackAdd => Some(Phase::Add),
            SectionKind::RollbackSimdrop => Some(Phase::Simdrop),
            _ => None,
        }
    }

    pub fn is_rollback(self) -> bool {
        self.undoes().is_some()
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a step does to a phase: run it forward, or undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Apply(Phase),
    Rollback(Phase),
}

impl Action {
    pub fn phase(self) -> Phase {
        match self {
            Action::Apply(p) | Action::Rollback(p) => p,
        }
    }

    pub fn section(self) -> Option<SectionKind> {
        match self {
            Action::Apply(p) => Some(p.section()),
            Action::Rollback(p) => p.rollback_section(),
        }
    }

    /// The command name that performs it (`add`, `rollback_simdrop`, …).
    pub fn command(self) -> &'static str {
        match self {
            Action::Apply(p) => p.name(),
            Action::Rollback(Phase::Add) => "rollback_add",
            Action::Rollback(Phase::Simdrop) => "rollback_simdrop",
            Action::Rollback(Phase::Drop) => "rollback_drop",
        }
    }

    pub fn is_rollback(self) -> bool {
        matches!(self, Action::Rollback(_))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.command())
    }
}
