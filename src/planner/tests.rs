use std::path::Path;

use super::*;
use crate::parser::parse;

const FULL: &str = "-- @add\nA;\n-- @rollback_add\nRA;\n-- @simdrop\nS;\n-- @rollback_simdrop\nRS;\n-- @drop\nD;\n";

fn mig(id: &str, text: &str) -> Migration {
    let (r, v) = id.split_once('/').unwrap();
    parse(VersionId::new(r, v), Path::new(&format!("releases/{id}.sql")), text.as_bytes()).unwrap()
}

fn row(id: &str, phase: Phase, status: Status, m: Option<&Migration>) -> PhaseState {
    let (r, v) = id.split_once('/').unwrap();
    let (checksum, rollback_checksum) = match m {
        Some(m) => {
            let (c, r) = current_checksums(m, phase);
            (Some(c), r)
        }
        None => (Some(empty_checksum()), None),
    };
    PhaseState {
        id: VersionId::new(r, v),
        phase,
        status,
        checksum,
        rollback_checksum,
        rolling_back: false,
        statements_done: 0,
        done_checksum: None,
        at: "2026-01-01T00:00:00.000Z".into(),
        by: "dba@host".into(),
        duration_ms: 1,
        error: None,
    }
}

/// Three versions over two releases; `applied` lists (index, phase) applied.
fn world(applied: &[(usize, Phase)]) -> (Vec<Migration>, State) {
    let ms = vec![mig("r1/v1", FULL), mig("r1/v2", FULL), mig("r2/v1", FULL)];
    let rows = applied
        .iter()
        .map(|(i, p)| row(&ms[*i].id.to_string(), *p, Status::Applied, Some(&ms[*i])))
        .collect::<Vec<_>>();
    (ms, State::from_rows(rows))
}

fn steps(plan: &Plan<'_>) -> Vec<String> {
    plan.steps.iter().map(|s| format!("{} {}", s.action, s.id())).collect()
}

fn target(lanes: &Lanes<'_>, t: &str) -> Target {
    Target::resolve(t, lanes.ids()).unwrap()
}

fn forward<'a>(lanes: &Lanes<'a>, phases: &[Phase], scope: Scope<'_>) -> Result<Plan<'a>, String> {
    lanes.plan_forward(&Forward { phases, scope, allow_out_of_order: false })
}

use crate::dialect::Dialect::{Mysql, Sqlite};
use Phase::{Add, Drop, Simdrop};

