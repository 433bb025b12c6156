//! SPEC 5 and 6 through the real binary, on every engine: each lane rule
//! allowed and refused, the release guard, failures, dry runs.

use crate::support::{Engine, Run, Sandbox, TestDb};

/// (version, phase, status) of every state row, sorted.
pub fn state(db: &TestDb) -> Vec<String> {
    if !db.table_exists("pygrate_state") {
        return Vec::new();
    }
    let mut rows: Vec<String> = db
        .query_strings("SELECT release_name, version_name, phase, status FROM pygrate_state")
        .into_iter()
        .map(|r| r.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>())
        .map(|r| format!("{}/{} {} {}", r[0], r[1], r[2], r[3]))
        .collect();
    rows.sort();
    rows
}

/// The fixture's own record of which sections took effect, sorted.
pub fn journal(db: &TestDb) -> Vec<String> {
    if !db.table_exists("applied_log") {
        return Vec::new();
    }
    let mut rows: Vec<String> = db
        .query_strings("SELECT version, phase FROM applied_log")
        .into_iter()
        .map(|r| format!("{} {}", r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default()))
        .collect();
    rows.sort();
    rows
}

/// Applied state rows as journal lines, to compare with `journal`.
pub fn applied(db: &TestDb) -> Vec<String> {
    state(db).into_iter().filter_map(|r| r.strip_suffix(" applied").map(str::to_string)).collect()
}

fn ff_applies_every_phase_once_and_is_idempotent(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["ff"]).ok().stdout_has("add              r1/v001-journal");
    let all = [
        "r1/v001-journal add",
        "r1/v001-journal drop",
        "r1/v001-journal simdrop",
        "r1/v002-people add",
        "r1/v002-people drop",
        "r1/v002-people simdrop",
        "r2/v001-orders add",
        "r2/v001-orders drop",
        "r2/v001-orders simdrop",
    ];
    assert_eq!(applied(db), all);
    assert_eq!(journal(db).len(), 9, "{:?}", journal(db));
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM people"), 2);
    let log_rows = db.query_i64("SELECT COUNT(*) FROM pygrate_log");
    assert_eq!(log_rows, 9);
    p.run(db, &["ff"]).ok().stdout_has("nothing to do");
    assert_eq!(journal(db).len(), 9);
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM pygrate_log"), log_rows, "a no-op logs nothing");
}

fn ff_through_and_to_stop_where_asked(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["ff", "--through", "add", "--to", "r1/v002"]).ok();
    assert_eq!(applied(db), ["r1/v001-journal add", "r1/v002-people add"]);
    p.run(db, &["ff", "--through", "simdrop"]).ok();
    assert_eq!(applied(db).len(), 6);
    assert!(applied(db).iter().all(|r| !r.ends_with(" drop")));
}

fn phase_commands_follow_the_lanes(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    // add V: every earlier add must be applied.
    p.run(db, &["add", "r1/v002"])
        .code(2)
        .stderr_has("waits for add of the earlier version r1/v001-journal")
        .stderr_has("pygrate add r1/v001-journal");
    assert_eq!(state(db), Vec::<String>::new(), "a refusal runs nothing");
    p.run(db, &["add", "v001-journal"]).ok();
    // simdrop V: its add must be applied.
    p.run(db, &["simdrop", "r1/v002"]).code(2).stderr_has("simdrop r1/v002-people waits for its add");
    p.run(db, &["add"]).ok();
    assert_eq!(applied(db).len(), 3);
    // simdrop V: every earlier simdrop must be applied.
    p.run(db, &["simdrop", "r2/v001"]).code(2).stderr_has("waits for simdrop of the earlier version r1/v001-journal");
    p.run(db, &["simdrop", "r1"]).ok();
    // drop V: its simdrop must be applied, and every earlier drop.
    p.run(db, &["drop", "r2/v001"]).code(2).stderr_has("drop r2/v001-orders waits for its simdrop");
    p.run(db, &["drop", "r1/v002"]).code(2).stderr_has("waits for drop of the earlier version r1/v001-journal");
    // Without a target: wherever allowed; the lane stops quietly where it waits.
    p.run(db, &["drop"]).ok().stdout_has("note: drop r2/v001-orders waits for its simdrop");
    p.run(db, &["simdrop"]).ok();
    p.run(db, &["drop"]).ok();
    assert_eq!(applied(db).len(), 9);
    assert_eq!(journal(db), applied(db));
}

