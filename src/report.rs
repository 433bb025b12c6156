//! What `status` and `plan` show: a table for people (fits 80 columns), and
//! a stable JSON shape for machines (documented in the README).

use serde_json::{json, Value};

use crate::backend::mask_password;
use crate::executor::Prepared;
use crate::phase::{Action, Phase};
use crate::planner::{Cell, Entry, Lanes, Problem};
use crate::project::{Target, VersionId};

impl Problem {
    /// Machine-readable code, stable across releases.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Drift { rollback: false, .. } => "drift",
            Problem::Drift { rollback: true, .. } => "rollback_drift",
            Problem::MissingFile { .. } => "missing_file",
            Problem::OutOfOrder { .. } => "out_of_order",
            Problem::Unsettled { status, .. } if *status == crate::state::Status::Running => "running",
            Problem::Unsettled { .. } => "failed",
        }
    }

    pub fn id(&self) -> &VersionId {
        match self {
            Problem::Drift { id, .. }
            | Problem::MissingFile { id }
            | Problem::OutOfOrder { id, .. }
            | Problem::Unsettled { id, .. } => id,
        }
    }

    pub fn phase(&self) -> Option<Phase> {
        match self {
            Problem::Drift { phase, .. } | Problem::OutOfOrder { phase, .. } | Problem::Unsettled { phase, .. } => {
                Some(*phase)
            }
            Problem::MissingFile { .. } => None,
        }
    }

    /// One line: what is wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Problem::Drift { id, phase, rollback, stored, current } => format!(
                "{id}: the {}{phase} section changed after {phase} was applied (stored {}, now {}); review the edit, then `pygrate rehash {id}`",
                if *rollback { "rollback_" } else { "" },
                short(stored.as_deref()),
                short(current.as_deref())
            ),
            Problem::MissingFile { id } => {
                format!("{id}: the database has state for it but its file is gone; restore releases/{}/{}.sql", id.release, id.version)
            }
            Problem::OutOfOrder { id, phase, later } => format!(
                "{id}: {phase} is pending but the later version {later} already has {phase} applied; rename it to sort last, or run it with --allow-out-of-order"
            ),
            Problem::Unsettled { id, phase, status, rolling_back, statements_done, error, lock_holder } => {
                let what = format!(
                    "{id}: {}{phase} is {status} with {statements_done} statement(s) done{}",
                    if *rolling_back { "rollback of " } else { "" },
                    error.as_deref().map(|e| format!(" ({})", crate::text::shorten(e, 80))).unwrap_or_default()
                );
                match lock_holder {
                    Some(holder) => format!(
                        "{what}, and the migration lock is held now by {holder}: most likely that pygrate is running it; \
                         wait for it to finish (`pygrate resolve` is for a run that was interrupted)"
                    ),
                    None => {
                        let again = if *rolling_back { Action::Rollback(*phase) } else { Action::Apply(*phase) };
                        format!(
                            "{what}; run `pygrate {again} {id}` again to resume it, or look at the database, then \
                             `pygrate resolve {id} {phase} --as applied|pending`"
                        )
                    }
                }
            }
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "code": self.code(),
            "id": self.id().to_string(),
            "release": self.id().release,
            "version": self.id().version,
            "phase": self.phase().map(Phase::name),
            "message": self.message(),
        });
        match (self, v.as_object_mut()) {
            (Problem::Drift { stored, current, .. }, Some(map)) => {
                map.insert("stored_checksum".into(), json!(stored));
                map.insert("current_checksum".into(), json!(current));
            }
            (Problem::Unsettled { lock_holder: Some(holder), .. }, Some(map)) => {
                map.insert("lock_holder".into(), json!(holder));
            }
            _ => {}
        }
        v
    }
}

fn short(checksum: Option<&str>) -> &str {
    checksum.map_or("none", |c| c.get(..12).unwrap_or(c))
}

/// A cell of the status table, in words.
fn cell_word(entry: &Entry<'_>, phase: Phase, problems: &[&Problem]) -> (String, &'static str) {
    let flagged = |code: &str| problems.iter().any(|p| p.phase() == Some(phase) && p.code() == code);
    let has_section = entry.migration.is_some_and(|m| m.section(phase.section()).is_some());
    let state = entry.state(phase);
    let status = match entry.cell(phase) {
        Cell::Applied if flagged("drift") || flagged("rollback_drift") => "drifted",
        Cell::Applied => "applied",
        Cell::Running => "running",
        Cell::Failed => "failed",
        Cell::Pending if flagged("out_of_order") => "out_of_order",
        Cell::Pending if state.is_some() => "rolled_back",
        Cell::Pending if entry.migration.is_some() && !has_section => "no_section",
        Cell::Pending => "pending",
    };
    let text = match (status, state) {
        ("applied", Some(s)) => s.at.get(..16).unwrap_or(&s.at).replace('T', " "),
        ("drifted", _) => "DRIFTED".to_string(),
        // An interrupted rollback is not an interrupted apply: say which (fits the 16-wide column).
        ("running" | "failed", Some(s)) if s.rolling_back => format!("ROLLBACK {}", status.to_uppercase()),
        ("running", _) => "RUNNING".to_string(),
        ("failed", _) => "FAILED".to_string(),
        (other, _) => other.replace('_', " "),
    };
    (text, status)
}

