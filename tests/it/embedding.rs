//! The library as a service embeds it: `Migrator` runs the same commands,
//! prints nothing, and hands back what ran and what it found.

use std::thread;
use std::time::{Duration, Instant};

use pygrate::cli::Resolution;
use pygrate::error::Error;
use pygrate::migrator::{Failure, Migrator};
use pygrate::phase::{Action, Phase};

use crate::lanes::applied;
use crate::support::{Sandbox, TestDb};

fn migrates_and_reports_as_data(db: &TestDb) {
    let p = Sandbox::fixture("portable");
    let migrator = Migrator::new(p.path(), db.url.clone());
    let plan = migrator.plan().unwrap().json;
    assert_eq!(plan["steps"].as_array().map(Vec::len), Some(9), "{plan}");
    let outcome = migrator.ff().unwrap();
    let ran: Vec<String> = outcome.ran.iter().map(|r| format!("{} {}", r.action, r.id)).collect();
    assert_eq!(ran.len(), 9, "{ran:?}");
    assert_eq!(outcome.ran[0].action, Action::Apply(Phase::Add));
    assert_eq!(ran[0], "add r1/v001-journal");
    assert!(outcome.text.contains("add              r1/v001-journal  ok"), "{}", outcome.text);
    assert_eq!(applied(db).len(), 9);
    // Nothing pending: nothing ran, which the caller can tell from data.
    let again = migrator.ff().unwrap();
    assert!(again.ran.is_empty() && again.text.contains("nothing to do"), "{again:?}");
    let status = migrator.status().unwrap().json;
    let versions = status["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 3, "{status}");
    assert!(versions.iter().all(|v| v["phases"][0]["status"] == "applied"), "{status}");
    // A failure is an error with its file and line, and the state says so;
    // what completed before it is in the error too.
    p.write("releases/r2/v002-good.sql", "-- @add\nCREATE TABLE good (id INTEGER);\n");
    p.write("releases/r2/v003-broken.sql", "-- @add no-transaction\nSELECT 1;\nSELECT * FROM nowhere;\n");
    match migrator.ff() {
        Err(Failure { error: Error::Statement(failure), before }) => {
            assert!(failure.to_string().contains("v003-broken.sql:3"), "{failure}");
            let ran: Vec<String> = before.ran.iter().map(|r| format!("{} {}", r.action, r.id)).collect();
            assert_eq!(ran, ["add r2/v002-good", "simdrop r2/v002-good", "drop r2/v002-good"]);
        }
        other => panic!("{other:?}"),
    }
    let status = migrator.status().unwrap().json;
    assert_eq!(status["versions"][4]["phases"][0]["status"], "failed", "{status}");
    // Warnings come with the JSON, as the command line prints them beside it.
    let journal = p.read("releases/r1/v001-journal.sql").replace("VARCHAR(50)", "VARCHAR(60)");
    p.write("releases/r1/v001-journal.sql", &journal);
    let plan = migrator.plan().unwrap();
    assert!(plan.warnings.iter().any(|w| w.contains("r1/v001-journal")), "{plan:?}");
}

/// A service's shutdown stops a run through `Migrator::interrupt`: the
/// statement in flight is cancelled on the server, the phase is recorded as
/// failed there, and later runs do not start.
fn a_service_stops_a_run_through_its_interrupt(db: &TestDb) {
    let p = Sandbox::empty();
    let long = crate::crash::long_statement(db.engine);
    p.write(
        "releases/r1/v001-slow.sql",
        &format!("-- @add no-transaction\nCREATE TABLE first (id INTEGER);\n{long};\n"),
    );
    let migrator = Migrator::new(p.path(), db.url.clone());
    let watcher = migrator.clone();
    let interrupt = migrator.interrupt();
    let asker = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while watcher.status().map_or(true, |s| s.json["versions"][0]["phases"][0]["status"] != "running") {
            assert!(Instant::now() < deadline, "the section never started");
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(300));
        interrupt.request("shutdown")
    });
    match migrator.ff() {
        Err(Failure { error: Error::Statement(failure), .. }) => {
            assert!(failure.aftermath.starts_with("pygrate was stopped (shutdown); 1 of 2"), "{failure}")
        }
        other => panic!("{other:?}"),
    }
    assert!(asker.join().unwrap(), "the run held the lock when asked");
    assert_eq!(db.query_i64("SELECT statements_done FROM pygrate_state"), 1);
    let status = migrator.status().unwrap().json;
    assert_eq!(status["versions"][0]["phases"][0]["status"], "failed", "{status}");
    match migrator.ff() {
        Err(Failure { error: error @ Error::Interrupted { .. }, .. }) => {
            assert!(error.to_string().contains("nothing ran"), "{error}")
        }
        other => panic!("{other:?}"),
    }
}

