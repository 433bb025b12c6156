//! The command line as a user meets it: format errors, config, targets,
//! passwords, `new`, JSON output. Engine-independent parts run on SQLite.

use std::path::Path;

use crate::support::{exits_within, Engine, Run, Sandbox, TestDb};

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite:///{}", dir.join("db.sqlite").display())
}

#[test]
fn every_format_error_names_file_and_line_and_runs_nothing() {
    let cases = [
        ("unknown-marker", "releases/r1/v001-x.sql:3: unknown section `@simdorp`; did you mean `-- @simdrop`?"),
        ("duplicate-section", "releases/r1/v001-x.sql:4: section `@add` appears twice (first at line 1)"),
        ("sql-before-marker", "releases/r1/v001-x.sql:2: SQL before the first marker"),
        ("no-marker", "releases/r1/v001-x.sql:1: no section marker"),
        ("orphan-rollback", "releases/r1/v001-x.sql:3: `@rollback_simdrop` without an `@simdrop` section"),
        (
            "unknown-option",
            "releases/r1/v001-x.sql:1: unknown option `notransaction` on `@add`; did you mean `no-transaction`?",
        ),
        ("natural-tie", "sort the same in natural order"),
        ("unterminated-string", "releases/r1/v001-x.sql:4: unterminated string"),
        ("transaction-control", "releases/r1/v001-x.sql:4: `COMMIT` in a transactional section"),
        ("abort", "releases/r1/v001-x.sql:4: `ABORT` in a transactional section"),
        ("lone-carriage-return", "releases/r1/v001-x.sql:2: carriage return alone, not followed by a line feed"),
    ];
    for (fixture, message) in cases {
        let p = Sandbox::fixture(&format!("broken/{fixture}"));
        let url = sqlite_url(p.path());
        for command in [&["ff"][..], &["add"], &["-n", "ff"]] {
            let run = p.run_with(Some(&url), command);
            run.code(2).stderr_has(message);
            assert!(!run.stderr.contains("panicked"), "{fixture}: {}", run.stderr);
        }
        assert!(!p.path().join("db.sqlite").exists(), "{fixture}: nothing may run or create the database file");
    }
}

/// pygrate connects while it reads the files, but a format error is
/// reported as soon as the files are read: a server that accepts and never
/// answers (within a minute here) does not hold it up.
#[test]
fn a_format_error_does_not_wait_for_the_connection() {
    let (port, held) = silent_server();
    let p = Sandbox::fixture("broken/unknown-marker");
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/db?connect_timeout=60"),
        format!("mysql://root@127.0.0.1:{port}/db?tcp_connect_timeout_ms=60000"),
    ] {
        let mut child = p.command(Some(&url), &["ff"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let code = exits_within(&mut child, std::time::Duration::from_secs(30));
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(code, Some(2), "{url}: {stderr}");
        assert!(stderr.contains("releases/r1/v001-x.sql:3: unknown section"), "{stderr}");
    }
    drop(held);
}

/// A local port whose server accepts up to three connections and never
/// answers; they stay open until the handle is dropped.
fn silent_server() -> (u16, std::thread::JoinHandle<Vec<std::io::Result<std::net::TcpStream>>>) {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    (port, std::thread::spawn(move || server.incoming().take(3).collect()))
}

/// A server that accepts the connection and never answers (an overloaded
/// host, a proxy with nothing behind it) fails the run after the connect
/// timeout instead of hanging the deployment.
#[test]
fn a_server_that_never_answers_times_out() {
    let (port, held) = silent_server();
    let p = Sandbox::fixture("portable");
    for (url, engine) in [
        (format!("postgres://postgres:s3cret@127.0.0.1:{port}/db?connect_timeout=1"), "PostgreSQL"),
        (format!("mysql://root:s3cret@127.0.0.1:{port}/db?tcp_connect_timeout_ms=1000&ssl-mode=DISABLED"), "MySQL"),
        (format!("mysql://root@127.0.0.1:{port}/db?tcp_connect_timeout_ms=1000"), "MySQL"),
    ] {
        let mut child = p.command(Some(&url), &["status"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let code = exits_within(&mut child, std::time::Duration::from_secs(60));
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(code, Some(1), "{engine}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot connect to {engine} at 127.0.0.1:{port}: no answer within 1s")),
            "{stderr}"
        );
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
    drop(held);
}

/// A first host that accepts and never answers has its own `connect_timeout`,
/// then the next host is tried: it used to take the whole deadline, and the
/// healthy second host was never reached.
#[test]
fn a_silent_first_postgres_host_fails_over_to_the_next() {
    let Some(db) = TestDb::create(Engine::Postgres) else { return };
    let (port, held) = silent_server();
    let at = db.url.rfind('@').map_or(db.url.find("://").unwrap_or(0) + 3, |at| at + 1);
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}127.0.0.1:{port},{}{sep}connect_timeout=1", &db.url[..at], &db.url[at..]);
    let p = Sandbox::fixture("portable");
    p.run_with(Some(&url), &["ff"]).ok();
    assert!(db.table_exists("pygrate_state"));
    drop(held);
}

/// `connect_timeout=0` (PostgreSQL, as libpq) and `tcp_connect_timeout_ms=0`
/// (MySQL) mean wait as long as it takes, not the 10 s default or no time at all.
#[test]
fn a_zero_connect_timeout_waits_past_the_default() {
    let (port, held) = silent_server();
    let p = Sandbox::fixture("portable");
    let mut children: Vec<_> = [
        format!("postgres://postgres@127.0.0.1:{port}/db?connect_timeout=0"),
        format!("mysql://root@127.0.0.1:{port}/db?tcp_connect_timeout_ms=0&ssl-mode=DISABLED"),
    ]
    .iter()
    .map(|url| (url.clone(), p.command(Some(url), &["status"]).stderr(std::process::Stdio::piped()).spawn().unwrap()))
    .collect();
    std::thread::sleep(std::time::Duration::from_secs(11));
    for (url, child) in &mut children {
        let still_waiting = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(still_waiting, "{url}: gave up: {stderr}");
    }
    drop(held);
}

/// What only splitting into statements shows is a format error for every
/// command and in every section: CI's `lint` and `check --offline` catch a
/// rollback section's COMMIT before an incident does, and `ff` runs nothing.
#[test]
fn statement_level_format_errors_stop_every_command() {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-a.sql",
        "-- @add\nCREATE TABLE a (id INTEGER);\n-- @rollback_add\nDROP TABLE a;\nCOMMIT;\n",
    );
    p.write(
        "releases/r1/v002-b.sql",
        "-- @add\nCREATE TABLE b (id INTEGER);\nSELECT 'oops;\n-- @rollback_add\nDROP TABLE b;\n",
    );
    p.write(
        "releases/r1/v003-c.sql",
        "-- @add\nCREATE TABLE c (a INTEGER, b TEXT);\nCOPY c (a, b) FROM stdin;\n1\tit's\n\\.\n",
    );
    let url = sqlite_url(p.path());
    for args in [&["lint"][..], &["check", "--offline"], &["ff"], &["plan"], &["status"]] {
        p.run_with(Some(&url), args)
            .code(2)
            .stderr_has("releases/r1/v001-a.sql:5: `COMMIT` in a transactional section")
            .stderr_has("releases/r1/v002-b.sql:3: unterminated string literal")
            .stderr_has("releases/r1/v003-c.sql:3: `COPY … FROM STDIN` / `TO STDOUT` needs psql's copy protocol");
    }
    assert!(!p.path().join("db.sqlite").exists(), "nothing connected, nothing ran");
}