fn rollbacks_follow_the_lanes_and_the_release_guard(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["ff", "--through", "simdrop"]).ok();
    // rollback_add V: refused while its simdrop is applied.
    p.run(db, &["rollback_add", "r2"])
        .code(2)
        .stderr_has("its simdrop is applied")
        .stderr_has("pygrate rollback_simdrop r2/v001-orders");
    // The release guard: r2 has state, so r1 is out of reach.
    p.run(db, &["rollback_simdrop", "r1/v002"]).code(2).stderr_has("release r2 has state");
    p.run(db, &["rollback_simdrop", "r2"]).ok();
    p.run(db, &["rollback_add", "r2/v001-orders"]).ok();
    assert!(!db.table_exists("orders"));
    // The log names the text that ran: the rollback section's, not add's.
    let of_orders_add = "version_name = 'v001-orders' AND phase = 'add'";
    let logged =
        db.query_strings(&format!("SELECT checksum FROM pygrate_log WHERE operation = 'rollback' AND {of_orders_add}"));
    let state_sums =
        db.query_strings(&format!("SELECT rollback_checksum, checksum FROM pygrate_state WHERE {of_orders_add}"));
    assert_eq!(logged[0][0], state_sums[0][0], "rollback row");
    assert_ne!(logged[0][0], state_sums[0][1]);
    // Now r1 is the newest release with state. rollback_simdrop V: refused
    // while a later version's simdrop is applied.
    p.run(db, &["rollback_simdrop", "r1/v001"])
        .code(2)
        .stderr_has("simdrop of the later version r1/v002-people is applied");
    let run = p.run(db, &["rollback_simdrop", "r1"]);
    run.ok();
    let newest_first = run.stdout.find("r1/v002-people").unwrap() < run.stdout.find("r1/v001-journal").unwrap();
    assert!(newest_first, "{}", run.stdout);
    assert_eq!(db.query_strings("SELECT full_name FROM people WHERE id = 1")[0][0].as_deref(), Some("Ada; Lovelace"));
    // rollback_add V: refused while a later add is applied.
    p.run(db, &["rollback_add", "r1/v001"]).code(2).stderr_has("add of the later version r1/v002-people is applied");
    p.run(db, &["rollback_add", "r1"]).ok();
    assert!(!db.table_exists("people") && !db.table_exists("applied_log"));
    assert!(state(db).iter().all(|r| r.ends_with("rolled_back") || r.contains(" drop ")), "{:?}", state(db));
    // Everything comes back.
    p.run(db, &["ff"]).ok();
    assert_eq!(journal(db), applied(db));
    // drop is final.
    p.run(db, &["rollback_simdrop", "r2"]).code(2).stderr_has("drop is final");
}