pub fn status_text(lanes: &Lanes<'_>, problems: &[Problem], target: Option<&Target>) -> String {
    let entries: Vec<&Entry<'_>> = lanes.entries.iter().filter(|e| target.is_none_or(|t| t.contains(&e.id))).collect();
    if entries.is_empty() {
        return "no versions: create one with `pygrate new RELEASE NAME`\n".to_string();
    }
    // Never cut: two long names cut to the same prefix would look like one version.
    let width = entries.iter().map(|e| e.id.to_string().chars().count()).max().unwrap_or(7).max(7);
    let mut out = format!("{:<width$}  {:<16}  {:<16}  DROP\n", "VERSION", "ADD", "SIMDROP");
    for entry in &entries {
        let mine: Vec<&Problem> = problems.iter().filter(|p| *p.id() == entry.id).collect();
        let id = entry.id.to_string();
        let cells = Phase::ALL.map(|p| cell_word(entry, p, &mine).0);
        let marker = if entry.is_missing_file() {
            "  (file missing)"
        } else if entry.is_removed_after_rollback() {
            "  (file removed after rollback)"
        } else {
            ""
        };
        let line = format!("{id:<width$}  {:<16}  {:<16}  {:<16}{marker}", cells[0], cells[1], cells[2]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("(applied times are UTC)\n");
    let shown: Vec<&Problem> = problems.iter().filter(|p| target.is_none_or(|t| t.contains(p.id()))).collect();
    if !shown.is_empty() {
        out.push_str(&format!("\n{} problem(s):\n", shown.len()));
        for p in shown {
            out.push_str(&format!("  {}: {}\n", p.code(), p.message()));
        }
    }
    out
}

pub fn status_json(lanes: &Lanes<'_>, problems: &[Problem], target: Option<&Target>) -> Value {
    let versions: Vec<Value> = lanes
        .entries
        .iter()
        .filter(|e| target.is_none_or(|t| t.contains(&e.id)))
        .map(|entry| {
            let mine: Vec<&Problem> = problems.iter().filter(|p| *p.id() == entry.id).collect();
            let phases: Vec<Value> = Phase::ALL
                .iter()
                .map(|&phase| {
                    let state = entry.state(phase);
                    let (_, status) = cell_word(entry, phase, &mine);
                    json!({
                        "phase": phase.name(),
                        "status": status,
                        "state": state.map(|s| s.status.as_str()),
                        "rolling_back": state.map(|s| s.rolling_back),
                        "has_section": entry.migration.map(|m| m.section(phase.section()).is_some()),
                        "applied_at": state.map(|s| s.at.clone()),
                        "applied_by": state.map(|s| s.by.clone()),
                        "duration_ms": state.map(|s| s.duration_ms),
                        "checksum": state.and_then(|s| s.checksum.clone()),
                        "error": state.and_then(|s| s.error.clone()),
                        "statements_done": state.map(|s| s.statements_done),
                    })
                })
                .collect();
            json!({
                "id": entry.id.to_string(),
                "release": entry.id.release,
                "version": entry.id.version,
                "file": entry.migration.map(|m| m.path.display().to_string()),
                "phases": phases,
            })
        })
        .collect();
    let problems: Vec<Value> =
        problems.iter().filter(|p| target.is_none_or(|t| t.contains(p.id()))).map(Problem::to_json).collect();
    json!({ "versions": versions, "problems": problems })
}

/// `password`: the connection's, masked in the SQL shown.
pub fn plan_text(steps: &[Prepared<'_>], notes: &[String], password: Option<&str>) -> String {
    let mut out = String::new();
    if steps.is_empty() {
        out.push_str("nothing to do\n");
    }
    for (n, p) in steps.iter().enumerate() {
        let m = p.step.migration;
        // A missing section has no line: naming line 1 would point at another.
        let at = match p.step.action.section().and_then(|k| m.section(k)) {
            Some(s) => format!("{}:{}", m.path.display(), s.marker_line),
            None => m.path.display().to_string(),
        };
        let mut flags = Vec::new();
        if p.no_transaction {
            flags.push("no-transaction".to_string());
        }
        if let Some(r) = &p.step.resume {
            flags.push(format!("resumes after statement {}", r.statements_done));
        }
        if p.statements.is_empty() {
            flags.push("no SQL: recorded only".to_string());
        }
        let flags = if flags.is_empty() { String::new() } else { format!(" [{}]", flags.join(", ")) };
        out.push_str(&format!("{}. {} {}  ({at}){flags}\n", n + 1, p.step.action, m.id));
        let skip = p.step.resume.as_ref().map_or(0, |r| r.statements_done);
        for s in p.statements.iter().skip(skip) {
            for (i, l) in mask_password(s.sql, password).lines().enumerate() {
                let prefix = if i == 0 { format!("{:>6} | ", s.line) } else { "       | ".to_string() };
                out.push_str(&format!("{prefix}{l}\n"));
            }
        }
    }
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// `warnings`: what the command line prints on stderr (drift), so that a
/// reader of the JSON alone misses nothing. `password`: as for `plan_text`.
pub fn plan_json(steps: &[Prepared<'_>], notes: &[String], warnings: &[String], password: Option<&str>) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|p| {
            let m = p.step.migration;
            json!({
                "id": m.id.to_string(),
                "release": m.id.release,
                "version": m.id.version,
                "action": p.step.action.command(),
                "phase": p.step.action.phase().name(),
                "file": m.path.display().to_string(),
                "line": p.step.action.section().and_then(|k| m.section(k)).map(|s| s.marker_line),
                "no_transaction": p.no_transaction,
                "resume_after": p.step.resume.as_ref().map(|r| r.statements_done),
                "statements": p.statements.iter().map(|s| json!({"line": s.line, "sql": mask_password(s.sql, password)})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "steps": steps, "notes": notes, "warnings": warnings })
}