/// `check --offline` with no connection to tell the dialect still reports
/// what is a format error in every dialect, and only that.
#[test]
fn check_offline_without_a_dialect_reports_errors_of_every_dialect() {
    let p = Sandbox::empty();
    p.write("releases/r1/v001-a.sql", "-- @add\nSELECT 'it\\'s MySQL';\n-- @rollback_add\nSELECT 1;\n");
    p.run_with(None, &["sum"]).ok();
    p.run_with(None, &["check", "--offline"]).ok();
    p.write("releases/r1/v002-b.sql", "-- @add\nSELECT 'abc;\n");
    p.run_with(None, &["sum"]).ok();
    p.run_with(None, &["check", "--offline"])
        .code(2)
        .stderr_has("releases/r1/v002-b.sql:2: unterminated string literal");
}

/// A timeout no database can hold is a config error, not a panic (SQLite's
/// busy timeout is an int of milliseconds) nor a failed apply (PostgreSQL).
#[test]
fn a_timeout_too_long_for_the_databases_is_a_config_error() {
    let p = Sandbox::fixture("portable");
    p.write("conf.d/dev.yaml", &format!("connection: \"{}\"\nlock_timeout: 600h\n", sqlite_url(p.path())));
    p.run_with(None, &["status"]).code(2).stderr_has("`lock_timeout`: `600h` is longer than the databases accept");
}

/// baseline never records as applied what the state says was undone: the
/// state would lie about the database.
#[test]
fn baseline_refuses_to_mark_a_rolled_back_phase_applied() {
    let p = Sandbox::empty();
    p.write("releases/r1/v001-a.sql", "-- @add\nCREATE TABLE a (id INTEGER);\n-- @rollback_add\nDROP TABLE a;\n");
    let url = sqlite_url(p.path());
    p.run_with(Some(&url), &["add"]).ok();
    p.run_with(Some(&url), &["rollback_add", "r1/v001"]).ok();
    p.run_with(Some(&url), &["baseline", "r1/v001"])
        .code(2)
        .stderr_has("add of r1/v001-a was rolled back")
        .stderr_has("pygrate add r1/v001-a");
    let db = rusqlite::Connection::open(p.path().join("db.sqlite")).unwrap();
    let applied: i64 =
        db.query_row("SELECT COUNT(*) FROM pygrate_state WHERE status = 'applied'", [], |r| r.get(0)).unwrap();
    assert_eq!(applied, 0);
}

/// Baseline is bound by the lanes as the forward commands are: it recorded
/// an out-of-order version, and versions after one whose file is gone, as
/// applied, and the problems vanished from `check`.
#[test]
fn baseline_refuses_what_the_lanes_refuse() {
    let p = Sandbox::empty();
    let url = sqlite_url(p.path());
    for v in ["v1", "v2", "v4"] {
        p.write(&format!("releases/r1/{v}.sql"), &format!("-- @add\nCREATE TABLE t_{v} (id INTEGER);\n"));
    }
    p.run_with(Some(&url), &["ff", "--through", "add"]).ok();
    p.write("releases/r1/v3.sql", "-- @add\nCREATE TABLE t_v3 (id INTEGER);\n");
    p.run_with(Some(&url), &["baseline", "r1/v4"])
        .code(2)
        .stderr_has("add of r1/v3 is out of order (r1/v4, after it, has add applied)")
        .stderr_has("pass --allow-out-of-order");
    p.remove("releases/r1/v2.sql");
    p.run_with(Some(&url), &["baseline", "r1/v4", "--allow-out-of-order"])
        .code(2)
        .stderr_has("r1/v2 has state but its file is gone");
    p.run_with(Some(&url), &["check"]).code(1).stdout_has("r1/v3");
    p.write("releases/r1/v2.sql", "-- @add\nCREATE TABLE t_v2 (id INTEGER);\n");
    p.run_with(Some(&url), &["baseline", "r1/v4", "--allow-out-of-order"]).ok().stdout_has("baseline add r1/v3");
}