fn a_failing_statement_names_its_line_and_leaves_truthful_state(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.write(
        "releases/r2/v002-broken.sql",
        "-- @add\nCREATE TABLE half (id INTEGER);\nINSERT INTO half (id) VALUES (1);\n\nINSERT INTO no_such_table (id) VALUES (1);\nINSERT INTO half (id) VALUES (2);\n-- @rollback_add\nDROP TABLE half;\n",
    );
    let run = p.run(db, &["ff"]);
    run.code(1).stderr_has("releases/r2/v002-broken.sql:5: add r2/v002-broken failed").stderr_has("no_such_table");
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // Everything before the failure stays applied.
    assert_eq!(applied(db).len(), 9);
    let broken: Vec<String> = state(db).into_iter().filter(|r| r.contains("broken")).collect();
    if db.engine == Engine::Mysql {
        // DDL commits on its own: the phase is marked failed after 2 statements.
        assert_eq!(broken, ["r2/v002-broken add failed"]);
        assert!(db.table_exists("half"));
        assert_eq!(db.query_i64("SELECT statements_done FROM pygrate_state WHERE version_name = 'v002-broken'"), 2);
        // Running it again resumes at the failed statement, and fails again.
        p.run(db, &["ff"]).code(1).stderr_has("2 of 4 statement(s) completed");
        assert_eq!(db.query_i64("SELECT COUNT(*) FROM half"), 1, "statements before the failure ran once");
        // Other work on the version waits for it to be settled.
        p.run(db, &["simdrop", "r2/v002-broken"]).code(2).stderr_has("pygrate resolve r2/v002-broken add");
        // Fix the failing statement; the same phase resumes at it.
        p.write("releases/r2/v002-broken.sql", &p.read("releases/r2/v002-broken.sql").replace("no_such_table", "half"));
        p.run(db, &["add", "r2/v002-broken"]).ok();
        assert_eq!(db.query_i64("SELECT COUNT(*) FROM half"), 3, "statements 1-2 ran once, 3-4 on resume");
    } else {
        assert!(broken.is_empty(), "{broken:?}");
        assert!(!db.table_exists("half"), "nothing of the failed section stays");
        p.write("releases/r2/v002-broken.sql", &p.read("releases/r2/v002-broken.sql").replace("no_such_table", "half"));
        p.run(db, &["ff"]).ok();
        assert_eq!(db.query_i64("SELECT COUNT(*) FROM half"), 3);
    }
    let failures = db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE outcome = 'failed'");
    let expected = if db.engine == Engine::Mysql { 2 } else { 1 };
    assert_eq!(failures, expected, "every failure is logged");
}

fn editing_a_half_run_section_blocks_the_resume(db: &TestDb) {
    if db.engine != Engine::Mysql {
        return; // only non-transactional sections can be half-run; see no_transaction tests
    }
    let p = Sandbox::fixture("portable");
    p.write(
        "releases/r2/v002-broken.sql",
        "-- @add\nCREATE TABLE half (id INTEGER);\nINSERT INTO nope (id) VALUES (1);\n",
    );
    p.run(db, &["ff"]).code(1);
    p.write(
        "releases/r2/v002-broken.sql",
        "-- @add\nCREATE TABLE half2 (id INTEGER);\nINSERT INTO half2 (id) VALUES (1);\n",
    );
    // The refusal says where the statements that ran are now.
    p.run(db, &["ff"])
        .code(2)
        .stderr_has("edited since (")
        .stderr_has("releases/r2/v002-broken.sql:2-2 now)")
        .stderr_has("pygrate resolve r2/v002-broken add");
    p.run(db, &["resolve", "r2/v002-broken", "add", "--as", "pending"]).ok();
    p.run(db, &["ff"]).ok();
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM half2"), 1);
}

fn dry_run_and_plan_change_nothing(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    let before = tree_bytes(p.path());
    p.run(db, &["-n", "ff"]).ok().stdout_has("1. add r1/v001-journal").stdout_has("CREATE TABLE applied_log");
    p.run(db, &["plan", "--format", "json"]).ok();
    p.run(db, &["-n", "add", "r1/v001-journal"]).ok();
    p.run(db, &["-n", "baseline", "r1"]).ok();
    assert_eq!(tree_bytes(p.path()), before, "files unchanged");
    assert!(!db.table_exists("pygrate_state"), "no state tables created");
    assert!(!db.table_exists("applied_log"));
    p.run(db, &["ff", "--through", "add"]).ok();
    let state_before = state(db);
    p.run(db, &["-n", "rollback_add", "r2"]).ok().stdout_has("rollback_add r2/v001-orders");
    p.run(db, &["-n", "ff"]).ok();
    assert_eq!(state(db), state_before);
    assert!(db.table_exists("orders"));
    let plan = p.run(db, &["plan", "--format", "json"]).json();
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    assert_eq!(steps[0]["action"], "simdrop");
    assert_eq!(steps[0]["id"], "r1/v001-journal");
    assert_eq!(steps[2]["statements"][0]["sql"], "ALTER TABLE people RENAME COLUMN full_name TO old_full_name");
}

