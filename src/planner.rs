//! The lane planner (SPEC 5): files + state → the ordered steps to run, or a
//! refusal naming what blocks and the command that unblocks it. Pure: it
//! knows nothing of databases and changes nothing.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use crate::checksum::sha256_hex;
use crate::dialect::Dialect;
use crate::parser::Migration;
use crate::phase::{Action, Phase};
use crate::project::{natural_cmp, Target, VersionId};
use crate::state::{PhaseState, State, Status};

/// A version in the global order: its file, its state, or both.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub id: VersionId,
    pub migration: Option<&'a Migration>,
    pub states: [Option<PhaseState>; 3],
}

impl Entry<'_> {
    pub fn state(&self, phase: Phase) -> Option<&PhaseState> {
        self.states[phase.index()].as_ref()
    }

    /// Where the lane stands for this phase; rolled back counts as pending.
    pub fn cell(&self, phase: Phase) -> Cell {
        match self.state(phase).map(|s| s.status) {
            Some(Status::Applied) => Cell::Applied,
            Some(Status::Running) => Cell::Running,
            Some(Status::Failed) => Cell::Failed,
            Some(Status::RolledBack) | None => Cell::Pending,
        }
    }

    /// Has state that matters: something applied or unsettled.
    pub fn has_state(&self) -> bool {
        Phase::ALL.iter().any(|p| self.cell(*p) != Cell::Pending)
    }

    /// State without a file: it blocks forward work after it.
    pub fn is_missing_file(&self) -> bool {
        self.migration.is_none() && self.has_state()
    }

    /// A file deleted once nothing of it was applied (every phase pending or
    /// rolled back): as if it never existed, it blocks nothing and no TARGET
    /// names it; `status` still lists it.
    pub fn is_removed_after_rollback(&self) -> bool {
        self.migration.is_none() && !self.has_state()
    }

    /// `phase` (applied) can never be undone: it is `drop`, or its section
    /// runs SQL and there is no rollback section (an irreversible phase).
    fn final_phase(&self, phase: Phase, dialect: Dialect) -> Option<Final> {
        let irreversible = |m: &Migration| {
            let runs_sql = m.section(phase.section()).is_some_and(|s| s.runs_sql(dialect));
            runs_sql && phase.rollback_section().and_then(|k| m.section(k)).is_none()
        };
        let is_final = phase.rollback_section().is_none() || self.migration.is_some_and(irreversible);
        is_final.then(|| Final { id: self.id.clone(), phase })
    }

    fn unsettled(&self) -> Option<&PhaseState> {
        self.states.iter().flatten().find(|s| s.status.is_unsettled())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Applied,
    Pending,
    Running,
    Failed,
}

/// Where an interrupted non-transactional section goes on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub statements_done: usize,
    pub done_checksum: Option<String>,
    /// The phase was left `running`: the run stopped during statement
    /// `statements_done`, which may have completed on the server after all.
    pub interrupted: bool,
}

/// One unit of work: a (version, phase) applied or rolled back.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub migration: &'a Migration,
    pub action: Action,
    pub resume: Option<Resume>,
}

impl Step<'_> {
    pub fn id(&self) -> &VersionId {
        &self.migration.id
    }
}

/// The answer of the planner when the steps run out before the work does
/// without anything being wrong (e.g. `simdrop` waiting for an `add`).
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub steps: Vec<Step<'a>>,
    /// Why nothing (more) could be planned, for the user.
    pub notes: Vec<String>,
}

