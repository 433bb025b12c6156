//! Issue 4: drift, `check`, `check --offline`, `sum`, `rehash`, on every engine.

use crate::support::{Engine, Sandbox, TestDb};

const V1: &str = "releases/r1/v001-journal.sql";

fn codes(json: &serde_json::Value) -> Vec<String> {
    json["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap().to_string()).collect()
}

fn drift_is_phase_aware_and_ignores_normalised_whitespace(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["ff", "--through", "add"]).ok();
    p.run(db, &["check"]).ok().stdout_has("check: ok");
    let original = p.read(V1);
    // Not drift: CRLF, trailing blanks, a BOM, and edits to phases not applied.
    p.write(V1, &format!("\u{feff}{}", original.replace('\n', "  \r\n")));
    p.run(db, &["check"]).ok();
    p.write(V1, &original.replace("VALUES ('r1/v001-journal', 'drop')", "VALUES ('r1/v001-journal', 'DROP')"));
    p.run(db, &["check"]).ok();
    // Drift: a comment edit inside the applied section.
    p.write(V1, &original.replace("-- @add\n", "-- @add\n-- reviewed by Bob\n"));
    let run = p.run(db, &["check"]);
    run.code(1)
        .stdout_has("drift: r1/v001-journal: the add section changed")
        .stdout_has("stored  ")
        .stdout_has("pygrate rehash r1/v001-journal");
    let json = p.run(db, &["check", "--format", "json"]);
    json.code(1);
    let json = json.json();
    assert_eq!(json["ok"], false);
    assert_eq!(codes(&json), ["drift"]);
    let problem = &json["problems"][0];
    assert_eq!(problem["id"], "r1/v001-journal");
    assert_eq!(problem["phase"], "add");
    assert_eq!(problem["stored_checksum"].as_str().unwrap().len(), 64);
    assert_ne!(problem["stored_checksum"], problem["current_checksum"]);
    // Work goes on, but not silently.
    p.run(db, &["-n", "ff"]).ok().stderr_has("warning: r1/v001-journal: the add section changed");
    // A reader of the JSON plan alone sees it too.
    let plan = p.run(db, &["plan", "--format", "json"]).json();
    assert!(plan["warnings"][0].as_str().unwrap().contains("r1/v001-journal: the add section changed"), "{plan}");
    // status shows it per phase.
    let status = p.run(db, &["status", "--format", "json"]).json();
    assert_eq!(status["versions"][0]["phases"][0]["status"], "drifted");
    p.run(db, &["status"]).ok().stdout_has("DRIFTED");
    // Drift in the rollback section of an applied phase.
    p.write(V1, &original.replace("DROP TABLE applied_log;", "DROP TABLE IF EXISTS applied_log;"));
    let json = p.run(db, &["check", "--format", "json"]).json();
    assert_eq!(codes(&json), ["rollback_drift"]);
    // rehash accepts it, logged with old and new checksums.
    p.run(db, &["-n", "rehash", "r1/v001"]).ok().stdout_has("would rehash r1/v001-journal rollback_add");
    p.run(db, &["check"]).code(1);
    p.run(db, &["rehash", "r1/v001"]).ok();
    p.run(db, &["check"]).ok();
    let log = db.query_strings("SELECT old_checksum, checksum FROM pygrate_log WHERE operation = 'rehash'");
    assert_eq!(log.len(), 1);
    assert!(log[0][0].is_some() && log[0][1].is_some() && log[0][0] != log[0][1]);
    p.run(db, &["rehash", "r1"]).ok().stdout_has("nothing to rehash");
}

fn check_reports_every_kind_of_problem(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["sum"]).ok();
    p.run(db, &["ff", "--through", "add"]).ok();
    p.run(db, &["check"]).ok();
    // Out of order, a missing file, a failed phase and a stale sum, at once.
    p.write("releases/r1/v001b-late.sql", "-- @add\nSELECT 1;\n");
    let orders = p.read("releases/r2/v001-orders.sql");
    p.remove("releases/r2/v001-orders.sql");
    p.write("releases/r3/v001-bad.sql", "-- @add no-transaction\nINSERT INTO nope (id) VALUES (1);\n");
    p.run(db, &["add", "r3/v001-bad", "--allow-out-of-order"]).code(2);
    let json = p.run(db, &["check", "--format", "json"]).json();
    let mut found = codes(&json);
    found.sort();
    // The deleted file had five sections, the two new ones one each.
    let mut expected = vec!["missing_file", "out_of_order"];
    expected.extend(["sum_removed"; 5]);
    expected.extend(["sum_unrecorded"; 2]);
    assert_eq!(found, expected);
    let run = p.run(db, &["check"]);
    run.code(1).stdout_has("check: 9 problem(s)").stderr_has("check found 9 problem(s)");
    if db.engine != Engine::Sqlite {
        return;
    }
    // A failed phase is a problem too.
    p.write("releases/r2/v001-orders.sql", &orders);
    p.remove("releases/r1/v001b-late.sql");
    p.run(db, &["sum"]).ok();
    p.run(db, &["add", "r2"]).ok();
    p.run(db, &["add", "r3/v001-bad"]).code(1);
    let json = p.run(db, &["check", "--format", "json"]).json();
    assert_eq!(codes(&json), ["failed"]);
}

