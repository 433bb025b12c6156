//! Issue 5 through the binary: `lint` exit codes and JSON, and the gate that
//! stops `ff`/`add`/`simdrop`/`drop` before unsafe SQL runs.

use crate::support::Sandbox;

fn sqlite(p: &Sandbox) -> String {
    format!("sqlite:///{}", p.path().join("db.sqlite").display())
}

#[test]
fn the_sample_project_lints_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pygrate")).args(["-p", root, "lint"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("lint (sqlite): 0 error(s), 0 warning(s)"), "{stdout}");
    // Its committed `pygrate.sum` is current, as the README's CI job checks.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pygrate"))
        .args(["-p", root, "check", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn lint_exit_codes_json_and_dialects() {
    let p = Sandbox::empty();
    p.write("releases/r1/v001-t.sql", "-- @add\nCREATE TABLE t (id INTEGER);\n-- @rollback_add\nDROP TABLE t;\n");
    p.run_with(None, &["lint"]).ok();
    p.write(
        "releases/r1/v002-bad.sql",
        "-- @add\nALTER TABLE t DROP COLUMN legacy;\nCREATE INDEX t_id ON t (id);\n-- @rollback_add\nSELECT 1;\n",
    );
    // No connection anywhere: PostgreSQL rules.
    let run = p.run_with(None, &["lint", "--format", "json"]);
    run.code(1);
    let json = run.json();
    assert_eq!(json["dialect"], "postgres");
    let found: Vec<(String, u64)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["line"].as_u64().unwrap()))
        .collect();
    assert!(found.contains(&("drop-in-add".to_string(), 2)), "{found:?}");
    assert!(found.contains(&("index-not-concurrent".to_string(), 3)), "{found:?}");
    assert!(json["findings"][0]["file"].as_str().unwrap().ends_with("releases/r1/v002-bad.sql"));
    // The connection's dialect decides, even when its password variable is unset.
    p.write("conf.d/prod.yaml", "connection: \"sqlite:///${PYGRATE_UNSET_FOR_LINT}.db\"\n");
    let text = p.run_with(None, &["lint"]);
    text.code(1).stdout_has("v002-bad.sql:2: error[drop-in-add]").stdout_has("lint (sqlite): 1 error(s)");
    assert!(!text.stdout.contains("index-not-concurrent"), "{}", text.stdout);
    p.run_with(None, &["lint", "--dialect", "mysql", "r1/v001"]).ok();
    p.run_with(None, &["lint", "--dialect", "oracle"]).code(2);
}

/// SPEC 8 refuses to run a *file* with an error-level finding: running a
/// file's clean `add` is refused while its `simdrop` is unsafe. Findings in
/// a section that already ran (forced with --allow-unsafe) do not block
/// the file's later phases.
#[test]
fn a_file_with_an_unsafe_section_is_refused_whole() {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-t.sql",
        "-- @add\nCREATE TABLE t (id INTEGER);\n-- @simdrop\nALTER TABLE t ADD COLUMN tier INTEGER NOT NULL;\n",
    );
    let url = sqlite(&p);
    p.run_with(Some(&url), &["ff", "--through", "add"])
        .code(2)
        .stderr_has("v001-t.sql:4: error[not-null-without-default]");
    assert!(!p.path().join("db.sqlite").exists(), "nothing ran");
    p.write("releases/r1/v001-t.sql", "-- @add\nCREATE TABLE t (id INTEGER);\nDELETE FROM t;\n");
    p.run_with(Some(&url), &["ff", "--through", "add", "--allow-unsafe"]).ok();
    p.run_with(Some(&url), &["ff"]).ok();
}

#[test]
fn unsafe_sql_is_refused_before_anything_runs() {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-t.sql",
        "-- @add\nCREATE TABLE t (id INTEGER, legacy TEXT);\n-- @rollback_add\nDROP TABLE t;\n",
    );
    p.write(
        "releases/r1/v002-bad.sql",
        "-- @add\nALTER TABLE t DROP COLUMN legacy;\n-- @rollback_add\nALTER TABLE t ADD COLUMN legacy TEXT;\n",
    );
    let url = sqlite(&p);
    for command in [&["ff"][..], &["add"], &["-n", "ff"]] {
        p.run_with(Some(&url), command).code(2).stderr_has("v002-bad.sql:2: error[drop-in-add]").stderr_has(
            "refused: lint found 1 error(s) in the files that would run; fix them, silence a reviewed one with \
                 `-- pygrate:allow RULE`, or pass --allow-unsafe",
        );
    }
    assert!(!p.path().join("db.sqlite").exists(), "nothing ran, not even v001");
    // A reviewed statement can be silenced in place…
    p.write(
        "releases/r1/v002-bad.sql",
        "-- @add\n-- pygrate:allow drop-in-add\nALTER TABLE t DROP COLUMN legacy;\n-- @rollback_add\nALTER TABLE t ADD COLUMN legacy TEXT;\n",
    );
    p.run_with(Some(&url), &["ff", "--through", "add"]).ok();
    // …or the whole run forced.
    p.write("releases/r1/v003-worse.sql", "-- @add\nDELETE FROM t;\n");
    p.run_with(Some(&url), &["add"]).code(2).stderr_has("unbounded-dml");
    p.run_with(Some(&url), &["add", "--allow-unsafe"]).ok();
}

/// A marker written with an extra dash is a comment by SPEC 2: `@simdrop`
/// ran the `@drop` below it, and the column's data was gone before the
/// rollout was over. It is refused now, as an indented marker is.
#[test]
fn a_marker_lookalike_is_refused_before_it_runs_a_drop() {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-fax.sql",
        "-- @add\nCREATE TABLE users (id INTEGER, fax TEXT);\nINSERT INTO users VALUES (1, '555');\n\
         -- @rollback_add\nDROP TABLE users;\n",
    );
    p.run_with(Some(&sqlite(&p)), &["ff"]).ok();
    p.write(
        "releases/r1/v002-nofax.sql",
        "-- @add\n-- @simdrop\nALTER TABLE users RENAME COLUMN fax TO _simdropped_fax;\n\n--- @drop\n\
         ALTER TABLE users DROP COLUMN _simdropped_fax;\n\n-- @rollback_simdrop\n\
         ALTER TABLE users RENAME COLUMN _simdropped_fax TO fax;\n",
    );
    p.run_with(Some(&sqlite(&p)), &["ff"])
        .code(2)
        .stderr_has("v002-nofax.sql:5: error[indented-marker]: this `-- @drop` line has extra dashes");
    let db = rusqlite::Connection::open(p.path().join("db.sqlite")).unwrap();
    let fax: String = db.query_row("SELECT fax FROM users", [], |r| r.get(0)).unwrap();
    assert_eq!(fax, "555");
}