/// Every file under `dir` with its bytes, sorted by path.
pub fn tree_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn out_of_order_and_missing_files_are_caught(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["ff", "--through", "add"]).ok();
    p.write(
        "releases/r1/v001b-late.sql",
        "-- @add\nINSERT INTO applied_log (version, phase) VALUES ('r1/v001b', 'add');\n",
    );
    p.run(db, &["add"]).code(2).stderr_has("r1/v001b-late is out of order").stderr_has("--allow-out-of-order");
    let status = p.run(db, &["status", "--format", "json"]).json();
    let codes: Vec<&str> = status["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["out_of_order"]);
    p.run(db, &["add", "--allow-out-of-order"]).ok();
    assert!(journal(db).contains(&"r1/v001b add".to_string()));
    // A file whose version has state disappears: forward work after it stops.
    p.remove("releases/r1/v002-people.sql");
    p.run(db, &["ff"]).code(2).stderr_has("r1/v002-people has state but its file is gone");
    p.run(db, &["status"]).ok().stdout_has("(file missing)").stdout_has("missing_file");
}

fn baseline_and_resolve_settle_state_without_running_sql(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    p.run(db, &["baseline", "r1/v002"]).ok();
    assert_eq!(applied(db).len(), 6);
    assert!(journal(db).is_empty(), "baseline runs no SQL");
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE operation = 'baseline'"), 6);
    p.run(db, &["resolve", "r1/v002", "add", "--as", "applied"]).code(2).stderr_has("nothing to resolve");
    // A failed phase, then resolved both ways.
    p.write("releases/r2/v001-orders.sql", "-- @add no-transaction\nSELECT 1;\nINSERT INTO nope VALUES (1);\n");
    p.run(db, &["add"]).code(1);
    assert!(state(db).contains(&"r2/v001-orders add failed".to_string()));
    p.run(db, &["simdrop", "r2/v001"]).code(2).stderr_has("pygrate resolve r2/v001-orders add --as applied|pending");
    // SPEC 5: nothing touches the version until it is settled, rehash included.
    p.run(db, &["rehash", "r2/v001"]).code(2).stderr_has("add of r2/v001-orders is failed; settle it first");
    let ran_with = db.query_strings("SELECT checksum FROM pygrate_state WHERE version_name = 'v001-orders'");
    // Fixed by hand, and in the file: the phase now stands for the new text,
    // and the log says which text it was accepted over.
    p.write("releases/r2/v001-orders.sql", "-- @add no-transaction\nSELECT 1;\nSELECT 2;\n");
    p.run(db, &["resolve", "r2/v001", "add", "--as", "applied"]).ok().stdout_has("failed → applied");
    assert!(state(db).contains(&"r2/v001-orders add applied".to_string()));
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM pygrate_log WHERE operation = 'resolve'"), 1);
    let now = db.query_strings("SELECT checksum FROM pygrate_state WHERE version_name = 'v001-orders'");
    assert_ne!(now, ran_with);
    let logged = db.query_strings("SELECT checksum, old_checksum FROM pygrate_log WHERE operation = 'resolve'");
    assert_eq!(logged, vec![vec![now[0][0].clone(), ran_with[0][0].clone()]]);
}