/// A forward request: `ff` or a phase command.
#[derive(Debug, Clone)]
pub struct Forward<'t> {
    /// Phases to run per version, in order (`ff`: add, simdrop, drop).
    pub phases: &'t [Phase],
    pub scope: Scope<'t>,
    pub allow_out_of_order: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Scope<'t> {
    /// Every version where the phase is pending and allowed (phase command
    /// without TARGET): stops quietly where the lane waits.
    Allowed,
    /// `ff`, optionally `--to TARGET`: everything up to there, or a refusal.
    Through(Option<&'t Target>),
    /// A phase command with TARGET: exactly those versions, or a refusal.
    Only(&'t Target),
}

/// SHA-256 of the empty text: what an absent section is recorded as, so
/// that an absent and an empty section are the same thing.
pub fn empty_checksum() -> String {
    sha256_hex(b"")
}

/// The checksums stored when `phase` of `migration` is applied: its
/// section's and its rollback section's (none for `drop`).
pub fn current_checksums(migration: &Migration, phase: Phase) -> (String, Option<String>) {
    let section = migration.phase_checksum(phase).map_or_else(empty_checksum, str::to_string);
    let rollback = phase
        .rollback_section()
        .map(|_| migration.rollback_checksum(phase).map_or_else(empty_checksum, str::to_string));
    (section, rollback)
}

/// A problem `status` shows and `check` fails on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An applied phase whose section (or rollback section) text changed.
    Drift { id: VersionId, phase: Phase, rollback: bool, stored: Option<String>, current: Option<String> },
    /// State for a version whose file is gone.
    MissingFile { id: VersionId },
    /// A pending phase before a version where it is applied.
    OutOfOrder { id: VersionId, phase: Phase, later: VersionId },
    /// A running or failed phase. `lock_holder`: who held the migration
    /// lock when a `running` one was looked at (most likely the pygrate
    /// running it); the planner knows nothing of locks and leaves it None.
    Unsettled {
        id: VersionId,
        phase: Phase,
        status: Status,
        rolling_back: bool,
        /// Statements recorded as completed: they stay applied.
        statements_done: i64,
        error: Option<String>,
        lock_holder: Option<String>,
    },
}

/// Files and state merged into the global order.
#[derive(Debug)]
pub struct Lanes<'a> {
    pub entries: Vec<Entry<'a>>,
}