/// Read-only runs, dry runs and runs with nothing to do leave no file: no
/// database, no lock file beside it, no `pygrate.sum`.
/// A closed output pipe (`pygrate ff | head -1`) neither panics nor stops a
/// migration halfway: every phase is applied and the exit code says so.
#[test]
fn a_closed_output_pipe_does_not_stop_a_migration() {
    let p = Sandbox::empty();
    for i in 1..=20 {
        p.write(
            &format!("releases/r1/v{i:03}-t.sql"),
            &format!("-- @add no-transaction\nCREATE TABLE t{i} (id INTEGER);\n"),
        );
    }
    let url = sqlite_url(p.path());
    for args in [&["ff"][..], &["-v", "ff"], &["status"], &["plan", "--format", "json"]] {
        let mut child = p
            .command(Some(&url), args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let db = rusqlite::Connection::open(p.path().join("db.sqlite")).unwrap();
    let applied: i64 =
        db.query_row("SELECT COUNT(*) FROM pygrate_state WHERE status = 'applied'", [], |r| r.get(0)).unwrap();
    assert_eq!(applied, 20 * 3);
}

#[test]
fn commands_with_nothing_to_do_and_dry_runs_create_no_file() {
    let p = Sandbox::fixture("portable");
    let url = sqlite_url(p.path());
    let before = crate::lanes::tree_bytes(p.path());
    p.run_with(Some(&url), &["rollback_add", "r1"]).ok().stdout_has("nothing to do");
    p.run_with(Some(&url), &["-n", "rollback_add", "r1"]).ok();
    p.run_with(Some(&url), &["-n", "ff"]).ok();
    p.run_with(Some(&url), &["status"]).ok();
    p.run_with(Some(&url), &["-n", "baseline", "r1"]).ok().stdout_has("would baseline add r1/v001-journal");
    p.run_with(Some(&url), &["-n", "rehash", "r1"]).ok().stdout_has("nothing to rehash");
    p.run_with(Some(&url), &["-n", "sum"]).ok().stdout_has("would write ").stdout_has("  a new file");
    // Refused changes leave nothing either (a mistyped path must not leave
    // an empty database behind).
    p.run_with(Some(&url), &["resolve", "r1/v001-journal", "add", "--as", "applied"])
        .code(2)
        .stderr_has("nothing to resolve");
    p.run_with(Some(&url), &["baseline", "r9"]).code(2).stderr_has("no release or version `r9`");
    p.run_with(Some(&url), &["rehash", "r1"]).ok().stdout_has("nothing to rehash");
    assert_eq!(crate::lanes::tree_bytes(p.path()), before, "no database, lock file or sum file");
    // A change that is made creates the database.
    p.run_with(Some(&url), &["baseline", "r1"]).ok().stdout_has("baseline add r1/v001-journal");
    p.run_with(Some(&url), &["status"]).ok().stdout_has("applied");
}

/// A missing section has no line: the text plan named line 1 of the file,
/// where another section (or nothing) is, and the JSON plan said null.
#[test]
fn a_missing_section_is_planned_without_a_line() {
    let p = Sandbox::empty();
    let url = sqlite_url(p.path());
    p.write("releases/r1/v001-a.sql", "-- only add\n-- @add\nCREATE TABLE a (id INTEGER);\n");
    p.run_with(Some(&url), &["add"]).ok();
    let plan = p.run_with(Some(&url), &["plan"]);
    let file = p.path().join("releases/r1/v001-a.sql").display().to_string();
    plan.ok().stdout_has(&format!("1. simdrop r1/v001-a  ({file}) [no SQL: recorded only]"));
    assert!(!plan.stdout.contains(&format!("{file}:")), "{}", plan.stdout);
    let json = p.run_with(Some(&url), &["plan", "--format", "json"]).json();
    assert_eq!(json["steps"][0]["line"], serde_json::Value::Null, "{json}");
}

/// A section that manages its own transaction runs when it says so.
#[test]
fn transaction_control_runs_in_a_no_transaction_section() {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-x.sql",
        "-- @add no-transaction\nCREATE TABLE t (id INTEGER);\nBEGIN;\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\nCOMMIT;\n",
    );
    p.run_with(Some(&sqlite_url(p.path())), &["ff"]).ok();
    let db = rusqlite::Connection::open(p.path().join("db.sqlite")).unwrap();
    let rows: i64 = db.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 2);
}

#[test]
fn a_file_that_is_not_utf8_is_a_format_error() {
    let p = Sandbox::empty();
    std::fs::create_dir_all(p.path().join("releases/r1")).unwrap();
    std::fs::write(p.path().join("releases/r1/v001-x.sql"), b"-- @add\nSELECT 1;\nSELECT '\xe9t\xe9';\n").unwrap();
    p.run_with(Some(&sqlite_url(p.path())), &["ff"])
        .code(2)
        .stderr_has("releases/r1/v001-x.sql:3: file is not valid UTF-8");
}

/// SQLite reads a statement only up to a NUL byte: `DELETE FROM t \0WHERE`
/// deleted every row, and ff exited 0.
#[test]
fn a_nul_byte_is_a_format_error_and_deletes_nothing() {
    let p = Sandbox::empty();
    let url = sqlite_url(p.path());
    p.write("releases/r1/v001-t.sql", "-- @add\nCREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1), (2);\n");
    p.run_with(Some(&url), &["ff"]).ok();
    std::fs::write(p.path().join("releases/r1/v002-d.sql"), b"-- @add\nDELETE FROM t \0WHERE x = 1;\n").unwrap();
    p.run_with(Some(&url), &["ff"]).code(2).stderr_has("releases/r1/v002-d.sql:2: file holds a NUL byte");
    p.run_with(None, &["check", "--offline"]).code(2).stderr_has("NUL byte");
    let db = rusqlite::Connection::open(p.path().join("db.sqlite")).unwrap();
    assert_eq!(db.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 2);
}