/// State rows travel inlined in the same message as the SQL on PostgreSQL and
/// MySQL: text that means something in SQL literals arrives unchanged.
fn state_rows_keep_awkward_text_exactly(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    let user = r#"o'brien\" $v$ ? ;--"#;
    let run = Run::from(p.command(Some(&db.url), &["ff"]).env("USER", user).output().unwrap());
    run.ok();
    for sql in ["SELECT DISTINCT applied_by FROM pygrate_state", "SELECT DISTINCT run_by FROM pygrate_log"] {
        let by: Vec<Vec<Option<String>>> = db.query_strings(sql);
        assert_eq!(by.len(), 1, "{sql}: {by:?}");
        let by = by[0][0].clone().unwrap_or_default();
        assert!(by.starts_with(&format!("{user}@")), "{sql}: {by:?}");
    }
}

/// SPEC 4: the state row and the log row say how long the phase took, also
/// when the section and its rows travel or commit together.
fn state_and_log_record_how_long_a_section_took(db: &TestDb) {
    let (slow, at_least) = match db.engine {
        Engine::Postgres => ("SELECT pg_sleep(0.3)", 300),
        Engine::Mysql => ("SELECT SLEEP(0.3)", 300),
        // No sleep in SQLite's SQL: three million rows of work.
        Engine::Sqlite => (
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3000000) SELECT COUNT(*) FROM c",
            1,
        ),
    };
    let p = Sandbox::empty();
    p.write("releases/r1/v001-slow.sql", &format!("-- @add\nCREATE TABLE quick (id INTEGER);\n{slow};\n"));
    p.run(db, &["ff", "--through", "add"]).ok();
    let state = db.query_i64("SELECT duration_ms FROM pygrate_state WHERE phase = 'add'");
    let log = db.query_i64("SELECT duration_ms FROM pygrate_log WHERE phase = 'add'");
    assert!(state >= at_least && log >= at_least, "state {state} ms, log {log} ms");
}

/// `-- @add` creating `table`, with its rollback.
fn creates(table: &str) -> String {
    format!("-- @add\nCREATE TABLE {table} (id INTEGER);\n-- @rollback_add\nDROP TABLE {table};\n")
}

/// A version rolled back and then deleted is as if it never existed, for
/// the planner, `check` and `status` alike.
fn a_file_deleted_after_its_rollback_blocks_nothing(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("releases/r1/v1.sql", &creates("t1"));
    p.write("releases/r1/v2.sql", &creates("t2"));
    p.run(db, &["ff", "--through", "add"]).ok();
    p.run(db, &["rollback_add", "r1/v2"]).ok();
    p.remove("releases/r1/v2.sql");
    p.write("releases/r1/v3.sql", &creates("t3"));
    p.run(db, &["check"]).ok();
    let status = p.run(db, &["status"]);
    status.ok().stdout_has("(file removed after rollback)");
    assert!(!status.stdout.contains("file missing") && !status.stdout.contains("problem"), "{}", status.stdout);
    p.run(db, &["add", "r1/v3"]).ok();
    assert!(db.table_exists("t3"));
    p.run(db, &["ff"]).ok();
    p.run(db, &["add", "r1/v2"]).code(2).stderr_has("no version `r1/v2`");
    // baseline passes it by as well (it refused: "add of r1/v2 was rolled
    // back … run it again instead: pygrate add r1/v2", which cannot run).
    p.write("releases/r1/v4.sql", &creates("t4"));
    p.run(db, &["baseline", "r1/v4"]).ok().stdout_has("baseline add r1/v4");
    p.run(db, &["rehash", "r1"]).ok().stdout_has("nothing to rehash");
    assert!(!db.table_exists("t4") && !db.table_exists("t2"));
}

/// The release guard refuses only releases older than the newest with
/// state; a newer one simply has nothing to roll back.
fn rolling_back_a_release_newer_than_the_newest_with_state_is_a_no_op(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("releases/r1/v1-a.sql", &creates("a"));
    p.write("releases/r2/v1-b.sql", &creates("b"));
    p.write("releases/r3/v1-c.sql", &creates("c"));
    p.run(db, &["ff", "--through", "add", "--to", "r2"]).ok();
    p.run(db, &["rollback_add", "r2"]).ok();
    for target in ["r3", "r2/v1-b", "r2"] {
        p.run(db, &["rollback_add", target]).ok().stdout_has("nothing to roll back");
    }
    assert!(db.table_exists("a"));
    p.run(db, &["ff", "--through", "add"]).ok();
    p.run(db, &["rollback_add", "r1"]).code(2).stderr_has("release r3 has state and is newer than r1");
}