impl<'a> Lanes<'a> {
    /// `migrations` come in global order (as `Project::discover` lists them);
    /// versions known only from the state are merged into it.
    pub fn new(migrations: &'a [Migration], state: &State) -> Lanes<'a> {
        Lanes::from_state(migrations, state.clone())
    }

    /// `new`, taking the state rows over instead of copying them.
    pub fn from_state(migrations: &'a [Migration], state: State) -> Lanes<'a> {
        let mut entries: Vec<Entry<'a>> = migrations
            .iter()
            .map(|m| Entry { id: m.id.clone(), migration: Some(m), states: Default::default() })
            .collect();
        let index: HashMap<&VersionId, usize> = migrations.iter().enumerate().map(|(i, m)| (&m.id, i)).collect();
        let mut orphans: HashMap<VersionId, Entry<'a>> = HashMap::new();
        for row in state.into_rows() {
            let entry = match index.get(&row.id) {
                Some(&i) => &mut entries[i],
                None => orphans.entry(row.id.clone()).or_insert_with(|| Entry {
                    id: row.id.clone(),
                    migration: None,
                    states: Default::default(),
                }),
            };
            let phase = row.phase.index();
            entry.states[phase] = Some(row);
        }
        if !orphans.is_empty() {
            entries.extend(orphans.into_values());
            entries.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Lanes { entries }
    }

    /// Whether some phase is `running`: maybe by another pygrate right now.
    pub fn any_running(&self) -> bool {
        self.entries.iter().any(|e| Phase::ALL.into_iter().any(|p| e.cell(p) == Cell::Running))
    }

    /// The versions a TARGET may name.
    pub fn ids(&self) -> impl Iterator<Item = &VersionId> + Clone {
        self.entries.iter().filter(|e| !e.is_removed_after_rollback()).map(|e| &e.id)
    }

    pub fn entry(&self, id: &VersionId) -> Option<&Entry<'a>> {
        // Entries are in global order, so a search halves; a linear look on
        // a miss keeps the answer right for entries in any order.
        match self.entries.binary_search_by(|e| e.id.cmp(id)) {
            Ok(i) => self.entries.get(i),
            Err(_) => self.entries.iter().find(|e| e.id == *id),
        }
    }

    /// Plans `ff` or a phase command.
    pub fn plan_forward(&self, request: &Forward<'_>) -> Result<Plan<'a>, String> {
        let n = self.entries.len();
        let mut applied: Vec<[bool; 3]> =
            self.entries.iter().map(|e| Phase::ALL.map(|p| e.cell(p) == Cell::Applied)).collect();
        let mut last_applied = [None; 3];
        for (i, row) in applied.iter().enumerate() {
            for p in Phase::ALL {
                if row[p.index()] {
                    last_applied[p.index()] = Some(i);
                }
            }
        }
        let first_missing = self.entries.iter().position(Entry::is_missing_file);
        let end = match request.scope {
            Scope::Through(Some(target)) => match self.entries.iter().rposition(|e| target.contains(&e.id)) {
                Some(end) => end + 1,
                None => return Err(format!("no version matches `{target}`")),
            },
            _ => n,
        };
        let mut plan = Plan { steps: Vec::new(), notes: Vec::new() };
        // First entry whose phase is (still) not applied, per lane.
        let mut lane_blocker: [Option<usize>; 3] = [None; 3];
        let mut lane_stopped = [false; 3];
        for i in 0..end {
            let entry = &self.entries[i];
            if entry.is_removed_after_rollback() {
                continue;
            }
            let in_scope = match request.scope {
                Scope::Only(target) => target.contains(&entry.id),
                _ => true,
            };
            for &phase in request.phases {
                let p = phase.index();
                if in_scope && !applied[i][p] && !lane_stopped[p] {
                    let check = Check {
                        lanes: self,
                        applied: &applied,
                        lane_blocker: &lane_blocker,
                        first_missing,
                        last_applied: &last_applied,
                    };
                    match check.apply(i, phase, request.allow_out_of_order) {
                        Ok((migration, resume)) => {
                            plan.steps.push(Step { migration, action: Action::Apply(phase), resume });
                            applied[i][p] = true;
                        }
                        Err(Blocked::Waits(why)) if matches!(request.scope, Scope::Allowed) => {
                            plan.notes.push(why);
                            lane_stopped[p] = true;
                        }
                        Err(Blocked::Waits(why) | Blocked::Refused(why)) => return Err(why),
                    }
                }
            }
            // Every lane, not only the requested ones: a refusal follows what
            // a phase waits for into the other lanes.
            for p in Phase::ALL.map(Phase::index) {
                if !applied[i][p] && lane_blocker[p].is_none() {
                    lane_blocker[p] = Some(i);
                }
            }
        }
        if let Scope::Only(target) = request.scope {
            if !self.entries.iter().any(|e| target.contains(&e.id)) {
                return Err(format!("no version matches `{target}`"));
            }
        }
        Ok(plan)
    }

    /// Plans `rollback_add`/`rollback_simdrop` of TARGET, newest version first.
    /// `dialect` decides whether a forward section runs any statement (one
    /// that runs none needs no rollback section).
    pub fn plan_rollback(&self, phase: Phase, target: &Target, dialect: Dialect) -> Result<Plan<'a>, String> {
        let command = Action::Rollback(phase).command();
        if phase == Phase::Drop {
            return Err("drop is final and cannot be rolled back".to_string());
        }
        let target_release = match target {
            Target::Version(id) => id.release.as_str(),
            Target::Release(r) => r.as_str(),
        };
        if let Some(newest) = self.entries.iter().rev().find(|e| e.has_state()) {
            // An older release is out of reach; a newer one has nothing to roll back.
            if natural_cmp(&newest.id.release, target_release) == Ordering::Greater {
                let why = match self.clearing_hint(&newest.id.release, dialect) {
                    Ok(commands) => {
                        // Clearing the newer release would not help a target
                        // that no rollback can reach anyway: say that instead.
                        if let Some(never) = self.target_irreversible(phase, target, dialect) {
                            return Err(never);
                        }
                        commands
                    }
                    Err(why) => why,
                };
                return Err(format!(
                    "{command} {target}: release {} has state and is newer than {target_release}; a rollback never reaches \
                     past the newest release that has state: {why}",
                    newest.id.release,
                ));
            }
        }
        // Before naming a rollback to run first: one that could never
        // complete the request would roll back production for nothing.
        if let Some(never) = self.target_irreversible(phase, target, dialect) {
            return Err(never);
        }
        let mut applied = self.applied_in(phase);
        let mut planned = vec![false; self.entries.len()];
        let mut plan = Plan { steps: Vec::new(), notes: Vec::new() };
        for i in (0..self.entries.len()).rev() {
            let entry = &self.entries[i];
            if !target.contains(&entry.id) {
                continue;
            }
            // A later version half-applied (or half-rolled-back) in this
            // phase, and not resumed by this plan, is settled first.
            let unsettled_later = (i + 1..self.entries.len())
                .filter(|&k| !planned[k])
                .find_map(|k| self.entries[k].state(phase).filter(|s| s.status.is_unsettled()).map(|s| (k, s)));
            if let Some((k, s)) = unsettled_later {
                return Err(unsettled_message(&self.entries[k].id, s));
            }
            let resume = match entry.cell(phase) {
                Cell::Pending => {
                    plan.notes.push(format!("{} {phase} is not applied; nothing to roll back", entry.id));
                    continue;
                }
                Cell::Running | Cell::Failed => match entry.state(phase) {
                    Some(s) if s.rolling_back => Some(resume_of(s)),
                    Some(s) => return Err(unsettled_message(&entry.id, s)),
                    None => None,
                },
                Cell::Applied => None,
            };
            let migration = self.rollback_check(i, phase, &applied, dialect)?;
            plan.steps.push(Step { migration, action: Action::Rollback(phase), resume });
            applied[i] = false;
            planned[i] = true;
        }
        Ok(plan)
    }

    /// Per entry: is `phase` applied?
    fn applied_in(&self, phase: Phase) -> Vec<bool> {
        self.entries.iter().map(|e| e.cell(phase) == Cell::Applied).collect()
    }

    /// May `phase` of entry `i` (applied) be rolled back, `applied` being its
    /// lane as the plan leaves it? A refusal names the command that makes
    /// room, or says that nothing can: what must be undone first includes a
    /// phase that can never be undone.
    fn rollback_check(
        &self,
        i: usize,
        phase: Phase,
        applied: &[bool],
        dialect: Dialect,
    ) -> Result<&'a Migration, String> {
        let entry = &self.entries[i];
        let id = &entry.id;
        let command = Action::Rollback(phase).command();
        let Some(migration) = entry.migration else {
            return Err(format!(
                "{command} {id}: its file is gone, so there is no rollback SQL to run; restore the file"
            ));
        };
        if let Some(s) = entry.unsettled().filter(|s| s.phase != phase) {
            return Err(unsettled_message(id, s));
        }
        if let Some(never) = self.irreversible(i, phase, applied, dialect) {
            return Err(never);
        }
        // What must be undone first: its next phase, then the later versions' same phase.
        let next = phase.next().filter(|&next| entry.cell(next) == Cell::Applied);
        let later = (i + 1..self.entries.len()).find(|&k| applied[k]);
        if let Some(next) = next {
            return Err(format!(
                "{command} {id}: its {next} is applied; undo it first: pygrate {} {id}",
                Action::Rollback(next).command()
            ));
        }
        if let Some(k) = later {
            let later = &self.entries[k].id;
            return Err(format!(
                "{command} {id}: {phase} of the later version {later} is applied; roll it back first: pygrate {command} {later}"
            ));
        }
        Ok(migration)
    }

    /// Why some version of `target` whose `phase` is applied can never have
    /// it rolled back, if one cannot; newest first.
    fn target_irreversible(&self, phase: Phase, target: &Target, dialect: Dialect) -> Option<String> {
        let applied = self.applied_in(phase);
        (0..self.entries.len())
            .rev()
            .filter(|&i| applied[i] && target.contains(&self.entries[i].id))
            .find_map(|i| self.irreversible(i, phase, &applied, dialect))
    }

    /// Why `phase` of entry `i` (applied) can never be rolled back, whatever
    /// is undone first, if so: its next phase, the same phase of a later
    /// version or its own section is beyond undoing.
    fn irreversible(&self, i: usize, phase: Phase, applied: &[bool], dialect: Dialect) -> Option<String> {
        let entry = &self.entries[i];
        let id = &entry.id;
        let command = Action::Rollback(phase).command();
        if let Some(next) = phase.next().filter(|&next| entry.cell(next) == Cell::Applied) {
            if let Some(never) = self.never_undone(i, next, &self.applied_in(next), dialect) {
                return Some(if next == Phase::Drop {
                    format!("{command} {id}: its drop is applied, and drop is final: its {phase} can no longer be rolled back")
                } else {
                    format!(
                        "{command} {id}: its {next} is applied and can no longer be undone ({never}), so neither can its {phase}"
                    )
                });
            }
        }
        if let Some(k) = (i + 1..self.entries.len()).find(|&k| applied[k]) {
            if let Some(never) = self.never_undone(k, phase, applied, dialect) {
                return Some(format!(
                    "{command} {id}: {phase} of the later version {} is applied and can no longer be undone ({never}), \
                     so neither can this one",
                    self.entries[k].id
                ));
            }
        }
        let migration = entry.migration?;
        entry.final_phase(phase, dialect).map(|_| {
            format!(
                "{command} {id}: {} has no `-- @{command}` section, so its {phase} is irreversible; write one (then `pygrate rehash {id}`) or undo it by hand",
                migration.path.display()
            )
        })
    }

    /// The applied phase nothing can undo among `phase` of entry `i` and
    /// everything that must be undone before it (`applied`: the lane of
    /// `phase` as the plan leaves it): the same phase of later versions, and
    /// from the first of those whose next phase is applied on, that next
    /// phase's lane, and so on down to `drop`.
    fn never_undone(&self, i: usize, phase: Phase, applied: &[bool], dialect: Dialect) -> Option<Final> {
        let (mut first, mut lane) = (i, phase);
        let mut lane_applied = applied.to_vec();
        loop {
            let mut next_from = None;
            for k in (first..self.entries.len()).filter(|&k| k == first || lane_applied[k]) {
                let entry = &self.entries[k];
                if let Some(never) = entry.final_phase(lane, dialect) {
                    return Some(never);
                }
                let next_applied = lane.next().is_some_and(|next| entry.cell(next) == Cell::Applied);
                if next_applied && next_from.is_none() {
                    next_from = Some(k);
                }
            }
            let (Some(k), Some(next)) = (next_from, lane.next()) else {
                return None;
            };
            (first, lane) = (k, next);
            lane_applied = self.applied_in(next);
        }
    }

    /// What takes every state off `release` (the newest that has any), so
    /// that a rollback can reach past it: the commands to run, or why none can.
    fn clearing_hint(&self, release: &str, dialect: Dialect) -> Result<String, String> {
        let entries = || self.entries.iter().filter(|e| e.id.release == release);
        if let Some((id, s)) = entries().find_map(|e| e.unsettled().map(|s| (&e.id, s))) {
            return Err(unsettled_message(id, s));
        }
        let applied =
            entries().flat_map(|e| Phase::ALL.into_iter().filter(|&p| e.cell(p) == Cell::Applied).map(move |p| (e, p)));
        if let Some(never) = applied.into_iter().find_map(|(e, p)| e.final_phase(p, dialect)) {
            return Err(format!("{never}: a rollback can no longer reach past {release}"));
        }
        if let Some(gone) = entries().find(|e| e.migration.is_none() && e.has_state()) {
            return Err(format!(
                "{} has state but its file is gone, so {release} cannot be rolled back; restore the file",
                gone.id
            ));
        }
        Ok(if entries().any(|e| e.cell(Phase::Simdrop) == Cell::Applied) {
            format!("roll it back first: pygrate rollback_simdrop {release}, then pygrate rollback_add {release}")
        } else {
            format!("roll it back first: pygrate rollback_add {release}")
        })
    }

    /// Everything `status` flags and `check` fails on.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut later_applied: [Option<&VersionId>; 3] = [None; 3];
        for entry in self.entries.iter().rev() {
            let id = &entry.id;
            if entry.is_missing_file() {
                problems.push(Problem::MissingFile { id: id.clone() });
            }
            for phase in Phase::ALL {
                match (entry.state(phase), entry.cell(phase)) {
                    (Some(s), Cell::Running | Cell::Failed) => problems.push(Problem::Unsettled {
                        id: id.clone(),
                        phase,
                        status: s.status,
                        rolling_back: s.rolling_back,
                        statements_done: s.statements_done,
                        error: s.error.clone(),
                        lock_holder: None,
                    }),
                    (Some(s), Cell::Applied) => {
                        if let Some(m) = entry.migration {
                            let (section, rollback) = current_checksums(m, phase);
                            if s.checksum.as_deref() != Some(section.as_str()) {
                                problems.push(Problem::Drift {
                                    id: id.clone(),
                                    phase,
                                    rollback: false,
                                    stored: s.checksum.clone(),
                                    current: Some(section),
                                });
                            }
                            if s.rollback_checksum != rollback {
                                problems.push(Problem::Drift {
                                    id: id.clone(),
                                    phase,
                                    rollback: true,
                                    stored: s.rollback_checksum.clone(),
                                    current: rollback,
                                });
                            }
                        }
                    }
                    (_, Cell::Pending) if entry.migration.is_some() => {
                        if let Some(later) = later_applied[phase.index()] {
                            problems.push(Problem::OutOfOrder { id: id.clone(), phase, later: later.clone() });
                        }
                    }
                    _ => {}
                }
                if entry.cell(phase) == Cell::Applied && later_applied[phase.index()].is_none() {
                    later_applied[phase.index()] = Some(id);
                }
            }
        }
        problems.reverse();
        problems
    }
}