#[test]
fn ff_runs_each_version_through_every_phase_in_order() {
    let (ms, st) = world(&[(0, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let plan = forward(&lanes, &Phase::ALL, Scope::Through(None)).unwrap();
    assert_eq!(
        steps(&plan),
        [
            "simdrop r1/v1",
            "drop r1/v1",
            "add r1/v2",
            "simdrop r1/v2",
            "drop r1/v2",
            "add r2/v1",
            "simdrop r2/v1",
            "drop r2/v1"
        ]
    );
    let plan = forward(&lanes, &[Add], Scope::Through(None)).unwrap();
    assert_eq!(steps(&plan), ["add r1/v2", "add r2/v1"]);
    let to = target(&lanes, "r1/v2");
    let plan = forward(&lanes, &[Add, Simdrop], Scope::Through(Some(&to))).unwrap();
    assert_eq!(steps(&plan), ["simdrop r1/v1", "add r1/v2", "simdrop r1/v2"]);
}

#[test]
fn add_needs_every_earlier_add() {
    let (ms, st) = world(&[]);
    let lanes = Lanes::new(&ms, &st);
    let t = target(&lanes, "r1/v2");
    let refusal = forward(&lanes, &[Add], Scope::Only(&t)).unwrap_err();
    assert!(
        refusal.contains("add r1/v2 waits for add of the earlier version r1/v1")
            && refusal.contains("pygrate add r1/v1"),
        "{refusal}"
    );
    let t = target(&lanes, "r1/v1");
    assert_eq!(steps(&forward(&lanes, &[Add], Scope::Only(&t)).unwrap()), ["add r1/v1"]);
    // A release target runs its versions in order.
    let t = target(&lanes, "r1");
    assert_eq!(steps(&forward(&lanes, &[Add], Scope::Only(&t)).unwrap()), ["add r1/v1", "add r1/v2"]);
}

#[test]
fn simdrop_needs_its_add_and_every_earlier_simdrop() {
    let (ms, st) = world(&[(0, Add), (1, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let t = target(&lanes, "r1/v2");
    let refusal = forward(&lanes, &[Simdrop], Scope::Only(&t)).unwrap_err();
    assert!(refusal.contains("waits for simdrop of the earlier version r1/v1"), "{refusal}");
    let t = target(&lanes, "r2/v1");
    let refusal = forward(&lanes, &[Simdrop], Scope::Only(&t)).unwrap_err();
    assert!(refusal.contains("simdrop r2/v1 waits for its add") && refusal.contains("pygrate add r2/v1"), "{refusal}");
    // Without a target: every allowed one, stopping quietly where the lane waits.
    let plan = forward(&lanes, &[Simdrop], Scope::Allowed).unwrap();
    assert_eq!(steps(&plan), ["simdrop r1/v1", "simdrop r1/v2"]);
    assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
}

#[test]
fn drop_needs_its_simdrop_and_every_earlier_drop() {
    let (ms, st) = world(&[(0, Add), (1, Add), (0, Simdrop), (1, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let t = target(&lanes, "r1/v2");
    assert!(forward(&lanes, &[Drop], Scope::Only(&t))
        .unwrap_err()
        .contains("waits for drop of the earlier version r1/v1"));
    let t = target(&lanes, "r1/v1");
    assert_eq!(steps(&forward(&lanes, &[Drop], Scope::Only(&t)).unwrap()), ["drop r1/v1"]);
    let (ms, st) = world(&[(0, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let t = target(&lanes, "r1/v1");
    assert!(forward(&lanes, &[Drop], Scope::Only(&t)).unwrap_err().contains("drop r1/v1 waits for its simdrop"));
}

#[test]
fn rollback_add_rules() {
    // Allowed: add applied, simdrop not, no later add.
    let (ms, st) = world(&[(0, Add), (1, Add)]);
    let lanes = Lanes::new(&ms, &st);
    assert_eq!(steps(&lanes.plan_rollback(Add, &target(&lanes, "r1/v2"), Sqlite).unwrap()), ["rollback_add r1/v2"]);
    // A release: newest first.
    assert_eq!(
        steps(&lanes.plan_rollback(Add, &target(&lanes, "r1"), Sqlite).unwrap()),
        ["rollback_add r1/v2", "rollback_add r1/v1"]
    );
    // Refused: a later add is applied.
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("later version r1/v2 is applied") && e.contains("pygrate rollback_add r1/v2"), "{e}");
    // Refused: its simdrop is applied.
    let (ms, st) = world(&[(0, Add), (0, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("its simdrop is applied") && e.contains("pygrate rollback_simdrop r1/v1"), "{e}");
    // Not applied: nothing to do.
    let (ms, st) = world(&[(0, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let plan = lanes.plan_rollback(Add, &target(&lanes, "r1/v2"), Sqlite).unwrap();
    assert!(plan.steps.is_empty() && !plan.notes.is_empty());
}

#[test]
fn rollback_simdrop_rules() {
    let (ms, st) = world(&[(0, Add), (1, Add), (0, Simdrop), (1, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    assert_eq!(
        steps(&lanes.plan_rollback(Simdrop, &target(&lanes, "r1/v2"), Sqlite).unwrap()),
        ["rollback_simdrop r1/v2"]
    );
    let e = lanes.plan_rollback(Simdrop, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("simdrop of the later version r1/v2 is applied"), "{e}");
    let (ms, st) = world(&[(0, Add), (0, Simdrop), (0, Drop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Simdrop, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("drop is final"), "{e}");
}

#[test]
fn rollback_never_reaches_past_the_newest_release_with_state() {
    let (ms, st) = world(&[(0, Add), (1, Add), (2, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1"), Sqlite).unwrap_err();
    assert!(e.contains("release r2 has state") && e.contains("pygrate rollback_add r2"), "{e}");
    assert_eq!(steps(&lanes.plan_rollback(Add, &target(&lanes, "r2"), Sqlite).unwrap()), ["rollback_add r2/v1"]);
}

#[test]
fn a_phase_without_rollback_section_is_irreversible() {
    let ms = vec![mig("r1/v1", "-- @add\nCREATE TABLE t (a int);\n")];
    let st = State::from_rows([row("r1/v1", Add, Status::Applied, Some(&ms[0]))]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("irreversible"), "{e}");
    // An add with no SQL rolls back as a no-op: absent, or comments only
    // (in the dialect's own comment syntax), like an empty section.
    for text in ["-- @drop\nDROP TABLE t;\n", "-- @add\n-- just a comment\n/* and another */\n", "-- @add\n"] {
        let ms = vec![mig("r1/v1", FULL), mig("r1/v2", text)];
        let st = State::from_rows([
            row("r1/v1", Add, Status::Applied, Some(&ms[0])),
            row("r1/v2", Add, Status::Applied, Some(&ms[1])),
        ]);
        let lanes = Lanes::new(&ms, &st);
        let plan = lanes.plan_rollback(Add, &target(&lanes, "r1"), Sqlite).unwrap();
        assert_eq!(steps(&plan), ["rollback_add r1/v2", "rollback_add r1/v1"], "{text}");
    }
    let ms = vec![mig("r1/v1", "-- @add\n# a MySQL comment\n")];
    let st = State::from_rows([row("r1/v1", Add, Status::Applied, Some(&ms[0]))]);
    let lanes = Lanes::new(&ms, &st);
    assert_eq!(steps(&lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Mysql).unwrap()), ["rollback_add r1/v1"]);
    assert!(lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err().contains("irreversible"));
}

#[test]
fn running_or_failed_blocks_the_version_until_resolved_but_the_same_phase_resumes() {
    let (ms, _) = world(&[]);
    let mut failed = row("r1/v1", Simdrop, Status::Failed, Some(&ms[0]));
    failed.statements_done = 2;
    failed.done_checksum = Some("abc".into());
    let st = State::from_rows([row("r1/v1", Add, Status::Applied, Some(&ms[0])), failed]);
    let lanes = Lanes::new(&ms, &st);
    // ff resumes the failed simdrop, then goes on.
    let plan = forward(&lanes, &Phase::ALL, Scope::Through(None)).unwrap();
    assert_eq!(steps(&plan)[..2], ["simdrop r1/v1", "drop r1/v1"]);
    assert_eq!(
        plan.steps[0].resume,
        Some(Resume { statements_done: 2, done_checksum: Some("abc".into()), interrupted: false })
    );
    // A rollback touching that version is refused, naming resolve.
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("pygrate resolve r1/v1 simdrop --as applied|pending"), "{e}");
    // An unsettled rollback blocks forward work on the version.
    let mut rolling = row("r1/v1", Add, Status::Running, Some(&ms[0]));
    rolling.rolling_back = true;
    let st = State::from_rows([rolling]);
    let lanes = Lanes::new(&ms, &st);
    let e = forward(&lanes, &Phase::ALL, Scope::Through(None)).unwrap_err();
    assert!(e.contains("rollback_add of r1/v1 is running"), "{e}");
    let plan = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap();
    assert_eq!(steps(&plan), ["rollback_add r1/v1"]);
    assert!(plan.steps[0].resume.is_some());
}

#[test]
fn missing_file_blocks_forward_work_after_it() {
    let ms = vec![mig("r1/v1", FULL), mig("r1/v3", FULL)];
    let st =
        State::from_rows([row("r1/v1", Add, Status::Applied, Some(&ms[0])), row("r1/v2", Add, Status::Applied, None)]);
    let lanes = Lanes::new(&ms, &st);
    let e = forward(&lanes, &[Add], Scope::Through(None)).unwrap_err();
    assert!(e.contains("r1/v2 has state but its file is gone"), "{e}");
    // Work before it is fine.
    let t = target(&lanes, "r1/v1");
    assert_eq!(steps(&forward(&lanes, &[Simdrop], Scope::Only(&t)).unwrap()), ["simdrop r1/v1"]);
    assert!(lanes.problems().contains(&Problem::MissingFile { id: VersionId::new("r1", "v2") }));
}

#[test]
fn out_of_order_versions_need_the_flag() {
    let (ms, st) = world(&[(0, Add), (2, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let e = forward(&lanes, &[Add], Scope::Through(None)).unwrap_err();
    assert!(e.contains("r1/v2 is out of order") && e.contains("--allow-out-of-order"), "{e}");
    let plan =
        lanes.plan_forward(&Forward { phases: &[Add], scope: Scope::Through(None), allow_out_of_order: true }).unwrap();
    assert_eq!(steps(&plan), ["add r1/v2"]);
    assert!(lanes
        .problems()
        .iter()
        .any(|p| matches!(p, Problem::OutOfOrder { id, phase: Add, .. } if id.version == "v2")));
}

#[test]
fn drift_is_an_edit_to_an_applied_phase_or_its_rollback_only() {
    let original = mig("r1/v1", FULL);
    let st = State::from_rows([row("r1/v1", Add, Status::Applied, Some(&original))]);
    let check = |text: &str| -> Vec<String> {
        let ms = vec![mig("r1/v1", text)];
        Lanes::new(&ms, &st).problems().iter().map(|p| p.code().to_string()).collect()
    };
    assert!(check(FULL).is_empty());
    // Whitespace the normalisation removes, and edits to phases not applied.
    assert!(check(&FULL.replace('\n', "\r\n")).is_empty());
    assert!(check(&FULL.replace("\nA;\n", "\nA;   \n\n\n")).is_empty());
    assert!(check(&FULL.replace("\nD;", "\nDROP TABLE x;")).is_empty());
    assert!(check(&FULL.replace("\nS;", "\nS2;")).is_empty());
    // Edits to the applied section, its comments, or its rollback section.
    assert_eq!(check(&FULL.replace("\nA;", "\nA2;")), ["drift"]);
    assert_eq!(check(&FULL.replace("\nA;", "\nA; -- note")), ["drift"]);
    assert_eq!(check(&FULL.replace("\nRA;", "\nRA2;")), ["rollback_drift"]);
}

#[test]
fn a_version_removed_after_its_rollback_blocks_nothing() {
    // r1/v2 was applied, rolled back, then its file deleted; r1/v3 is new.
    let ms = vec![mig("r1/v1", FULL), mig("r1/v3", FULL)];
    let st = State::from_rows([
        row("r1/v1", Add, Status::Applied, Some(&ms[0])),
        row("r1/v2", Add, Status::RolledBack, None),
    ]);
    let lanes = Lanes::new(&ms, &st);
    let removed = lanes.entry(&VersionId::new("r1", "v2")).unwrap();
    assert!(removed.is_removed_after_rollback() && !removed.is_missing_file());
    assert_eq!(steps(&forward(&lanes, &[Add], Scope::Through(None)).unwrap()), ["add r1/v3"]);
    let t = target(&lanes, "r1/v3");
    assert_eq!(steps(&forward(&lanes, &[Add], Scope::Only(&t)).unwrap()), ["add r1/v3"]);
    let plan = forward(&lanes, &[Add, Simdrop], Scope::Allowed).unwrap();
    assert_eq!(steps(&plan), ["simdrop r1/v1", "add r1/v3", "simdrop r1/v3"]);
    // check agrees: nothing to report; and no TARGET names it any more.
    assert_eq!(lanes.problems(), []);
    assert!(Target::resolve("r1/v2", lanes.ids()).is_err());
    // Applied state without a file still blocks.
    let st =
        State::from_rows([row("r1/v1", Add, Status::Applied, Some(&ms[0])), row("r1/v2", Add, Status::Applied, None)]);
    let lanes = Lanes::new(&ms, &st);
    assert!(forward(&lanes, &[Add], Scope::Through(None))
        .unwrap_err()
        .contains("r1/v2 has state but its file is gone"));
}

#[test]
fn the_release_guard_only_refuses_releases_older_than_the_newest_with_state() {
    // r1 applied, r2 rolled back, r3 never applied.
    let ms = vec![mig("r1/v1", FULL), mig("r2/v1", FULL), mig("r3/v1", FULL)];
    let st = State::from_rows([
        row("r1/v1", Add, Status::Applied, Some(&ms[0])),
        row("r2/v1", Add, Status::RolledBack, Some(&ms[1])),
    ]);
    let lanes = Lanes::new(&ms, &st);
    for t in ["r3", "r2/v1", "r2"] {
        let plan = lanes.plan_rollback(Add, &target(&lanes, t), Sqlite).unwrap();
        assert!(plan.steps.is_empty() && plan.notes.iter().all(|n| n.contains("nothing to roll back")), "{t}");
    }
    // Release names compare in natural order: r10 is newer than r9.
    let ms = vec![mig("r9/v1", FULL), mig("r10/v1", FULL)];
    let st = State::from_rows([row("r10/v1", Add, Status::Applied, Some(&ms[1]))]);
    let lanes = Lanes::new(&ms, &st);
    assert!(lanes.plan_rollback(Add, &target(&lanes, "r9"), Sqlite).unwrap_err().contains("release r10 has state"));
}

#[test]
fn a_phase_command_without_target_stops_quietly_at_an_unsettled_version() {
    let (ms, _) = world(&[]);
    let st = State::from_rows([
        row("r1/v1", Add, Status::Applied, Some(&ms[0])),
        row("r1/v2", Add, Status::Failed, Some(&ms[1])),
    ]);
    let lanes = Lanes::new(&ms, &st);
    let plan = forward(&lanes, &[Simdrop], Scope::Allowed).unwrap();
    assert_eq!(steps(&plan), ["simdrop r1/v1"]);
    assert!(
        plan.notes.len() == 1
            && plan.notes[0].contains("simdrop r1/v2 waits: add of r1/v2 is failed")
            && plan.notes[0].contains("pygrate resolve r1/v2 add --as applied|pending"),
        "{:?}",
        plan.notes
    );
    // Naming the version still refuses; the failed phase itself resumes.
    let t = target(&lanes, "r1/v2");
    assert!(forward(&lanes, &[Simdrop], Scope::Only(&t)).unwrap_err().contains("pygrate resolve r1/v2 add"));
    assert_eq!(steps(&forward(&lanes, &[Add], Scope::Allowed).unwrap()), ["add r1/v2", "add r2/v1"]);
}

#[test]
fn a_rollback_blocked_by_a_final_drop_says_so_instead_of_naming_a_refused_command() {
    // Everything applied: undoing the add needs the simdrop undone, which the drop makes impossible.
    let all: Vec<(usize, Phase)> = (0..3).flat_map(|i| Phase::ALL.map(|p| (i, p))).collect();
    let (ms, st) = world(&all);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r2/v1"), Sqlite).unwrap_err();
    assert!(
        e.contains(
            "its simdrop is applied and can no longer be undone (the drop of r2/v1 is applied, and drop is final)"
        ) && !e.contains("pygrate rollback_simdrop"),
        "{e}"
    );
    let e = lanes.plan_rollback(Simdrop, &target(&lanes, "r2/v1"), Sqlite).unwrap_err();
    assert!(e.contains("its drop is applied, and drop is final"), "{e}");
    // The release guard: r2 can never lose its state, so r1 is out of reach for good.
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1"), Sqlite).unwrap_err();
    assert!(e.contains("the drop of r2/v1 is applied, and drop is final") && !e.contains("pygrate rollback"), "{e}");
    // A later version whose simdrop is final blocks the earlier add for good.
    let (ms, st) = world(&[(0, Add), (1, Add), (1, Simdrop), (1, Drop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(
        e.contains("add of the later version r1/v2 is applied and can no longer be undone (the drop of r1/v2")
            && !e.contains("pygrate rollback"),
        "{e}"
    );
    // Where the command that makes room works, it is named.
    let (ms, st) = world(&[(0, Add), (1, Add), (1, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("roll it back first: pygrate rollback_add r1/v2"), "{e}");
    let (ms, st) = world(&[(0, Add), (2, Add), (2, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Simdrop, &target(&lanes, "r1"), Sqlite).unwrap_err();
    assert!(e.contains("pygrate rollback_simdrop r2, then pygrate rollback_add r2"), "{e}");
    // Clearing the newer release would not help when the target's own drop
    // is applied: the refusal says so rather than send the user to roll r2 back.
    let (ms, st) = world(&[(0, Add), (0, Simdrop), (0, Drop), (2, Add), (2, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    for t in ["r1", "r1/v1"] {
        let e = lanes.plan_rollback(Simdrop, &target(&lanes, t), Sqlite).unwrap_err();
        assert!(
            e.contains("rollback_simdrop r1/v1: its drop is applied, and drop is final")
                && !e.contains("pygrate rollback"),
            "{t}: {e}"
        );
    }
}

#[test]
fn a_lane_waiting_on_an_out_of_order_version_names_the_flag_that_runs_it() {
    let ms = vec![mig("r1/v1", FULL), mig("r1/v2-b", FULL), mig("r1/v3-c", FULL), mig("r1/v4-d", FULL)];
    let st = State::from_rows([
        row("r1/v1", Add, Status::Applied, Some(&ms[0])),
        row("r1/v3-c", Add, Status::Applied, Some(&ms[2])),
    ]);
    let lanes = Lanes::new(&ms, &st);
    let t = target(&lanes, "r1/v4-d");
    let e = forward(&lanes, &[Add], Scope::Only(&t)).unwrap_err();
    assert!(
        e.contains("waits for add of the earlier version r1/v2-b, which is out of order")
            && e.contains("`pygrate add r1/v2-b --allow-out-of-order`"),
        "{e}"
    );
    // The same for a phase waiting on its own out-of-order add.
    let t = target(&lanes, "r1/v2-b");
    let e = forward(&lanes, &[Simdrop], Scope::Only(&t)).unwrap_err();
    assert!(e.contains("`pygrate add r1/v2-b --allow-out-of-order`"), "{e}");
    // And the hinted command does run.
    let plan = lanes.plan_forward(&Forward { phases: &[Add], scope: Scope::Only(&t), allow_out_of_order: true });
    assert_eq!(steps(&plan.unwrap()), ["add r1/v2-b"]);
}

#[test]
fn a_rollback_blocked_by_an_irreversible_phase_says_so_instead_of_naming_a_refused_command() {
    // No rollback section for the SQL that ran: nothing can undo that phase.
    let no_rollback_simdrop = "-- @add\nA;\n-- @rollback_add\nRA;\n-- @simdrop\nS;\n";
    let no_rollback_add = "-- @add\nA;\n-- @simdrop\nS;\n-- @rollback_simdrop\nRS;\n";
    let applied = |ms: &[Migration], cells: &[(usize, Phase)]| {
        State::from_rows(cells.iter().map(|(i, p)| row(&ms[*i].id.to_string(), *p, Status::Applied, Some(&ms[*i]))))
    };
    let refused = |lanes: &Lanes<'_>, phase: Phase, t: &str| {
        let e = lanes.plan_rollback(phase, &target(lanes, t), Sqlite).unwrap_err();
        assert!(!e.contains("pygrate rollback"), "{e}");
        e
    };
    // A later version's simdrop.
    let ms = vec![mig("r1/v1", FULL), mig("r1/v2", no_rollback_simdrop)];
    let st = applied(&ms, &[(0, Add), (0, Simdrop), (1, Add), (1, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = refused(&lanes, Simdrop, "r1/v1");
    assert!(
        e.contains(
            "simdrop of the later version r1/v2 is applied and can no longer be undone (r1/v2 has no \
             `-- @rollback_simdrop` section, so its applied simdrop is irreversible), so neither can this one"
        ),
        "{e}"
    );
    // Its own simdrop, in the way of its add.
    let e = refused(&lanes, Add, "r1/v2");
    assert!(e.contains("its simdrop is applied and can no longer be undone (r1/v2 has no"), "{e}");
    // The release guard: r2 can never lose its state.
    let ms = vec![mig("r1/v1", FULL), mig("r2/v1", FULL), mig("r2/v2", no_rollback_simdrop)];
    let st = applied(&ms, &[(0, Add), (1, Add), (2, Add), (2, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = refused(&lanes, Add, "r1/v1");
    assert!(
        e.contains("r2/v2 has no `-- @rollback_simdrop` section") && e.contains("can no longer reach past r2"),
        "{e}"
    );
    // Behind a later version that could be rolled back: the one after it cannot.
    let ms = vec![mig("r1/v1", FULL), mig("r1/v2", FULL), mig("r1/v3", no_rollback_add)];
    let st = applied(&ms, &[(0, Add), (1, Add), (2, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let e = refused(&lanes, Add, "r1/v1");
    assert!(e.contains("add of the later version r1/v2 is applied and can no longer be undone (r1/v3 has no"), "{e}");
    // Behind its own simdrop, which could be rolled back: a later add cannot.
    let st = applied(&ms, &[(0, Add), (0, Simdrop), (1, Add), (2, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let e = refused(&lanes, Add, "r1/v1");
    assert!(e.contains("later version r1/v2 is applied and can no longer be undone (r1/v3 has no"), "{e}");
    // Its own add is irreversible: that, not the simdrop in the way, is what to fix.
    let ms = vec![mig("r1/v1", no_rollback_add)];
    let st = applied(&ms, &[(0, Add), (0, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = refused(&lanes, Add, "r1/v1");
    assert!(e.contains("so its add is irreversible"), "{e}");
}

#[test]
fn a_rollback_waits_for_a_later_version_left_unsettled_in_its_phase() {
    let ms = vec![mig("r1/v1", FULL), mig("r1/v2", FULL), mig("r2/v1", FULL)];
    let failed = row("r1/v2", Add, Status::Failed, Some(&ms[1]));
    let st = State::from_rows(vec![row("r1/v1", Add, Status::Applied, Some(&ms[0])), failed.clone()]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("add of r1/v2 is failed") && e.contains("pygrate resolve r1/v2 add"), "{e}");
    // A half-done rollback of the later one: the release's rollback resumes
    // it first; the earlier version alone waits for it.
    let resumed = PhaseState { rolling_back: true, ..failed };
    let st = State::from_rows(vec![row("r1/v1", Add, Status::Applied, Some(&ms[0])), resumed]);
    let lanes = Lanes::new(&ms, &st);
    let plan = lanes.plan_rollback(Add, &target(&lanes, "r1"), Sqlite).unwrap();
    assert_eq!(steps(&plan), ["rollback_add r1/v2", "rollback_add r1/v1"]);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1/v1"), Sqlite).unwrap_err();
    assert!(e.contains("rollback_add of r1/v2 is failed"), "{e}");
}

#[test]
fn a_release_rollback_that_can_never_complete_names_no_rollback_to_run_first() {
    // r1/v1 is dropped for good; r1/v2's simdrop could be undone, but that
    // would roll back production for nothing.
    let (ms, st) = world(&[(0, Add), (0, Simdrop), (0, Drop), (1, Add), (1, Simdrop)]);
    let lanes = Lanes::new(&ms, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1"), Sqlite).unwrap_err();
    assert!(
        e.contains("rollback_add r1/v1: its simdrop is applied and can no longer be undone")
            && !e.contains("pygrate rollback"),
        "{e}"
    );
}

/// Every command a refusal names runs: where the phase it points at waits
/// too, the refusal follows the chain to the first that can.
#[test]
fn a_refusal_follows_what_it_waits_for_to_a_command_that_runs() {
    let (ms, st) = world(&[(0, Add)]);
    let lanes = Lanes::new(&ms, &st);
    let t = target(&lanes, "r2/v1");
    let refusal = forward(&lanes, &[Simdrop], Scope::Only(&t)).unwrap_err();
    assert!(
        refusal.contains("simdrop r2/v1 waits for its add; add r2/v1 waits for add of the earlier version r1/v2")
            && refusal.ends_with("run `pygrate add r1/v2` first"),
        "{refusal}"
    );
    // An earlier version whose rollback failed: settle it, not run it.
    let mut failed = row("r1/v1", Simdrop, Status::Failed, Some(&ms[0]));
    failed.rolling_back = true;
    let st = State::from_rows(vec![
        row("r1/v1", Add, Status::Applied, Some(&ms[0])),
        row("r1/v2", Add, Status::Applied, Some(&ms[1])),
        failed,
    ]);
    let lanes = Lanes::new(&ms, &st);
    let t = target(&lanes, "r1/v2");
    let refusal = forward(&lanes, &[Simdrop], Scope::Only(&t)).unwrap_err();
    assert!(
        refusal.contains("pygrate resolve r1/v1 simdrop") && !refusal.contains("run `pygrate simdrop r1/v1`"),
        "{refusal}"
    );
}

#[test]
fn the_release_guard_names_no_rollback_of_a_release_whose_files_are_gone() {
    let (ms, st) = world(&[(0, Add), (1, Add), (2, Add)]);
    let present: Vec<Migration> = ms[..2].to_vec();
    let lanes = Lanes::new(&present, &st);
    let e = lanes.plan_rollback(Add, &target(&lanes, "r1"), Sqlite).unwrap_err();
    assert!(e.contains("r2/v1 has state but its file is gone") && !e.contains("pygrate rollback"), "{e}");
}