/// An `@add` of comments only did nothing, so undoing it is trivially
/// empty: the rollback is recorded, and earlier versions can follow.
fn a_comments_only_add_rolls_back_without_a_rollback_section(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("releases/r1/v1-a.sql", &creates("a"));
    p.write("releases/r1/v3-c.sql", "-- @add\n-- just a comment\n");
    p.run(db, &["lint"]).ok().stdout_has("0 warning");
    p.run(db, &["ff", "--through", "add"]).ok();
    p.run(db, &["rollback_add", "r1"]).ok();
    assert_eq!(state(db), ["r1/v1-a add rolled_back", "r1/v3-c add rolled_back"]);
    assert!(!db.table_exists("a"));
    // With a statement and no rollback section, it is still refused.
    p.write("releases/r1/v3-c.sql", "-- @add\nCREATE TABLE c (id INTEGER);\n");
    p.run(db, &["ff", "--through", "add"]).ok();
    p.run(db, &["rollback_add", "r1/v3-c"]).code(2).stderr_has("irreversible");
}

/// A failed phase blocks only work on its own version: a phase command
/// without TARGET runs up to it and stops there quietly, saying why.
fn a_bare_phase_command_stops_quietly_at_a_failed_version(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("releases/r1/v1.sql", &creates("t1"));
    p.write("releases/r1/v2.sql", "-- @add no-transaction\nINSERT INTO nope (id) VALUES (1);\n");
    p.run(db, &["add"]).code(1);
    p.run(db, &["simdrop"])
        .ok()
        .stdout_has("simdrop          r1/v1  ok")
        .stdout_has("note: simdrop r1/v2 waits: add of r1/v2 is failed")
        .stdout_has("pygrate resolve r1/v2 add --as applied|pending");
    assert!(state(db).contains(&"r1/v1 simdrop applied".to_string()), "{:?}", state(db));
    p.run(db, &["simdrop"]).ok().stdout_has("nothing to do").stdout_has("note: simdrop r1/v2 waits");
    p.run(db, &["simdrop", "r1/v2"]).code(2).stderr_has("pygrate resolve r1/v2 add");
}

/// SPEC 5: a refusal names the command that unblocks it; where none can,
/// it says so instead of naming one that is refused in turn.
fn refusals_name_a_command_that_works_or_say_none_does(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("releases/r1/v1-a.sql", &creates("a"));
    p.write("releases/r1/v3-c.sql", &creates("c"));
    p.write("releases/r1/v4-d.sql", &creates("d"));
    p.run(db, &["ff", "--through", "add", "--to", "r1/v3-c"]).ok();
    p.write("releases/r1/v2-b.sql", &creates("b"));
    let refusal = p.run(db, &["add", "r1/v4-d"]);
    refusal.code(2).stderr_has("r1/v2-b, which is out of order");
    let hint = "pygrate add r1/v2-b --allow-out-of-order";
    assert!(refusal.stderr.contains(hint), "{}", refusal.stderr);
    p.run(db, &["add", "r1/v2-b", "--allow-out-of-order"]).ok();
    p.run(db, &["add", "r1/v4-d"]).ok();
    // After a full ff, nothing can undo an add whose simdrop's drop ran.
    p.write("releases/r2/v1-d.sql", &format!("{}-- @simdrop\n-- @rollback_simdrop\n-- @drop\n", creates("e")));
    p.run(db, &["ff"]).ok();
    let refusal = p.run(db, &["rollback_add", "r2/v1-d"]);
    refusal.code(2).stderr_has("its simdrop is applied and can no longer be undone").stderr_has("drop is final");
    assert!(!refusal.stderr.contains("pygrate rollback_simdrop"), "{}", refusal.stderr);
    p.run(db, &["rollback_simdrop", "r2/v1-d"]).code(2).stderr_has("drop is final");
}