/// An applied phase that nothing can undo, so nothing that needs it undone
/// first can run.
#[derive(Debug)]
struct Final {
    id: VersionId,
    phase: Phase,
}

impl fmt::Display for Final {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Final { id, phase } = self;
        match phase.rollback_section() {
            None => write!(f, "the {phase} of {id} is applied, and {phase} is final"),
            Some(section) => write!(f, "{id} has no `-- @{section}` section, so its applied {phase} is irreversible"),
        }
    }
}

enum Blocked {
    /// The lane cannot go on here until other work is done (an earlier
    /// phase, or settling a running/failed one): a phase command without
    /// TARGET stops quietly; with one, or `ff`, it is a refusal.
    Waits(String),
    /// Something is wrong or unsafe; always a refusal.
    Refused(String),
}

struct Check<'c, 'a> {
    lanes: &'c Lanes<'a>,
    applied: &'c [[bool; 3]],
    lane_blocker: &'c [Option<usize>; 3],
    first_missing: Option<usize>,
    last_applied: &'c [Option<usize>; 3],
}

impl<'a> Check<'_, 'a> {
    /// May `phase` of entry `i` run now (given what the plan ran before it)?
    fn apply(
        &self,
        i: usize,
        phase: Phase,
        allow_out_of_order: bool,
    ) -> Result<(&'a Migration, Option<Resume>), Blocked> {
        let entry = &self.lanes.entries[i];
        let id = &entry.id;
        let Some(migration) = entry.migration else {
            return Err(Blocked::Refused(format!(
                "{id} has state but its file is gone; restore it (it blocks every forward operation after it)"
            )));
        };
        if let Some(j) = self.first_missing.filter(|&j| j < i) {
            let gone = &self.lanes.entries[j].id;
            return Err(Blocked::Refused(format!(
                "{phase} {id}: the earlier version {gone} has state but its file is gone; restore the file (status and check list it)"
            )));
        }
        let mut resume = None;
        // An unsettled phase this plan already resumes no longer blocks.
        if let Some(s) = entry.unsettled().filter(|s| !self.applied[i][s.phase.index()]) {
            if s.phase == phase && !s.rolling_back {
                resume = Some(resume_of(s));
            } else {
                return Err(Blocked::Waits(format!("{phase} {id} waits: {}", unsettled_message(id, s))));
            }
        }
        if let Some(required) = phase.requires() {
            if !self.applied[i][required.index()] {
                return Err(Blocked::Waits(self.waits_for(
                    format!("{phase} {id} waits for its {required}"),
                    i,
                    required,
                )));
            }
        }
        if let Some(j) = self.lane_blocker[phase.index()].filter(|&j| j < i) {
            let earlier = &self.lanes.entries[j].id;
            return Err(Blocked::Waits(self.waits_for(
                format!("{phase} {id} waits for {phase} of the earlier version {earlier}"),
                j,
                phase,
            )));
        }
        if let Some(k) = self.last_applied[phase.index()].filter(|&k| k > i) {
            if !allow_out_of_order {
                let later = &self.lanes.entries[k].id;
                return Err(Blocked::Refused(format!(
                    "{id} is out of order: its {phase} is pending but the later version {later} already has {phase} applied; \
                     rename it to sort after {later}, or pass --allow-out-of-order if running it now is safe"
                )));
            }
        }
        Ok((migration, resume))
    }

    /// `waiting` (on `phase` of entry `j`), and the command that unblocks it:
    /// one that runs, so with `--allow-out-of-order` when `j` is out of order.
    /// When `phase` of `j` cannot run yet either, what it waits for in turn,
    /// down to a command that runs (or what must be settled first).
    fn waits_for(&self, waiting: String, j: usize, phase: Phase) -> String {
        if let Err(Blocked::Waits(then) | Blocked::Refused(then)) = self.apply(j, phase, true) {
            return format!("{waiting}; {then}");
        }
        let id = &self.lanes.entries[j].id;
        match self.last_applied[phase.index()].filter(|&k| k > j) {
            Some(k) => {
                let later = &self.lanes.entries[k].id;
                format!(
                    "{waiting}, which is out of order (the later version {later} has {phase} applied): run \
                     `pygrate {phase} {id} --allow-out-of-order` first if running it now is safe, or rename it to sort after {later}"
                )
            }
            None => format!("{waiting}: run `pygrate {phase} {id}` first"),
        }
    }
}

fn resume_of(s: &PhaseState) -> Resume {
    Resume {
        statements_done: usize::try_from(s.statements_done).unwrap_or(0),
        done_checksum: s.done_checksum.clone(),
        interrupted: s.status == Status::Running,
    }
}

fn unsettled_message(id: &VersionId, s: &PhaseState) -> String {
    let what = if s.rolling_back { Action::Rollback(s.phase) } else { Action::Apply(s.phase) };
    format!(
        "{what} of {id} is {} (since {} by {}); run `pygrate {what} {id}` again to resume it, or look at the \
         database, then settle it: pygrate resolve {id} {} --as applied|pending",
        s.status, s.at, s.by, s.phase
    )
}

#[cfg(test)]
mod tests;