/// State tables of a newer schema may mean something this pygrate does not
/// know: every command that reads them refuses, the read-only ones too.
fn a_newer_state_schema_is_refused_by_every_command(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["ff"]).ok();
    db.execute("UPDATE pygrate_meta SET meta_value = '99' WHERE meta_key = 'schema_version'");
    for command in [&["status"][..], &["check"], &["ff"], &["plan"], &["-n", "baseline", "r1"]] {
        p.run(db, command).code(1).stderr_has("schema version 99, newer than this pygrate understands");
    }
}

crate::on_every_engine!(
    drift_is_phase_aware_and_ignores_normalised_whitespace,
    check_reports_every_kind_of_problem,
    a_newer_state_schema_is_refused_by_every_command,
);

#[test]
fn check_offline_needs_no_database() {
    let p = Sandbox::fixture("portable");
    // A config pointing at a closed port, with a variable that is not set:
    // --offline reads neither.
    p.write("conf.d/prod.yaml", "connection: \"postgres://app:${PYGRATE_UNSET_PW}@127.0.0.1:1/app\"\n");
    p.run_with(None, &["check", "--offline"]).code(1).stdout_has("sum_missing");
    p.run_with(None, &["sum"]).ok().stdout_has("releases/pygrate.sum");
    p.run_with(None, &["check", "--offline"]).ok().stdout_has("check: ok (3 versions)");
    // Each kind of difference names the version and section.
    let v2 = p.read("releases/r1/v002-people.sql");
    p.write("releases/r1/v002-people.sql", &v2.replace("'Ada; Lovelace'", "'Ada Lovelace'"));
    p.write("releases/r2/v002-new.sql", "-- @add\nSELECT 1;\n");
    let json = p.run_with(None, &["check", "--offline", "--format", "json"]);
    json.code(1);
    let json = json.json();
    let found: Vec<(String, String)> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_string(),
                // The documented keys are there for sum problems too.
                format!(
                    "{}/{} {}",
                    p["release"].as_str().unwrap(),
                    p["version"].as_str().unwrap(),
                    p["section"].as_str().unwrap()
                ),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("sum_changed".to_string(), "r1/v002-people add".to_string()),
            ("sum_unrecorded".to_string(), "r2/v002-new add".to_string())
        ]
    );
    // A sum file edited by hand.
    p.run_with(None, &["sum"]).ok();
    let sum = p.read("releases/pygrate.sum");
    p.write("releases/pygrate.sum", &sum.replacen("r1/v001-journal add", "r1/v001-journal simdrop", 1));
    p.run_with(None, &["check", "--offline"]).code(1).stdout_has("sum_corrupt");
    let corrupt = p.run_with(None, &["check", "--offline", "--format", "json"]).json();
    let problem = &corrupt["problems"][0];
    assert_eq!(problem["code"], "sum_corrupt");
    assert!(["id", "release", "version", "section"].iter().all(|k| problem[k].is_null()), "{problem}");
    assert!(problem.as_object().is_some_and(|o| o.contains_key("release")), "{problem}");
}

#[test]
fn dry_run_sum_shows_what_would_change_and_writes_nothing() {
    let p = Sandbox::fixture("portable");
    p.run_with(None, &["sum"]).ok();
    p.run_with(None, &["-n", "sum"]).ok().stdout_has("releases/pygrate.sum is up to date: nothing to write");
    let recorded = p.read("releases/pygrate.sum");
    let v2 = p.read("releases/r1/v002-people.sql");
    p.write("releases/r1/v002-people.sql", &v2.replace("'Ada; Lovelace'", "'Ada Lovelace'"));
    p.write("releases/r2/v002-new.sql", "-- @add\nSELECT 1;\n");
    p.remove("releases/r2/v001-orders.sql");
    let run = p.run_with(None, &["-n", "sum"]);
    run.ok()
        .stdout_has("would write ")
        .stdout_has("  r1/v002-people add: changed")
        .stdout_has("  r2/v002-new add: added")
        .stdout_has("  r2/v001-orders drop: removed");
    assert_eq!(p.read("releases/pygrate.sum"), recorded, "-n writes nothing");
}

#[test]
fn sum_is_deterministic_and_ignores_line_endings() {
    let p = Sandbox::fixture("portable");
    p.run_with(None, &["sum"]).ok();
    let first = std::fs::read(p.path().join("releases/pygrate.sum")).unwrap();
    p.run_with(None, &["sum"]).ok();
    assert_eq!(std::fs::read(p.path().join("releases/pygrate.sum")).unwrap(), first);
    for file in ["releases/r1/v001-journal.sql", "releases/r1/v002-people.sql", "releases/r2/v001-orders.sql"] {
        p.write(file, &p.read(file).replace('\n', "\r\n"));
    }
    p.run_with(None, &["check", "--offline"]).ok();
    p.run_with(None, &["sum"]).ok();
    assert_eq!(std::fs::read(p.path().join("releases/pygrate.sum")).unwrap(), first);
    let text = String::from_utf8(first).unwrap();
    assert_eq!(text.lines().count(), 15 + 1, "one line per section, then the total");
    assert!(text.lines().last().unwrap().starts_with("total "));
    assert!(!text.contains('\r'));
}