/// Clones share one interrupt. Two runs at once on different state tables
/// overwrote each other's record of what to cancel: a shutdown cancelled
/// only the later run, and once that one ended, nothing (`request` said no
/// run held a lock while the other was mid-statement). Each run is
/// cancelled now.
fn a_shutdown_stops_every_run_of_the_clones(db: &TestDb) {
    if db.engine == crate::support::Engine::Sqlite {
        return; // one lock per database file: the second run would wait
    }
    let p = Sandbox::empty();
    p.write("conf.d/a.yaml", "state_table: tenant_a\n");
    p.write("conf.d/b.yaml", "state_table: tenant_b\n");
    let long = crate::crash::long_statement(db.engine);
    // Both runs run it, each in its state table's lane: nothing to collide.
    p.write("releases/r1/v001-slow.sql", &format!("-- @add no-transaction\nSELECT 1;\n{long};\n"));
    let migrator = Migrator::new(p.path(), db.url.clone());
    let interrupt = migrator.interrupt();
    let runs: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|env| {
            let run = migrator.clone().env(env);
            thread::spawn(move || (Instant::now(), run.ff()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = |table: &str| {
        db.table_exists(&format!("{table}_state"))
            && db.query_i64(&format!("SELECT COUNT(*) FROM {table}_state WHERE status = 'running'")) == 1
    };
    while !(running("tenant_a") && running("tenant_b")) {
        assert!(Instant::now() < deadline, "the sections never both started");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    assert!(interrupt.request("shutdown"), "runs held their locks when asked");
    for run in runs {
        let (started, outcome) = run.join().unwrap();
        assert!(matches!(outcome, Err(Failure { error: Error::Statement(_), .. })), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "a run was not cancelled");
    }
    for table in ["tenant_a", "tenant_b"] {
        assert_eq!(db.query_i64(&format!("SELECT statements_done FROM {table}_state")), 1, "{table}");
    }
}

/// A service logs its components with `{:?}`: the URL's password is masked.
#[test]
fn a_migrator_debug_print_masks_the_password() {
    let shown = format!("{:?}", Migrator::new("/x", "postgres://app:SuperSecret99@h/db"));
    assert!(shown.contains("postgres://app:***@h/db") && !shown.contains("SuperSecret99"), "{shown}");
}

/// The operator's commands are there too: baseline, resolve, rollback.
fn baselines_resolves_and_rolls_back(db: &TestDb) {
    let p = Sandbox::empty();
    p.write("releases/r1/v001-old.sql", "-- @add\nCREATE TABLE old_t (id INTEGER);\n");
    p.write(
        "releases/r1/v002-new.sql",
        "-- @add no-transaction\nCREATE TABLE new_t (id INTEGER);\nINSERT INTO nowhere VALUES (1);\n\
         -- @rollback_add\nDROP TABLE new_t;\n",
    );
    let migrator = Migrator::new(p.path(), db.url.clone());
    let baselined = migrator.baseline("r1/v001-old").unwrap();
    assert!(baselined.text.contains("baseline add r1/v001-old"), "{}", baselined.text);
    assert!(!db.table_exists("old_t"), "baseline ran SQL");
    assert!(matches!(migrator.ff(), Err(Failure { error: Error::Statement(_), .. })));
    let resolved = migrator.resolve("r1/v002-new", Phase::Add, Resolution::Applied).unwrap();
    assert!(resolved.text.contains("resolved add of r1/v002-new: failed → applied"), "{}", resolved.text);
    assert!(matches!(migrator.rollback(Phase::Drop, "r1/v002-new"), Err(Failure { error: Error::Refused(_), .. })));
    let rolled_back = migrator.rollback(Phase::Add, "r1/v002-new").unwrap();
    let ran: Vec<String> = rolled_back.ran.iter().map(|r| format!("{} {}", r.action, r.id)).collect();
    assert_eq!(ran, ["rollback_add r1/v002-new"]);
    assert!(!db.table_exists("new_t"));
}

crate::on_every_engine!(
    migrates_and_reports_as_data,
    a_service_stops_a_run_through_its_interrupt,
    a_shutdown_stops_every_run_of_the_clones,
    baselines_resolves_and_rolls_back
);