/// A phase with SQL and no rollback section can never be undone: a refusal
/// that needs it undone first says so, and names no command.
fn a_refusal_behind_an_irreversible_phase_names_no_command(db: &TestDb) {
    let p = Sandbox::empty();
    let renames = |t: &str| format!("-- @simdrop\nALTER TABLE {t} RENAME TO {t}_old;\n");
    p.write("releases/r1/v001-a.sql", &creates("a"));
    let undo = "-- @rollback_simdrop\nALTER TABLE c_old RENAME TO c;\n";
    p.write("releases/r2/v001-c.sql", &format!("{}{}{undo}", creates("c"), renames("c")));
    p.write("releases/r2/v002-irr.sql", &format!("{}{}", creates("irr"), renames("irr")));
    p.run(db, &["ff", "--through", "simdrop"]).ok();
    let irreversible = "r2/v002-irr has no `-- @rollback_simdrop` section, so its applied simdrop is irreversible";
    for (command, target) in [("rollback_simdrop", "r2/v001-c"), ("rollback_add", "r1/v001-a")] {
        let refusal = p.run(db, &[command, target]);
        refusal.code(2).stderr_has(irreversible);
        assert!(!refusal.stderr.contains("pygrate rollback"), "{}", refusal.stderr);
    }
    p.run(db, &["rollback_simdrop", "r2/v002-irr"]).code(2).stderr_has("irreversible");
    assert!(db.table_exists("c_old") && db.table_exists("irr_old"), "a refusal runs nothing");
}

/// A resumed phase's progress line counts what ran now, not the whole section.
fn a_resumed_phase_reports_the_statements_it_ran(db: &TestDb) {
    let p = Sandbox::empty();
    let section = |table: &str| {
        format!(
            "-- @add no-transaction\nCREATE TABLE r (id INTEGER);\nINSERT INTO r (id) VALUES (1);\n\
             INSERT INTO {table} (id) VALUES (2);\nINSERT INTO r (id) VALUES (3);\n-- @rollback_add\nDROP TABLE r;\n"
        )
    };
    p.write("releases/r1/v1.sql", &section("nope"));
    p.run(db, &["add"]).code(1).stderr_has("2 of 4 statement(s) completed");
    p.write("releases/r1/v1.sql", &section("r"));
    let resumed = p.run(db, &["add"]);
    resumed.ok().stdout_has("r1/v1  ok (2 of 4 statements, resumed after 2, ");
    p.run(db, &["rollback_add", "r1/v1"]).ok().stdout_has("r1/v1  ok (1 statement, ");
    assert_eq!(state(db), ["r1/v1 add rolled_back"]);
}

crate::on_every_engine!(
    a_resumed_phase_reports_the_statements_it_ran,
    a_refusal_behind_an_irreversible_phase_names_no_command,
    refusals_name_a_command_that_works_or_say_none_does,
    a_bare_phase_command_stops_quietly_at_a_failed_version,
    a_comments_only_add_rolls_back_without_a_rollback_section,
    rolling_back_a_release_newer_than_the_newest_with_state_is_a_no_op,
    a_file_deleted_after_its_rollback_blocks_nothing,
    state_and_log_record_how_long_a_section_took,
    state_rows_keep_awkward_text_exactly,
    ff_applies_every_phase_once_and_is_idempotent,
    ff_through_and_to_stop_where_asked,
    phase_commands_follow_the_lanes,
    rollbacks_follow_the_lanes_and_the_release_guard,
    a_failing_statement_names_its_line_and_leaves_truthful_state,
    editing_a_half_run_section_blocks_the_resume,
    dry_run_and_plan_change_nothing,
    out_of_order_and_missing_files_are_caught,
    baseline_and_resolve_settle_state_without_running_sql,
);