/// A FIFO hung every command (reading it waits for a writer), and a link
/// to /dev/zero filled memory until the kernel killed pygrate.
#[cfg(unix)]
#[test]
fn a_version_that_is_not_a_regular_file_is_an_error() {
    for make in [&["mkfifo"][..], &["ln", "-s", "/dev/zero"]] {
        let p = Sandbox::empty();
        p.write("releases/r1/v001-a.sql", "-- @add\nSELECT 1;\n");
        let path = p.path().join("releases/r1/v002-b.sql");
        let made = std::process::Command::new(make[0]).args(&make[1..]).arg(&path).status();
        assert!(made.unwrap().success());
        p.run_with(None, &["check", "--offline"])
            .code(2)
            .stderr_has(&format!("{}: not a regular file", path.display()));
    }
}

/// Names go into the state tables and one per line into pygrate.sum: a
/// trailing space made MySQL's collation merge `v1 ` with `v1`, a newline
/// split the sum's line.
#[test]
fn names_with_control_characters_or_edge_spaces_are_errors() {
    for (name, problem) in [("v1 .sql", "starts or ends with a space"), ("v1\nb.sql", "holds a control character")] {
        let p = Sandbox::empty();
        p.write("releases/r1/v1.sql", "-- @add\nSELECT 1;\n");
        p.write(&format!("releases/r1/{name}"), "-- @add\nSELECT 1;\n");
        p.run_with(None, &["check", "--offline"]).code(2).stderr_has(problem);
    }
    let p = Sandbox::empty();
    p.write("releases/r1 /v1.sql", "-- @add\nSELECT 1;\n");
    p.run_with(None, &["sum"]).code(2).stderr_has("the name `r1 ` starts or ends with a space");
}

#[test]
fn bom_and_crlf_files_run() {
    let p = Sandbox::empty();
    p.write(
        "releases/r1/v001-x.sql",
        "\u{feff}-- @add\r\nCREATE TABLE t (a INTEGER);\r\nINSERT INTO t VALUES (1);\r\n",
    );
    p.run_with(Some(&sqlite_url(p.path())), &["ff"]).ok().stdout_has("add              r1/v001-x  ok (2 statements");
}

/// Two names that sort the same are an error naming both paths; a name has
/// no line, and a directory has none at all.
#[test]
fn names_that_sort_the_same_are_named_without_a_line() {
    let p = Sandbox::empty();
    p.write("releases/2026.1/v001-a.sql", "-- @add\nSELECT 1;\n");
    p.write("releases/2026.01/v001-b.sql", "-- @add\nSELECT 1;\n");
    p.write("releases/2026.01/v01-b.sql", "-- @add\nSELECT 1;\n");
    let run = p.run_with(Some(&sqlite_url(p.path())), &["status"]);
    let release = p.path().join("releases/2026.1");
    let version = p.path().join("releases/2026.01/v01-b.sql");
    run.code(2)
        .stderr_has(&format!("{}: `2026.1` and `2026.01` (", release.display()))
        .stderr_has(&format!("{}: `v01-b` and `v001-b` (", version.display()));
    assert!(!run.stderr.contains(":1:"), "{}", run.stderr);
}

#[test]
fn lookalike_files_and_nested_directories_are_warned_about() {
    let p = Sandbox::empty();
    p.write("releases/r1/v001-x.sql", "-- @add\nSELECT 1;\n");
    p.write("releases/r1/v002-y.SQL", "-- @add\nSELECT 1;\n");
    p.write("releases/r1/v003-z.sql.txt", "-- @add\nSELECT 1;\n");
    p.write("releases/r1/old/v004.sql", "-- @add\nSELECT 1;\n");
    p.write("releases/r1/.hidden.sql", "garbage");
    p.write("releases/r1/notes.md", "text");
    let run = p.run_with(Some(&sqlite_url(p.path())), &["status"]);
    run.ok().stderr_has("v002-y.SQL: ignored").stderr_has("v003-z.sql.txt: ignored").stderr_has("old: ignored: nested");
    assert_eq!(run.stderr.matches("warning:").count(), 3, "{}", run.stderr);
    assert!(run.stdout.contains("r1/v001-x") && !run.stdout.contains("v002"), "{}", run.stdout);
}

#[test]
fn environments_are_chosen_with_e_and_checked() {
    let p = Sandbox::fixture("portable");
    p.write("conf.d/dev.yaml", "connection: \"sqlite:///dev.db\"\n");
    p.run_with(None, &["ff", "--through", "add"]).ok();
    assert!(p.path().join("dev.db").exists(), "sqlite:/// is relative to the project root, not the cwd");
    // Only files are environments, not a directory that happens to be named like one.
    std::fs::create_dir_all(p.path().join("conf.d/old.yaml")).unwrap();
    p.run_with(None, &["status"]).ok();
    p.write("conf.d/prod.yaml", "connection: \"sqlite:///prod.db\"\n");
    p.run_with(None, &["status"]).code(2).stderr_has("choose one with -e: dev, prod");
    p.run_with(None, &["-e", "staging", "status"])
        .code(2)
        .stderr_has("no environment `staging`")
        .stderr_has("dev, prod");
    p.run_with(None, &["-e", "prod", "ff", "--through", "add"]).ok();
    assert!(p.path().join("prod.db").exists());
    p.write("conf.d/prod.yaml", "connection: \"sqlite:///prod.db\"\nlock_wiat: 5s\n");
    p.run_with(None, &["-e", "prod", "status"])
        .code(2)
        .stderr_has("prod.yaml:2: unknown key `lock_wiat`; did you mean `lock_wait`?");
    p.write("conf.d/prod.yaml", "connection: \"sqlite:///${PYGRATE_TEST_UNSET_VAR}.db\"\n");
    p.run_with(None, &["-e", "prod", "status"]).code(2).stderr_has("`PYGRATE_TEST_UNSET_VAR` is not set");
    // --conn overrides it, so then the unset variable does not matter.
    let other = format!("sqlite:///{}", p.path().join("other.db").display());
    p.run_with(Some(&other), &["-e", "prod", "ff", "--through", "add"]).ok();
    p.write("conf.d/prod.yaml", "connection: \"sqlite:///${PYGRATE_TEST_UNSET_VAR:-fallback}.db\"\n");
    p.run_with(None, &["-e", "prod", "ff", "--through", "add"]).ok();
    assert!(p.path().join("fallback.db").exists());
    // --conn overrides the config; DATABASE_URL is used when neither is given.
    p.run_with(Some(&format!("sqlite:///{}", p.path().join("conn.db").display())), &["-e", "prod", "ff"]).ok();
    assert!(p.path().join("conn.db").exists());
    std::fs::remove_dir_all(p.path().join("conf.d")).unwrap();
    p.run_with(None, &["status"]).code(2).stderr_has("no database");
    let env_db = p.path().join("env.db");
    let out = p
        .command(None, &["ff", "--through", "add"])
        .env("DATABASE_URL", format!("sqlite:///{}", env_db.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env_db.exists());
}

/// A `conf.d/prod.yaml` that is a link to a missing file was skipped, so
/// `DATABASE_URL` chose the database and `ff` migrated it; `prod.yml` was
/// skipped without a word.
#[test]
fn an_environment_file_that_cannot_be_read_is_an_error_and_lookalikes_are_named() {
    let p = Sandbox::fixture("portable");
    std::fs::create_dir_all(p.path().join("conf.d")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/prod.yaml", p.path().join("conf.d/prod.yaml")).unwrap();
    let elsewhere = p.path().join("elsewhere.db");
    let run = |args: &[&str]| {
        let out = p.command(None, args).env("DATABASE_URL", format!("sqlite:///{}", elsewhere.display())).output();
        let out = out.unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(&["ff"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("conf.d/prod.yaml: cannot be read"), "{stderr}");
    assert!(!elsewhere.exists(), "migrated the database DATABASE_URL names");
    std::fs::remove_file(p.path().join("conf.d/prod.yaml")).unwrap();
    p.write("conf.d/prod.yml", "connection: \"sqlite:///prod.db\"\n");
    let (code, stderr) = run(&["status"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("conf.d/prod.yml: ignored: environments are files ending in lowercase `.yaml`"),
        "{stderr}"
    );
}

/// `schema` places the state tables in a PostgreSQL schema; elsewhere it
/// does nothing, which is said rather than left to surprise.
#[test]
fn schema_on_sqlite_or_mysql_is_warned_about() {
    let p = Sandbox::fixture("portable");
    p.write("conf.d/dev.yaml", "connection: \"sqlite:///dev.db\"\nschema: ops\n");
    p.run_with(None, &["status"]).ok().stderr_has(
        "dev.yaml: `schema: ops` is ignored: `schema` applies only to PostgreSQL, and this connection is sqlite",
    );
    p.write("conf.d/dev.yaml", "connection: \"sqlite:///dev.db\"\n");
    let run = p.run_with(None, &["status"]);
    assert!(!run.ok().stderr.contains("schema"), "{}", run.stderr);
}

#[test]
fn targets_resolve_or_explain() {
    let p = Sandbox::fixture("portable");
    p.write("releases/r2/v002-people.sql", "-- @add\nSELECT 1;\n");
    let url = sqlite_url(p.path());
    p.run_with(Some(&url), &["add", "v002"])
        .code(2)
        .stderr_has("`v002` is ambiguous")
        .stderr_has("r1/v002-people, r2/v002-people");
    p.run_with(Some(&url), &["add", "r1/v009"]).code(2).stderr_has("no version `r1/v009`");
    p.run_with(Some(&url), &["add", "r1/v001"]).ok();
    p.run_with(Some(&url), &["add", "v001-journal"]).ok().stdout_has("nothing to do");
}

/// A mistyped `-p` must not look like a project with nothing to do.
#[test]
fn a_project_without_a_releases_directory_is_an_error() {
    let p = Sandbox::empty();
    let url = sqlite_url(p.path());
    let commands = [
        &["ff"][..],
        &["-n", "ff"],
        &["status"],
        &["check"],
        &["check", "--offline"],
        &["plan"],
        &["sum"],
        &["lint"],
        &["baseline", "r1"],
    ];
    for command in commands {
        p.run_with(Some(&url), command).code(2).stderr_has("no releases/ directory in ");
    }
    // Without a connection either, it was said to be a missing config.
    p.run_with(None, &["status"]).code(2).stderr_has("no releases/ directory in ");
    p.write("releases", "not a directory");
    for command in commands {
        p.run_with(Some(&url), command).code(2).stderr_has("releases is not a directory");
    }
    assert!(!p.path().join("db.sqlite").exists(), "nothing ran");
}

#[test]
fn new_creates_the_next_version_with_every_marker() {
    let p = Sandbox::empty();
    p.run_with(None, &["new", "2026.03", "add orders"]).ok().stdout_has("releases/2026.03/v001-add-orders.sql");
    p.run_with(None, &["new", "2026.03", "backfill"]).ok().stdout_has("v002-backfill.sql");
    let text = p.read("releases/2026.03/v002-backfill.sql");
    for marker in ["-- @add", "-- @rollback_add", "-- @simdrop", "-- @rollback_simdrop", "-- @drop"] {
        assert!(text.contains(marker), "{text}");
    }
    p.run_with(None, &["new", "../x", "y"]).code(2);
    // A name given as a file name, or with separators at its ends, names
    // the version: no `.sql.sql`, no `v003--x`.
    let r = Sandbox::empty();
    r.run_with(None, &["new", "r1", "Add-Orders.SQL"]).ok().stdout_has("releases/r1/v001-add-orders.sql\n");
    r.run_with(None, &["new", "r1", " -tidy up_ "]).ok().stdout_has("releases/r1/v002-tidy-up.sql\n");
    r.run_with(None, &["new", "r1", "_.-"]).code(2).stderr_has("name `_.-`");
    // A line break in the name made a header line the parser then refused.
    r.run_with(None, &["new", "r1", "a\nb"]).ok().stdout_has("releases/r1/v003-a-b.sql\n");
    r.run_with(None, &["lint"]).ok();
    // Only version files count: not notes, not directories the project ignores.
    p.write("releases/2026.03/v050-notes.txt", "");
    p.write("releases/2026.03/v200-old/readme.md", "");
    p.run_with(None, &["new", "2026.03", "third"]).ok().stdout_has("v003-third.sql");
    // A number too large to count on is said, not skipped (v001 would sort before it).
    let q = Sandbox::empty();
    q.write("releases/r1/v99999999999999999999999-big.sql", "-- @add\n");
    q.run_with(None, &["new", "r1", "next"]).code(2).stderr_has("too large to count on");
    // The numbering of a release named in another style goes on in that
    // style: a `v001` beside `001-a` and `002-b` looked like a restart.
    q.write("releases/r2/001_a.sql", "-- @add\n");
    q.write("releases/r2/002_b.sql", "-- @add\n");
    q.run_with(None, &["new", "r2", "c"]).ok().stdout_has("releases/r2/003_c.sql");
    q.write("releases/r3/V9__a.sql", "-- @add\n");
    q.run_with(None, &["new", "r3", "b"]).ok().stdout_has("releases/r3/V10__b.sql");
    // A release that sorts the same as an existing one broke every command.
    q.run_with(None, &["new", "r02", "x"]).code(2).stderr_has("use `r2`");
    assert!(!q.path().join("releases/r02").exists());
    // A name the new version cannot sort after is said, not sorted before.
    q.write("releases/r4/zzz.sql", "-- @add\n");
    q.run_with(None, &["new", "r4", "b"]).code(2).stderr_has("`v001-b.sql` would sort before `zzz.sql`");
    // Empty sections are no-op phases: the new versions run as they are.
    p.run_with(Some(&sqlite_url(p.path())), &["ff"])
        .ok()
        .stdout_has("drop             2026.03/v003-third  ok (0 statements");
}

#[test]
fn status_json_is_parseable_and_complete() {
    let p = Sandbox::fixture("portable");
    let url = sqlite_url(p.path());
    p.run_with(Some(&url), &["ff", "--through", "add", "--to", "r1"]).ok();
    let status = p.run_with(Some(&url), &["status", "--format", "json"]).json();
    let versions = status["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["id"], "r1/v001-journal");
    assert_eq!(
        versions[0]["file"],
        "releases/r1/v001-journal.sql".to_string().replace("releases", &format!("{}/releases", p.path().display()))
    );
    assert_eq!(versions[0]["phases"][0]["phase"], "add");
    assert_eq!(versions[0]["phases"][0]["status"], "applied");
    assert!(versions[0]["phases"][0]["applied_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(versions[0]["phases"][1]["status"], "pending");
    assert_eq!(versions[2]["phases"][0]["status"], "pending");
    assert_eq!(status["problems"].as_array().unwrap().len(), 0);
}

/// A failed rollback is not a failed apply: status says which, in text and JSON.
#[test]
fn status_tells_a_failed_rollback_from_a_failed_apply() {
    let p = Sandbox::empty();
    let url = sqlite_url(p.path());
    p.write(
        "releases/r1/v1.sql",
        "-- @add\nCREATE TABLE t (id INTEGER);\n-- @rollback_add\nDROP TABLE t;\n\
         -- @simdrop\nALTER TABLE t RENAME TO t_old;\n\
         -- @rollback_simdrop no-transaction\nALTER TABLE t_old RENAME TO t;\nDROP TABLE nope;\n",
    );
    p.write(
        "releases/r1/v2.sql",
        "-- @add no-transaction\nCREATE TABLE u (id INTEGER);\nINSERT INTO nope (id) VALUES (1);\n",
    );
    p.run_with(Some(&url), &["add"]).code(1).stderr_has("add r1/v2 failed");
    p.run_with(Some(&url), &["simdrop", "r1/v1"]).ok();
    p.run_with(Some(&url), &["rollback_simdrop", "r1/v1"]).code(1).stderr_has("rollback_simdrop r1/v1 failed");
    let status = p.run_with(Some(&url), &["status", "--format", "json"]).json();
    let phase = |v: usize, p: usize| &status["versions"][v]["phases"][p];
    assert_eq!((&phase(0, 1)["status"], &phase(0, 1)["rolling_back"]), (&"failed".into(), &true.into()), "{status}");
    assert_eq!((&phase(1, 0)["status"], &phase(1, 0)["rolling_back"]), (&"failed".into(), &false.into()), "{status}");
    assert_eq!(phase(0, 2)["rolling_back"], serde_json::Value::Null);
    let text = p.run_with(Some(&url), &["status"]);
    let text = text.ok();
    let line = |v: &str| text.stdout.lines().find(|l| l.starts_with(v)).unwrap_or_default().to_string();
    assert!(line("r1/v1 ").contains(" ROLLBACK FAILED"), "{}", text.stdout);
    assert!(line("r1/v2 ").contains(" FAILED") && !line("r1/v2 ").contains("ROLLBACK"), "{}", text.stdout);
}

/// `--format json` either prints JSON or is refused before anything runs:
/// a script piping the output to a JSON parser never gets text.
#[test]
fn format_json_prints_json_or_is_refused() {
    let p = Sandbox::fixture("portable");
    let url = sqlite_url(p.path());
    let text_only: [&[&str]; 8] = [
        &["ff"],
        &["add", "r1"],
        &["rollback_add", "r1"],
        &["new", "r3", "x"],
        &["sum"],
        &["baseline", "r1"],
        &["resolve", "r1/v001-journal", "add", "--as", "pending"],
        &["rehash", "r1"],
    ];
    for args in text_only {
        let run = p.run_with(Some(&url), &[args, &["--format", "json"]].concat());
        run.code(2).stderr_has("--format json: this command prints text only; JSON is printed by status");
    }
    assert!(!p.path().join("db.sqlite").exists() && !p.path().join("releases/r3").exists(), "a refusal runs nothing");
    assert!(!p.path().join("releases/pygrate.sum").exists());
    for args in [&["ff", "-n"][..], &["plan"], &["status"], &["check"], &["lint"]] {
        p.run_with(Some(&url), &[args, &["--format", "json"]].concat()).json();
    }
    p.run_with(Some(&url), &["ff", "--through", "add"]).ok();
    let plan = p.run_with(Some(&url), &["rollback_add", "r2", "-n", "--format", "json"]).json();
    assert_eq!(plan["steps"][0]["action"], "rollback_add", "{plan}");
}

/// A password in a URL appears nowhere: not in output, not in the state.
fn passwords_never_leak(db: &TestDb) {
    let secret = "hunter2-secret";
    let p = Sandbox::fixture("portable");
    let bad_urls: Vec<String> = match db.engine {
        Engine::Sqlite => return,
        Engine::Postgres => vec![
            format!("postgres://postgres:{secret}@127.0.0.1:1/x"),
            format!("postgres://nobody:{secret}@127.0.0.1:5432/nope?connect_timeout=3"),
        ],
        Engine::Mysql => {
            vec![format!("mysql://root:{secret}@127.0.0.1:1/x"), format!("mysql://root:{secret}@127.0.0.1:3306/test")]
        }
    };
    for url in &bad_urls {
        let started = std::time::Instant::now();
        let run = p.run_with(Some(url), &["ff"]);
        run.code(1).stderr_has("cannot connect");
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret), "{}", run.stderr);
        assert!(started.elapsed().as_secs() < 15, "connect must time out");
    }
    // Success path, with the password in the config through the environment.
    let url = db.url.replacen("://root@", &format!("://root:{secret}@"), 1).replacen(
        "://postgres@",
        &format!("://postgres:{secret}@"),
        1,
    );
    if db.engine == Engine::Postgres {
        // trust auth accepts any password: the URL works as is.
        p.write("conf.d/ci.yaml", "connection: \"${PYGRATE_TEST_URL}\"\n");
        let out = p.command(None, &["-v", "ff"]).env("PYGRATE_TEST_URL", &url).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
        let dump = db.query_strings("SELECT * FROM pygrate_state");
        assert!(!format!("{dump:?}").contains(secret));
        let dump = db.query_strings("SELECT operation, outcome, detail, run_by FROM pygrate_log");
        assert!(!format!("{dump:?}").contains(secret));
    }
}

crate::on_every_engine!(passwords_never_leak);

/// pygrate refused `run` as a usage or config error, showing none of `secrets`.
#[track_caller]
fn refused_unshown<'a>(run: &'a Run, secrets: &[&str]) -> &'a Run {
    run.code(2);
    for secret in secrets {
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret), "{secret:?} shows: {}", run.stderr);
    }
    run
}

/// A password holding `/ ? # @` unencoded is refused before a driver splits
/// the URL in the wrong place, and no part of it shows, wherever it came from.
#[test]
fn unencoded_passwords_are_refused_and_never_shown() {
    let p = Sandbox::fixture("portable");
    let advice = "which must be percent-encoded: `@` as %40, `/` as %2F, `?` as %3F, `#` as %23";
    p.write("conf.d/dev.yaml", "connection: \"mysql://app:${PYGRATE_TEST_DBPASS}@127.0.0.1:3306/app\"\n");
    let run = Run::from(p.command(None, &["status"]).env("PYGRATE_TEST_DBPASS", "Xy/9k+Q=").output().unwrap());
    refused_unshown(&run, &["Xy/9k"])
        .stderr_has("conf.d/dev.yaml: connection `mysql://app:***@127.0.0.1:3306/app`")
        .stderr_has(advice);
    p.write("conf.d/dev.yaml", "connection: \"postgres://app:${PYGRATE_TEST_UNSET_VAR:-dfl/t}@127.0.0.1:1/app\"\n");
    refused_unshown(&p.run_with(None, &["status"]), &["dfl"]).stderr_has(advice);
    for (url, secrets) in [
        ("postgres://u:ab/cd@127.0.0.1:1/db?foo=1", &["ab/cd"][..]),
        // Split at the first `@`, `t` was shown as part of the host.
        ("postgres://u:S3cr@t@127.0.0.1:1/db", &["S3cr", "t@"]),
        ("mariadb://root:p#ss?@127.0.0.1:1/db", &["p#ss"]),
    ] {
        refused_unshown(&p.run_with(Some(url), &["status"]), secrets).stderr_has(advice);
    }
    // Otherwise malformed: said in words, not in the driver's internals.
    let run = p.run_with(Some("mysql://root:S3cret@127.0.0.1:notaport/db"), &["status"]);
    refused_unshown(&run, &["S3cret", "ParseError"]).stderr_has("not a valid URL: invalid port number");
    // With the `@host` forgotten, the driver took the password for a port
    // and the error quoted the URL; a bare password is no URL at all.
    for url in ["postgres://app:S3cret/db", "mysql://root:S3cret/db", "mariadb://root:S3cret:3306/db", "S3cret"] {
        refused_unshown(&p.run_with(Some(url), &["status"]), &["S3cret"]);
        // Found when connecting, an error in the config's URL names the file too.
        p.write("conf.d/dev.yaml", &format!("connection: \"{url}\"\n"));
        refused_unshown(&p.run_with(None, &["status"]), &["S3cret"]).stderr_has("conf.d/dev.yaml: connection");
    }
    // Percent-encoded, the same passwords reach the connect.
    for (url, engine) in [
        ("postgres://u:S3cr%40t%2F%3F%23@127.0.0.1:1/db?connect_timeout=1", "PostgreSQL"),
        ("mysql://root:S3cr%40t%2F%3F%23@127.0.0.1:1/db?tcp_connect_timeout_ms=1000", "MySQL"),
    ] {
        let run = p.run_with(Some(url), &["status"]);
        run.code(1).stderr_has(&format!("cannot connect to {engine} at 127.0.0.1:1"));
        assert!(!run.stderr.contains("S3cr"), "{}", run.stderr);
    }
    // An IPv6 address is shown as a URL writes it (PostgreSQL said `::1:1`).
    for (url, engine) in [
        ("postgres://u@[::1]:1/db?connect_timeout=1", "PostgreSQL"),
        ("mysql://root@[::1]:1/db?tcp_connect_timeout_ms=1000", "MySQL"),
    ] {
        p.run_with(Some(url), &["status"]).code(1).stderr_has(&format!("cannot connect to {engine} at [::1]:1:"));
    }
}

/// Known before connecting, so a usage error (exit 2), not a failed connection (1).
#[test]
fn a_postgres_url_without_a_host_is_a_usage_error() {
    let p = Sandbox::fixture("portable");
    for url in ["postgres://app:S3cret@", "postgres://app:S3cret@/db"] {
        refused_unshown(&p.run_with(Some(url), &["status"]), &["S3cret"]).stderr_has("names no host");
    }
}

/// A config value of the wrong YAML type is named by its kind, never shown:
/// it may be a connection URL with its password.
#[test]
fn config_values_of_the_wrong_type_are_never_shown() {
    let p = Sandbox::fixture("portable");
    let url = "postgres://app:S3cret@127.0.0.1/db";
    for (yaml, message) in [
        (format!("connection: [\"{url}\"]\n"), "dev.yaml:1: `connection` must be a string, not a list"),
        (
            format!("schema: x\nconnection: {{a: \"{url}\"}}\n"),
            "dev.yaml:2: `connection` must be a string, not a mapping",
        ),
        (format!("<<: {{connection: \"{url}\"}}\n"), "dev.yaml:1: YAML merge keys (`<<`) are not supported"),
        (format!("lock_wait: [\"{url}\"]\n"), "dev.yaml:1: `lock_wait` must be a duration such as `5s`, not a list"),
    ] {
        p.write("conf.d/dev.yaml", &yaml);
        refused_unshown(&p.run_with(None, &["status"]), &["S3cret"]).stderr_has(message);
    }
}

/// With neither $USER nor $LOGNAME (cron, containers), the state, the log
/// and the lock still name the account that ran pygrate.
#[test]
fn the_account_is_recorded_without_user_variables() {
    let id = std::process::Command::new("id").arg("-un").output().unwrap();
    let account = String::from_utf8(id.stdout).unwrap().trim().to_string();
    let p = Sandbox::fixture("portable");
    let url = sqlite_url(p.path());
    let out = p
        .command(Some(&url), &["ff", "--through", "add"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = rusqlite::Connection::open(p.path().join("db.sqlite")).unwrap();
    let by = |sql: &str| -> String { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let by_state = by("SELECT DISTINCT applied_by FROM pygrate_state");
    let by_log = by("SELECT DISTINCT run_by FROM pygrate_log");
    let holder = std::fs::read_to_string(p.path().join("db.sqlite.pygrate.lock")).unwrap();
    for recorded in [&by_state, &by_log, &holder] {
        assert!(recorded.starts_with(&format!("{account}@")), "{recorded:?} does not name {account}");
    }
}

/// Long version names are shown whole: cut to the same prefix, two versions
/// looked like one.
#[test]
fn status_shows_long_version_names_whole() {
    let p = Sandbox::empty();
    let stem = "v001-backfill-the-customer-billing-addresses-from-the-legacy-table";
    for suffix in ["part-one", "part-two"] {
        p.write(&format!("releases/r1/{stem}-{suffix}.sql"), "-- @add\nSELECT 1;\n");
    }
    let url = sqlite_url(p.path());
    p.run_with(Some(&url), &["status"])
        .ok()
        .stdout_has(&format!("r1/{stem}-part-one "))
        .stdout_has(&format!("r1/{stem}-part-two "));
}

/// `warnings` in the JSON plan holds what the command prints on stderr: it
/// held only drift, not an ignored `schema` or an ignored file.
#[test]
fn the_json_plan_repeats_every_warning() {
    let p = Sandbox::fixture("portable");
    p.write("conf.d/dev.yaml", &format!("connection: \"{}\"\nschema: app\n", sqlite_url(p.path())));
    p.write("releases/r1/v003-upper.SQL", "-- @add\nSELECT 1;\n");
    let run = p.run_with(None, &["plan", "--format", "json"]);
    let printed: Vec<&str> = run.stderr.lines().filter_map(|l| l.strip_prefix("warning: ")).collect();
    assert!(printed.len() >= 2, "{}", run.stderr);
    let json = run.json();
    let warnings: Vec<&str> = json["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    assert_eq!(warnings, printed);
}
